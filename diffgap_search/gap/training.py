"""Training a DiffGAP bridge from paired embeddings: Contrastive Diffusion Module + Bidirectional Split Training.

Input: ``pairs`` maps modality name -> ``(N, D) float32`` array; row i of every array belongs to pair i.
``"audio"`` is required, plus ``"text"`` and/or ``"video"``. A row of NaN marks a modality missing from
that pair (e.g. a clip with video but no caption); a pair set (audio-text, audio-video) uses the rows
where both sides are finite. Rows are L2-normalised here.

Each step draws ``batch_size`` pairs from every pair set and splits them in half (BST): one half
denoises side A given B, the other B given A, so both directions of a pair set get the same number of
examples at every step. The loss (CDM) is the x0 MSE plus ``infonce_weight`` times an InfoNCE term that
keeps each denoised embedding closest to its own target among the other targets of its direction in the
batch. The condition is replaced by a learned null with probability ``cond_drop_prob`` (guidance).

A seeded ``val_fraction`` of each pair set is held out: the report gives raw vs bridged R@1 on it and
the fusion weights are tuned on it (never on anyone's test set).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..errors import UsageError
from .baselines import l2n
from .bridge import Bridge, SampleConfig
from .denoiser import Denoiser, DenoiserConfig
from .diffusion import denoising_loss, info_nce, q_sample, to_diffusion_space
from .directions import PAIR_SETS, Modality, directions_of_pair
from .fusion import FusionConfig, fuse, tune_fusion
from .metrics import retrieval_metrics
from .schedule import NoiseSchedule, ScheduleKind

OnStep = Callable[[int, int, float, float], None]
"""``on_step(epoch, step, loss, pairs_per_s)``: called after every optimiser step (epoch and step from 0)."""

MIN_PAIRS = 16


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint's ``train`` section)."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    cond_drop_prob: float = 0.1
    infonce_weight: float = 0.3
    infonce_temperature: float = 0.1
    ema_decay: float = 0.995
    val_fraction: float = 0.1
    max_val_pairs: int = 2000
    seed: int = 0
    hidden: int = 512
    depth: int = 3
    expansion: int = 2
    schedule: ScheduleKind = ScheduleKind.COSINE_V1
    num_timesteps: int = 1000
    sample: SampleConfig = field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 4:
            raise ValueError("TrainConfig needs epochs >= 1 and batch_size >= 4")
        if not 0.0 <= self.val_fraction < 1.0 or not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError("val_fraction and cond_drop_prob must be in [0, 1)")
        object.__setattr__(self, "schedule", ScheduleKind(self.schedule))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        d = asdict(self)
        d["schedule"] = self.schedule.value
        return d


@dataclass(frozen=True)
class TrainReport:
    """What a training run did. ``val``: retrieval key (``"text->audio"``) -> ``{"raw_R@1", "bridged_R@1", "fused_R@1"}``."""

    n_train: dict[str, int]
    n_val: dict[str, int]
    epochs: int
    steps: int
    seconds: float
    pairs_per_s: float
    loss_history: tuple[float, ...]
    val: dict[str, dict[str, float]]
    fusion: dict[str, dict[str, float]]
    num_parameters: int


@dataclass(frozen=True)
class _PairSet:
    a: Modality
    b: Modality
    train_a: np.ndarray
    train_b: np.ndarray
    val_a: np.ndarray
    val_b: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.a.value}-{self.b.value}"


def split_pairs(pairs: dict[str, np.ndarray], val_fraction: float, seed: int) -> list[_PairSet]:
    """Validate ``pairs`` and cut each available pair set into seeded train / validation rows (L2-normalised)."""
    if Modality.AUDIO.value not in pairs:
        raise UsageError("training a DiffGAP bridge needs audio embeddings ('audio' in pairs)")
    unknown = set(pairs) - {m.value for m in Modality}
    if unknown:
        raise ValueError(f"unknown modalities in pairs: {sorted(unknown)}")
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in pairs.items()}
    shapes = {v.shape for v in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"all pair arrays must be (N, D) of one shape, got { {k: v.shape for k, v in arrays.items()} }")
    out = []
    rng = np.random.default_rng(seed)
    for a, b in PAIR_SETS:
        if b.value not in arrays:
            continue
        xa, xb = arrays[a.value], arrays[b.value]
        rows = np.flatnonzero(np.isfinite(xa).all(1) & np.isfinite(xb).all(1))
        if len(rows) < MIN_PAIRS:
            raise UsageError(f"need at least {MIN_PAIRS} {a.value}-{b.value} pairs to train a bridge, got {len(rows)}")
        rows = rng.permutation(rows)
        n_val = int(round(len(rows) * val_fraction))
        val, tr = rows[:n_val], rows[n_val:]
        out.append(_PairSet(a, b, l2n(xa[tr]), l2n(xb[tr]), l2n(xa[val]), l2n(xb[val])))
    if not out:
        raise UsageError("training a DiffGAP bridge needs 'text' or 'video' embeddings paired with 'audio'")
    return out


def _step_batch(
    sets: list[_PairSet], cursors: list[np.ndarray], step: int, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[slice]]:
    """One BST batch: ``(x0, cond, direction, groups)``; each pair set contributes ``batch`` rows, half per direction."""
    x0s, conds, dirs, groups, start = [], [], [], [], 0
    for ps, perm in zip(sets, cursors):
        n = len(perm)
        idx = perm[np.arange(step * batch, (step + 1) * batch) % n]
        half = len(idx) // 2
        d_ab, d_ba = directions_of_pair(ps.a, ps.b)
        for tgt, cnd, rows, d in ((ps.train_a, ps.train_b, idx[:half], d_ab), (ps.train_b, ps.train_a, idx[half:], d_ba)):
            x0s.append(tgt[rows])
            conds.append(cnd[rows])
            dirs.append(np.full(len(rows), d.index))
            groups.append(slice(start, start + len(rows)))
            start += len(rows)
    cat = lambda xs: torch.from_numpy(np.concatenate(xs))  # noqa: E731
    return to_diffusion_space(cat(x0s)), to_diffusion_space(cat(conds)), cat(dirs).long(), groups


def _loss(
    net: Denoiser, schedule: NoiseSchedule, cfg: TrainConfig, batch: tuple, gen: torch.Generator
) -> torch.Tensor:
    x0, cond, dirs, groups = batch
    n = x0.shape[0]
    t = torch.randint(0, schedule.num_steps, (n,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    keep = torch.rand(n, generator=gen) >= cfg.cond_drop_prob
    x0_hat = net(q_sample(x0, t, noise, schedule), t, cond, dirs, keep)
    loss = denoising_loss(x0_hat, x0)
    if cfg.infonce_weight > 0:
        terms = []
        for g in groups:
            k = keep[g]
            if int(k.sum()) >= 2:
                terms.append(info_nce(x0_hat[g][k], x0[g][k], cfg.infonce_temperature))
        if terms:
            loss = loss + cfg.infonce_weight * torch.stack(terms).mean()
    return loss


def train_bridge(
    pairs: dict[str, np.ndarray],
    *,
    cfg: TrainConfig,
    encoder_fingerprints: dict[str, str],
    on_step: OnStep | None = None,
) -> tuple[Bridge, TrainReport]:
    """Train a DiffGAP bridge on ``pairs`` (see the module docstring) -> ``(bridge, report)``.

    ``encoder_fingerprints``: modality name -> sha256 of the encoder that produced that modality's rows;
    stored in the bridge, which ``load_bridge`` then refuses for any other encoder.
    Deterministic for a given ``cfg.seed`` and thread count.
    """
    sets = split_pairs(pairs, cfg.val_fraction, cfg.seed)
    dim = sets[0].train_a.shape[1]
    schedule = NoiseSchedule(cfg.schedule, cfg.num_timesteps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = Denoiser(DenoiserConfig(dim=dim, hidden=cfg.hidden, depth=cfg.depth, expansion=cfg.expansion))
    ema = copy.deepcopy(net).requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    steps_per_epoch = max(1, math.ceil(max(len(s.train_a) for s in sets) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, min(cfg.warmup_steps, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.55 + 0.45 * math.cos(math.pi * min(1.0, s / total)))
    )
    history: list[float] = []
    seen, t_start, step = 0, time.perf_counter(), 0
    net.train()
    for epoch in range(cfg.epochs):
        cursors = [rng.permutation(len(s.train_a)) for s in sets]
        epoch_loss = 0.0
        for i in range(steps_per_epoch):
            batch = _step_batch(sets, cursors, i, cfg.batch_size)
            loss = _loss(net, schedule, cfg, batch, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                decay = min(cfg.ema_decay, (1 + step) / (10 + step))
                for pe, p in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(p, 1.0 - decay)
            seen += batch[0].shape[0]
            step += 1
            epoch_loss += loss.item()
            if on_step is not None:
                on_step(epoch, step - 1, loss.item(), seen / max(time.perf_counter() - t_start, 1e-9))
        history.append(epoch_loss / steps_per_epoch)
    seconds = time.perf_counter() - t_start
    directions = tuple(d for s in sets for d in directions_of_pair(s.a, s.b))
    bridge = Bridge(ema, schedule, cfg.sample, dict(encoder_fingerprints), directions, {}, cfg.to_dict())
    val, fusion = _validate(bridge, sets, cfg.max_val_pairs)
    bridge = Bridge(ema, schedule, cfg.sample, dict(encoder_fingerprints), directions, fusion, cfg.to_dict())
    report = TrainReport(
        n_train={s.name: len(s.train_a) for s in sets},
        n_val={s.name: len(s.val_a) for s in sets},
        epochs=cfg.epochs,
        steps=step,
        seconds=seconds,
        pairs_per_s=seen / max(seconds, 1e-9),
        loss_history=tuple(history),
        val=val,
        fusion={k: v.to_dict() for k, v in fusion.items()},
        num_parameters=ema.num_parameters(),
    )
    return bridge, report


def _validate(
    bridge: Bridge, sets: list[_PairSet], max_pairs: int
) -> tuple[dict[str, dict[str, float]], dict[str, FusionConfig]]:
    """Raw / bridged / fused R@1 on the held-out pairs, and fusion weights tuned on them (both query directions)."""
    val: dict[str, dict[str, float]] = {}
    fusion: dict[str, FusionConfig] = {}
    for s in sets:
        n = min(len(s.val_a), max_pairs)
        if n < 2:
            continue
        for (qm, q), (gm, g) in (((s.b, s.val_b[:n]), (s.a, s.val_a[:n])), ((s.a, s.val_a[:n]), (s.b, s.val_b[:n]))):
            raw = q @ g.T
            qb = bridge.apply(q, qm.value, gm.value) @ g.T
            ib = q @ bridge.apply(g, gm.value, qm.value).T
            key = f"{qm.value}->{gm.value}"
            cfg = tune_fusion(raw, qb, ib)
            fusion[key] = cfg


            val[key] = {
                "raw_R@1": retrieval_metrics(raw)["R@1"],
                "bridged_R@1": retrieval_metrics(qb)["R@1"],
                "fused_R@1": retrieval_metrics(fuse(raw, qb, ib, cfg))["R@1"],
            }
    return val, fusion


__all__ = ["OnStep", "TrainConfig", "TrainReport", "split_pairs", "train_bridge"]
