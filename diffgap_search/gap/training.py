"""Training a DiffGAP bridge from paired embeddings: Contrastive Diffusion Module + Bidirectional Split Training.

Input: ``pairs`` maps modality name -> ``(N, D) float32`` array; row i of every array belongs to pair i.
``"audio"`` is required, plus ``"text"`` and/or ``"video"``. A row of NaN marks a modality missing from
that pair (e.g. a clip with video but no caption); a pair set (audio-text, audio-video) uses the rows
where both sides are finite. ``groups (N,)`` names each pair's clip; without it, rows with identical
audio form a group (``groups.as_groups``). Rows are L2-normalised here.

Each step draws up to ``batch_size`` distinct pairs from every pair set (``training_data.Batcher``) and
splits them in half (BST): one half denoises side A given B, the other B given A, so both directions of
a pair set get the same number of examples at every step. The loss (CDM) is the x0 MSE plus
``infonce_weight`` times an InfoNCE term that keeps each denoised embedding closest to its own target
among the other targets of its direction in the batch (other pairs of the same clip are not negatives).
The condition is replaced by a learned null with probability ``cond_drop_prob`` (guidance).

A ``val_fraction`` of the groups, chosen by a salted hash of the group id, is held out: the report gives
raw vs bridged R@1 on it, and the sampler (DDIM steps, guidance scale) and the fusion weights are tuned on
it (never on anyone's test set; ``validation``). The mean shift, ridge and Procrustes baselines are fitted
on the very pairs the bridge trains on and kept with it (``record``), with the keys of every group it saw;
with ``anchor = "ridge"`` (the default) those ridge maps are also the denoiser's linear anchor, installed
before training (``denoiser``).

Ablation switches (``benchmarks/ablation_gap.py``; the defaults are the method): ``objective =
"regression"`` trains the same network as a one-step regressor (input always the zero vector at the
last timestep: no noise, no diffusion) with the same InfoNCE term; ``infonce_weight = 0`` drops the
Contrastive Diffusion Module; ``only_direction`` trains one direction alone with full batches (two such
networks are the "no BST" baseline).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ..errors import UsageError
from ..threads import idle_cores, torch_threads
from .bridge import Bridge, SampleConfig
from .denoiser import Denoiser, DenoiserConfig
from .diffusion import denoising_loss, info_nce, q_sample
from .directions import Direction, Modality, directions_of_pair
from .groups import as_groups, group_keys
from .record import TrainingRecord, fit_pair_baselines
from .schedule import NoiseSchedule, ScheduleKind
from .training_data import MIN_PAIRS, Batch, Batcher, PairSet, check_pairs, confirmation_split, split_pairs

OnStep = Callable[[int, int, float, float], None]
"""``on_step(epoch, step, loss, pairs_per_s)``: called after every optimiser step (epoch and step from 0)."""


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
    max_val_groups: int = 2000
    seed: int = 0
    hidden: int = 512
    depth: int = 3
    expansion: int = 2
    schedule: ScheduleKind = ScheduleKind.COSINE_V1
    num_timesteps: int = 1000
    sample: SampleConfig = field(default_factory=SampleConfig)
    anchor: str = "ridge"
    objective: str = "diffusion"  # or "regression" (ablation: no diffusion)
    only_direction: str | None = None  # e.g. "audio|text" (ablation: no BST)
    tune_sampler: bool = True  # pick steps and guidance on validation; False keeps ``sample`` as given
    guidance_grid: tuple[float, ...] = (1.0, 1.5, 2.0)
    steps_grid: tuple[int, ...] = (1, 4)
    # Modalities besides text whose raw vectors lie in the audio rows' space (("video",) when the video
    # encoder is CAVP): their raw cosine to audio is a fusion term, tuned on validation like text's.
    shared_spaces: tuple[str, ...] = ()
    # Validation chooses what is served (``selection``): the network is rated every ``eval_every`` epochs and
    # the best-rated weights kept; training stops after ``patience`` ratings without improvement (0: runs
    # every epoch, still keeping the best). ``residual_grid``: the residual scales tried per direction
    # (empty: serve the full residual, alpha = 1). ``dropout``: inside the denoiser's blocks.
    patience: int = 5
    eval_every: int = 1
    residual_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    # a residual is served only if each task beats the anchor in this share of resamples of the confirmation half of
    # the validation clips, which took part in no choice (0: no test; ``selection.choose_residual``)
    serve_confidence: float = 0.9
    dropout: float = 0.0
    # "auto": bfloat16 autocast for the forward pass on CPUs with native bf16 (AVX512-BF16 / AMX: about 1.5x
    # faster), float32 elsewhere; "bf16" / "fp32" force one. Weights, optimiser and EMA stay float32.
    precision: str = "auto"
    # torch threads of the run; 0: as many as the machine has idle cores now (``threads.idle_cores``)
    threads: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 4:
            raise ValueError("TrainConfig needs epochs >= 1 and batch_size >= 4")
        if self.objective not in ("diffusion", "regression"):
            raise ValueError(f"TrainConfig.objective must be 'diffusion' or 'regression', got {self.objective!r}")
        if self.only_direction is not None:
            Direction(self.only_direction)
        if not self.guidance_grid or not self.steps_grid or min(self.guidance_grid) < 0 or min(self.steps_grid) < 1:
            raise ValueError("TrainConfig needs non-empty grids of guidance scales >= 0 and steps >= 1")
        object.__setattr__(self, "guidance_grid", tuple(float(g) for g in self.guidance_grid))
        object.__setattr__(self, "steps_grid", tuple(int(k) for k in self.steps_grid))
        object.__setattr__(self, "shared_spaces", tuple(Modality(m).value for m in self.shared_spaces))
        if "audio" in self.shared_spaces:
            raise ValueError("TrainConfig.shared_spaces names the modalities that share the audio space, not audio")
        if self.patience < 0 or self.eval_every < 1 or self.threads < 0:
            raise ValueError("TrainConfig needs patience >= 0, eval_every >= 1 and threads >= 0")
        if any(not 0.0 <= a <= 1.0 for a in self.residual_grid):
            raise ValueError(f"TrainConfig.residual_grid holds scales in [0, 1], got {self.residual_grid}")
        object.__setattr__(self, "residual_grid", tuple(float(a) for a in self.residual_grid))
        if not 0.0 <= self.serve_confidence <= 1.0:
            raise ValueError(f"TrainConfig.serve_confidence must be in [0, 1], got {self.serve_confidence}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"TrainConfig.precision must be auto, bf16 or fp32, got {self.precision!r}")
        if not 0.0 <= self.val_fraction < 1.0 or not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError("val_fraction and cond_drop_prob must be in [0, 1)")
        object.__setattr__(self, "schedule", ScheduleKind(self.schedule))

    def with_guidance(self, value: str) -> TrainConfig:
        """``--guidance``: ``"auto"`` tunes the scale on validation over ``guidance_grid``; a number >= 0 fixes
        it (1 = plain conditional sampling; the DDIM steps are still chosen on validation). UsageError else."""
        if value.strip().lower() == "auto":
            return self
        try:
            scale = float(value)
        except ValueError:
            scale = -1.0
        if not (scale >= 0 and math.isfinite(scale)):
            raise UsageError(f"--guidance takes 'auto' or a scale >= 0 (1 = no guidance), got {value!r}")
        return replace(self, guidance_grid=(scale,), sample=replace(self.sample, guidance_scale=scale))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        d = asdict(self)
        d["schedule"] = self.schedule.value
        d["guidance_grid"], d["steps_grid"] = list(self.guidance_grid), list(self.steps_grid)
        d["shared_spaces"] = list(self.shared_spaces)
        d["residual_grid"] = list(self.residual_grid)
        return d

    def use_bf16(self) -> bool:
        """Whether the forward pass runs under bfloat16 autocast (``precision``)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
            return False


@dataclass(frozen=True)
class TrainReport:
    """What a training run did. ``n_train`` / ``n_val``: pairs per pair set; ``n_groups``: ``{"train", "val"}``
    groups; ``val``: retrieval key (``"text->audio"``) -> ``{"raw_R@1", "bridged_R@1", "fused_R@1"}`` with the
    sampler chosen (``sample``, ``SampleConfig`` as a dict)."""

    n_train: dict[str, int]
    n_val: dict[str, int]
    n_groups: dict[str, int]
    epochs: int
    steps: int
    seconds: float
    pairs_per_s: float
    loss_history: tuple[float, ...]
    val: dict[str, dict[str, float]]
    fusion: dict[str, dict[str, float]]
    num_parameters: int
    sample: dict[str, object] = field(default_factory=dict)  # the sampler chosen on validation
    selection: dict[str, object] = field(default_factory=dict)  # what validation chose (``Bridge.selection``)


def _loss(net: Denoiser, schedule: NoiseSchedule, cfg: TrainConfig, batch: Batch, gen: torch.Generator) -> torch.Tensor:
    """x0 MSE + ``infonce_weight`` x InfoNCE (per direction half, conditioned rows only); scalar."""
    x0 = batch.x0
    n = x0.shape[0]
    keep = torch.rand(n, generator=gen) >= cfg.cond_drop_prob
    if cfg.objective == "regression":  # the sampler's first step from the zero start, and nothing else
        t = torch.full((n,), schedule.num_steps - 1, dtype=torch.int64)
        x_t = torch.zeros_like(x0)
    else:
        t = torch.randint(0, schedule.num_steps, (n,), generator=gen)
        x_t = q_sample(x0, t, torch.randn(x0.shape, generator=gen), schedule)
    x0_hat = net(x_t, t, batch.cond, batch.direction, keep)
    loss = denoising_loss(x0_hat, x0)
    if cfg.infonce_weight > 0:
        terms = []
        for g in batch.halves:
            k = keep[g]
            if int(k.sum()) >= 2:
                terms.append(info_nce(x0_hat[g][k], x0[g][k], cfg.infonce_temperature, batch.codes[g][k]))
        if terms:
            loss = loss + cfg.infonce_weight * torch.stack(terms).mean()
    return loss


Check = Callable[[Denoiser], tuple[float, float]]


def _optimise(
    net: Denoiser, schedule: NoiseSchedule, cfg: TrainConfig, batcher: Batcher, on_step: OnStep | None,
    check: Check | None = None,
) -> tuple[Denoiser, list[float], int, int, float, dict[str, object]]:
    """The training loop -> ``(ema network, loss per epoch, steps, pairs seen, seconds, checkpoint)``.

    With ``check`` (``selection.progress_score`` on the validation clips) the EMA network is rated every
    ``cfg.eval_every`` epochs by its served R@1 plus its bridged-query R@1 (the served score alone sits near
    its ceiling and stays flat for epochs while the network still improves: it stopped a run at epoch 5 that
    40 epochs took 11 points further on test, ``benchmarks/diagnose_gap.py``); the best-rated weights are
    returned (ties to the earlier) and the loop stops after ``cfg.patience`` ratings without improvement. ``checkpoint``: ``{"epoch", "epochs_run", "stopped_early", "scores"}``
    (``scores``: ``[epoch, served R@1, bridged R@1]`` per rating; ``epoch`` counts from 1).
    """
    ema = copy.deepcopy(net).requires_grad_(False)
    bf16 = cfg.use_bf16()
    gen = torch.Generator().manual_seed(cfg.seed)
    total = cfg.epochs * batcher.steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, min(cfg.warmup_steps, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.55 + 0.45 * math.cos(math.pi * min(1.0, s / total)))
    )
    history: list[float] = []
    seen, t_start, step = 0, time.perf_counter(), 0
    scores: list[list[float]] = []
    best: tuple[tuple[float, float], int, dict[str, torch.Tensor]] | None = None
    stale = 0
    params, ema_params = list(net.parameters()), list(ema.parameters())
    net.train()
    for epoch in range(cfg.epochs):
        batcher.new_epoch()
        epoch_loss = 0.0
        for i in range(batcher.steps_per_epoch):
            batch = batcher.batch(i)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = _loss(net, schedule, cfg, batch, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                decay = min(cfg.ema_decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema_params, params, 1.0 - decay)
            seen += batch.x0.shape[0]
            step += 1
            value = loss.item()
            epoch_loss += value
            if on_step is not None:
                on_step(epoch, step - 1, value, seen / max(time.perf_counter() - t_start, 1e-9))
        history.append(epoch_loss / batcher.steps_per_epoch)
        if check is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            score = check(ema)
            scores.append([epoch + 1, round(score[0], 4), round(score[1], 4)])
            if best is None or sum(score) > sum(best[0]):
                best, stale = (score, epoch + 1, copy.deepcopy(ema.state_dict())), 0
            else:
                stale += 1
                if cfg.patience and stale >= cfg.patience:
                    break
    seconds = time.perf_counter() - t_start
    chosen: dict[str, object] = {"epoch": len(history), "epochs_run": len(history), "stopped_early": False,
                                 "scores": scores}
    if best is not None:
        ema.load_state_dict(best[2])
        chosen.update(epoch=best[1], stopped_early=len(history) < cfg.epochs)
    return ema, history, step, seen, seconds, chosen


def _record(sets: list[PairSet]) -> TrainingRecord:
    """The groups seen and the baselines fitted on the training pairs of every pair set."""
    train = group_keys(np.concatenate([s.train_groups for s in sets]))
    val = group_keys(np.concatenate([s.val_groups for s in sets]))
    baselines = {s.name: fit_pair_baselines(s.a.value, s.b.value, s.train_a, s.train_b, s.train_groups) for s in sets}
    return TrainingRecord(train, val, baselines)


def _install_anchors(net: Denoiser, record: TrainingRecord) -> None:
    """Give ``net`` each direction's ridge map, fitted on the training pairs (``record``), as its anchor."""
    for pb in record.baselines.values():
        for qm, gm in ((pb.a, pb.b), (pb.b, pb.a)):
            m = pb.linear("ridge", qm, gm)
            net.set_anchor(Direction.of(qm, gm).index, *(torch.from_numpy(v) for v in (m.mu_src, m.weight, m.mu_tgt)))


def train_bridge(
    pairs: dict[str, np.ndarray],
    *,
    cfg: TrainConfig,
    encoder_fingerprints: dict[str, str],
    groups: np.ndarray | None = None,
    on_step: OnStep | None = None,
) -> tuple[Bridge, TrainReport]:
    """Train a DiffGAP bridge on ``pairs`` grouped by ``groups`` (see the module docstring) -> ``(bridge, report)``.

    ``encoder_fingerprints``: modality name -> sha256 of the encoder that produced that modality's rows;
    stored in the bridge, which ``load_bridge`` then refuses for any other encoder.
    Deterministic for a given ``cfg.seed`` and thread count (``cfg.threads``; 0 picks the idle cores).
    """
    threads = cfg.threads or idle_cores(torch.get_num_threads())
    with torch_threads(threads):
        bridge, report = _train(pairs, cfg, encoder_fingerprints, groups, on_step)
    report.selection["threads"] = threads
    return bridge, report


def _train(pairs: dict[str, np.ndarray], cfg: TrainConfig, encoder_fingerprints: dict[str, str],
           groups: np.ndarray | None, on_step: OnStep | None) -> tuple[Bridge, TrainReport]:
    from .selection import choose_residual, counterpart_fusion, progress_score
    from .validation import validate, validation_tasks

    arrays = check_pairs(pairs)
    sets = split_pairs(arrays, as_groups(groups, arrays["audio"]), cfg.val_fraction)
    dim = sets[0].train_a.shape[1]
    schedule = NoiseSchedule(cfg.schedule, cfg.num_timesteps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = Denoiser(DenoiserConfig(dim=dim, hidden=cfg.hidden, depth=cfg.depth, expansion=cfg.expansion,
                                      anchor=cfg.anchor, dropout=cfg.dropout))
    record = _record(sets)
    if cfg.anchor == "ridge":
        _install_anchors(net, record)
    only = Direction(cfg.only_direction) if cfg.only_direction else None
    directions = tuple(d for s in sets for d in directions_of_pair(s.a, s.b) if only in (None, d))
    if not directions:
        raise ValueError(f"only_direction {cfg.only_direction!r} is not a direction of the pairs given")
    every = validation_tasks(sets, cfg.max_val_groups, cfg.shared_spaces)
    choice, confirm = confirmation_split(sets, cfg.val_fraction)  # halves: choices, then their confirmation
    tasks = validation_tasks(choice, cfg.max_val_groups, cfg.shared_spaces)
    confirm_tasks = validation_tasks(confirm, cfg.max_val_groups, cfg.shared_spaces)
    if not tasks or not confirm_tasks:  # too few validation clips to halve: choose and confirm on all of them
        tasks, confirm_tasks, choice = every, [], sets
    batcher = Batcher(sets, cfg.batch_size, np.random.default_rng(cfg.seed + 1), only)
    first_step = replace(cfg.sample, steps=1, guidance_scale=1.0, noise_scale=0.0, samples=1)

    def rate(net_now: Denoiser) -> tuple[float, float]:
        return progress_score(Bridge(net_now, schedule, first_step, {}, directions), tasks)

    ema, history, steps, seen, seconds, checkpoint = _optimise(net, schedule, cfg, batcher, on_step,
                                                               rate if tasks and only is None else None)

    def make(sample: SampleConfig, fusion: dict, selection: dict | None = None) -> Bridge:
        return Bridge(ema, schedule, sample, dict(encoder_fingerprints), directions, fusion, cfg.to_dict(), record,
                      selection=selection)

    candidates = [cfg.sample]
    if cfg.tune_sampler:
        steps_grid = (1,) if cfg.objective == "regression" else cfg.steps_grid
        candidates = [replace(cfg.sample, steps=k, guidance_scale=g) for k in steps_grid for g in cfg.guidance_grid]
    sample, val, fusion = validate(make, candidates, choice, cfg.max_val_groups, cfg.shared_spaces)
    selection: dict[str, object] = {"checkpoint": checkpoint, "precision": "bf16" if cfg.use_bf16() else "fp32"}
    if cfg.anchor == "ridge" and cfg.residual_grid and only is None and tasks:
        scales, alpha_fusion, alpha_val = choose_residual(
            lambda a: make(sample, {}, a), tasks, cfg.residual_grid, cfg.serve_confidence, confirm_tasks, every)
        fusion = {**fusion, **alpha_fusion}
        for key, figures in alpha_val.items():
            val[key] = {**val.get(key, {}), "full_residual_fused_R@1": val.get(key, {}).get("fused_R@1", 0.0),
                        **figures}
        weights, counterparts = counterpart_fusion(record, every)
        selection.update(**scales, counterpart_fusion=weights, counterparts_val=counterparts)
    selection["val"] = val
    bridge = make(sample, fusion, selection)
    report = TrainReport(
        n_train={s.name: len(s.train_a) for s in sets},
        n_val={s.name: len(s.val_a) for s in sets},
        n_groups={"train": len(record.train_groups), "val": len(record.val_groups)},
        epochs=cfg.epochs,
        steps=steps,
        seconds=seconds,
        pairs_per_s=seen / max(seconds, 1e-9),
        loss_history=tuple(history),
        val=val,
        fusion={k: v.to_dict() for k, v in fusion.items()},
        num_parameters=ema.num_parameters(),
        sample=asdict(sample),
        selection=selection,
    )
    return bridge, report


__all__ = ["MIN_PAIRS", "OnStep", "TrainConfig", "TrainReport", "train_bridge"]
