"""Released noise schedules of the Gaussian diffusion over embeddings.

A schedule, once released, never changes: its name carries a version (``cosine-v1``), checkpoints
store that name, and a changed formula gets a new enum member. ``tests/test_gap_schedule.py`` pins
values of the released schedules so an accidental edit fails.

Indexing follows improved-diffusion: timesteps ``t = 0 .. T-1``; ``alphas_cumprod[t] = prod_{i<=t}
(1 - beta_i)``; ``q(x_t | x0) = N(sqrt(abar_t) x0, (1 - abar_t) I)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class ScheduleKind(str, Enum):
    """Released beta schedules. Never edit a member's formula; add ``...-v2`` instead."""

    COSINE_V1 = "cosine-v1"  # Nichol & Dhariwal 2021, s = 0.008, betas clipped at 0.999
    LINEAR_V1 = "linear-v1"  # Ho et al. 2020, beta 1e-4 .. 0.02 (scaled by 1000 / T)


def betas_for(kind: ScheduleKind, num_steps: int) -> np.ndarray:
    """The ``(T,) float64`` betas of a released schedule with ``T = num_steps`` training steps."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    kind = ScheduleKind(kind)
    if kind is ScheduleKind.COSINE_V1:
        s = 0.008

        def f(t: float) -> float:
            return math.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2

        betas = [min(1.0 - f(i + 1) / f(i), 0.999) for i in range(num_steps)]
        return np.asarray(betas, dtype=np.float64)
    if kind is ScheduleKind.LINEAR_V1:
        scale = 1000.0 / num_steps
        betas = np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)
        if betas[-1] >= 1.0:
            raise ValueError(f"{kind.value} needs at least 21 steps (got {num_steps}): its betas would exceed 1")
        return betas
    raise ValueError(f"unknown schedule {kind}")  # pragma: no cover - exhaustive enum


@dataclass(frozen=True)
class NoiseSchedule:
    """A released schedule with ``num_steps`` (T) training timesteps, and its derived ``(T,) float64`` arrays."""

    kind: ScheduleKind = ScheduleKind.COSINE_V1
    num_steps: int = 1000
    betas: np.ndarray = field(init=False, repr=False, compare=False)
    alphas_cumprod: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ScheduleKind(self.kind))
        betas = betas_for(self.kind, self.num_steps)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas_cumprod", np.cumprod(1.0 - betas))

    def ddim_timesteps(self, steps: int) -> np.ndarray:
        """``(steps,) int64`` decreasing timesteps for DDIM, "trailing" spacing: starts at ``T-1``, ends near 0."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"DDIM steps must be in 1..{self.num_steps}, got {steps}")
        ts = np.round(np.arange(self.num_steps, 0, -self.num_steps / steps)).astype(np.int64) - 1
        return ts
