"""Gaussian diffusion in the scaled embedding space: q(x_t | x0), the training losses, DDIM.

Embeddings are unit vectors scaled by sqrt(D) (``to_diffusion_space``), so each coordinate has about
unit variance like the noise. Every sampler here takes an ``x0_fn(x_t, t) -> x0`` closure, so the same
code runs with the network or with an exact oracle (tests). DDIM uses eta = 0: deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from .schedule import NoiseSchedule

X0Fn = Callable[[torch.Tensor, int], torch.Tensor]


def to_diffusion_space(x: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` any scale -> ``(B, D)`` rows of norm sqrt(D)."""
    return F.normalize(x, dim=-1) * math.sqrt(x.shape[-1])


def _abar(schedule: NoiseSchedule, t: torch.Tensor | int) -> torch.Tensor:
    device = t.device if isinstance(t, torch.Tensor) else None
    ac = torch.as_tensor(schedule.alphas_cumprod, dtype=torch.float64, device=device)
    return ac[t].to(torch.float32)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Sample ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``: ``(B, D), (B,) int64, (B, D) -> (B, D)``."""
    a = _abar(schedule, t)[:, None]
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, abar: float) -> torch.Tensor:
    """The noise implied by an x0 estimate at a level with cumulative alpha ``abar``: ``(B, D) -> (B, D)``."""
    return (x_t - math.sqrt(abar) * x0) / math.sqrt(max(1.0 - abar, 1e-12))


def ddim_sample(
    x0_fn: X0Fn, x_start: torch.Tensor, timesteps: Sequence[int], schedule: NoiseSchedule, renorm_x0: bool = False
) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from ``x_start`` at ``timesteps[0]`` down to x0: ``(B, D) -> (B, D)``.

    ``timesteps`` must be decreasing. With ``renorm_x0`` every x0 estimate is projected onto the sphere
    of radius sqrt(D) (where the data lie) before the update; the last estimate is returned.
    """
    ac = schedule.alphas_cumprod
    x = x_start
    x0 = x_start
    for i, t in enumerate(timesteps):
        x0 = x0_fn(x, int(t))
        if renorm_x0:
            x0 = to_diffusion_space(x0)
        if i + 1 == len(timesteps):
            break
        a_t, a_prev = float(ac[t]), float(ac[timesteps[i + 1]])
        eps = eps_from_x0(x, x0, a_t)
        x = math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps
    return x0


def ddim_invert(x0_fn: X0Fn, x0: torch.Tensor, timesteps: Sequence[int], schedule: NoiseSchedule) -> torch.Tensor:
    """The DDIM forward ODE (eta = 0): encode clean ``x0 (B, D)`` to the latent at ``timesteps[-1]``.

    ``timesteps`` are increasing. The first move, off the data onto level ``timesteps[0]``, takes its
    noise estimate from the model at that level (one fixed-point step); the others mirror
    ``ddim_sample``. ``ddim_sample(x0_fn, ddim_invert(...), timesteps[::-1], schedule)`` recovers
    ``x0`` up to discretisation error, which vanishes as steps get finer (tested with an exact oracle).
    """
    ac = schedule.alphas_cumprod
    t0 = int(timesteps[0])
    a0 = float(ac[t0])
    x = math.sqrt(a0) * x0
    x = math.sqrt(a0) * x0 + math.sqrt(1.0 - a0) * eps_from_x0(x, x0_fn(x, t0), a0)
    for s, t in zip(timesteps[:-1], timesteps[1:]):
        a_s, a_t = float(ac[s]), float(ac[t])
        x0_hat = x0_fn(x, int(s))
        x = math.sqrt(a_t) * x0_hat + math.sqrt(1.0 - a_t) * eps_from_x0(x, x0_hat, a_s)
    return x


def denoising_loss(x0_hat: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Mean squared error per coordinate between predicted and true x0 (scaled space); scalar."""
    return F.mse_loss(x0_hat, x0)


def info_nce(
    x0_hat: torch.Tensor, x0: torch.Tensor, temperature: float, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """InfoNCE keeping each denoised embedding nearest its own partner within the batch; scalar.

    ``x0_hat, x0: (B, D)``; logits are cosine similarities divided by ``temperature``; the positive of
    row i is target i, the negatives are the other targets of the same direction in the batch, except
    those of the same group (``groups: (B,) int64``, e.g. the clip): another caption of the same clip,
    or the same audio paired with another caption, is not a negative.
    """
    logits = F.normalize(x0_hat, dim=-1) @ F.normalize(x0, dim=-1).T / temperature
    if groups is not None:
        same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool, device=x0.device)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(x0.shape[0], device=x0.device))
