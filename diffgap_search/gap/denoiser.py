"""The DiffGAP denoiser: a residual MLP over ``[x_t, t, condition, direction]`` that predicts x0.

Why x0 and not epsilon: the data lie on a sphere of radius sqrt(D) and we want the *clean* embedding
for retrieval. An x0 head gives a usable estimate at every noise level (so few DDIM steps suffice and
the InfoNCE term can be applied to the prediction directly); an epsilon head divides by
``sqrt(abar_t)`` to recover x0, which blows up at high noise. DALL-E 2's prior over CLIP embeddings
predicts x0 for the same reasons.

One network serves all four directions (``audio|text``, ``text|audio``, ``audio|video``,
``video|audio``) through a learned direction embedding: inverse directions share most of their
structure (the same pairing), one module is half the weights to load and cache, and a pair set with
few examples borrows from the others. A learned null condition (used when the condition is dropped,
for classifier-free guidance) replaces the condition vector per direction.

Linear anchor (``DenoiserConfig.anchor = "ridge"``, the default since format 3): the network predicts the
*residual* of a linear map fitted on the training pairs. Per direction it holds that map (buffers: the
ridge map of ``record``, fitted before training), and its x0 estimate is ``a(c) + f(x_t, t, c)`` where
``a(c) = sqrt(D) normalise((c / sqrt(D) - mu_src) W + mu_tgt)`` is the map's answer (for a dropped
condition, the target mean's direction). Why: the synthetic ablation (``benchmarks/ablation_gap.py``)
shows the plain network learns the linear part of the gap no better than ridge does; anchored, its
capacity goes to what a linear map cannot predict. ``anchor = "none"`` (format 1 and 2 files) is the
plain network.

Shapes: ``x_t`` and ``cond`` are ``(B, D) float32`` in the scaled space (unit vectors times sqrt(D));
``t`` is ``(B,) int64`` in ``0..T-1``; ``direction`` is ``(B,) int64`` (``Direction.index``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .directions import NUM_DIRECTIONS

ANCHORS = ("none", "ridge")


@dataclass(frozen=True)
class DenoiserConfig:
    """Size of the denoiser. At ``dim=512`` the defaults give about 4.3 M parameters."""

    dim: int
    hidden: int = 512
    depth: int = 3
    expansion: int = 2
    time_features: int = 128
    anchor: str = "none"  # "none" or "ridge" (see the module docstring)
    dropout: float = 0.0  # inside each block, training only (format 4); no weights, no effect at serving

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DenoiserConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.anchor not in ANCHORS:
            raise ValueError(f"DenoiserConfig.anchor must be one of {ANCHORS}, got {self.anchor!r}")
        for name in ("dim", "hidden", "depth", "expansion", "time_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"DenoiserConfig.{name} must be >= 1")
        if self.time_features % 2:
            raise ValueError("DenoiserConfig.time_features must be even")


def timestep_features(t: torch.Tensor, n: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps: ``(B,) int64 -> (B, n) float32``."""
    half = n // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResidualBlock(nn.Module):
    """``h + W2 dropout(gelu(W1 (LN(h) + e)))``: a pre-norm MLP block with the step/direction embedding ``e`` added."""

    def __init__(self, hidden: int, expansion: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden * expansion)
        self.fc2 = nn.Linear(hidden * expansion, hidden)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``(B, H), (B, H) -> (B, H)``."""
        return h + self.fc2(self.drop(nn.functional.gelu(self.fc1(self.norm(h) + e))))


class Denoiser(nn.Module):
    """Predicts the clean target embedding x0 (scaled space) from ``x_t``, ``t``, a condition and a direction."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h = cfg.dim, cfg.hidden
        self.in_x = nn.Linear(d, h)
        self.in_cond = nn.Linear(d, h, bias=False)
        self.null_cond = nn.Parameter(torch.zeros(NUM_DIRECTIONS, d))
        self.direction = nn.Embedding(NUM_DIRECTIONS, h)
        nn.init.normal_(self.direction.weight, std=0.02)
        self.time = nn.Sequential(nn.Linear(cfg.time_features, h), nn.SiLU(), nn.Linear(h, h))
        self.blocks = nn.ModuleList(ResidualBlock(h, cfg.expansion, cfg.dropout) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(h)
        self.out = nn.Linear(h, d)
        if cfg.anchor == "ridge":
            self.register_buffer("anchor_mu_src", torch.zeros(NUM_DIRECTIONS, d))
            self.register_buffer("anchor_weight", torch.zeros(NUM_DIRECTIONS, d, d))
            self.register_buffer("anchor_mu_tgt", torch.zeros(NUM_DIRECTIONS, d))

    def set_anchor(self, direction: int, mu_src: torch.Tensor, weight: torch.Tensor, mu_tgt: torch.Tensor) -> None:
        """Install the linear map of ``direction``: ``mu_src, mu_tgt (D,)``, ``weight (D, D)`` (unit-sphere space)."""
        if self.cfg.anchor != "ridge":
            raise ValueError("this denoiser has no linear anchor (DenoiserConfig.anchor == 'none')")
        with torch.no_grad():
            self.anchor_mu_src[direction] = mu_src
            self.anchor_weight[direction] = weight
            self.anchor_mu_tgt[direction] = mu_tgt

    def anchor(self, cond: torch.Tensor, direction: torch.Tensor, keep: torch.Tensor) -> torch.Tensor | None:
        """The linear map's answer ``(B, D)`` in the scaled space (None without an anchor).

        ``cond (B, D)`` scaled rows, ``direction (B,) int64``, ``keep (B,) bool``: rows with ``keep == False``
        get the target mean's direction (the map's answer for the source mean), independent of ``cond``.
        Rows are processed per direction in index order: deterministic for a given batch.
        """
        if self.cfg.anchor == "none":
            return None
        d = cond.shape[1]
        scale = math.sqrt(d)
        out = torch.empty_like(cond)
        for k in torch.unique(direction).tolist():
            sel = direction == k
            y = (cond[sel] / scale - self.anchor_mu_src[k]) @ self.anchor_weight[k] + self.anchor_mu_tgt[k]
            null = self.anchor_mu_tgt[k].expand_as(y)
            y = torch.where(keep[sel][:, None], y, null)
            out[sel] = nn.functional.normalize(y, dim=-1) * scale
        return out

    def encode_condition(self, cond: torch.Tensor, direction: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The step-independent part of the input: ``(B, D), (B,) int64, (B,) bool -> (B, H) float32``.

        Rows with ``keep == False`` use the learned null condition of their direction instead of ``cond``.
        Computed once per query at sampling time.
        """
        c = torch.where(keep[:, None], cond, self.null_cond[direction])
        return self.in_cond(c) + self.direction(direction)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """``(B,) int64`` timesteps -> ``(B, H) float32`` embeddings (constant per t: samplers may cache them)."""
        return self.time(timestep_features(t, self.cfg.time_features))

    def denoise(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond_h: torch.Tensor,
        t_emb: torch.Tensor | None = None,
        anchor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One network evaluation: ``(B, D), (B,) or (1,) int64, (B, H) -> (B, D)`` x0 estimate (scaled space).

        A ``(1,)`` timestep is broadcast to every row; ``t_emb`` (``time_embedding(t)``) skips recomputing it;
        ``anchor (B, D)`` (``self.anchor(...)``) is added to the output (the network predicts the residual).
        """
        e = self.time_embedding(t) if t_emb is None else t_emb
        h = self.in_x(x_t) + cond_h + e
        for block in self.blocks:
            h = block(h, e)
        out = self.out(self.out_norm(h))
        return out if anchor is None else out + anchor

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, direction: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """``x0`` prediction ``(B, D) float32``; see the module docstring for the argument shapes."""
        return self.denoise(x_t, t, self.encode_condition(cond, direction, keep), None,
                            self.anchor(cond, direction, keep))

    def num_parameters(self) -> int:
        """Total number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())
