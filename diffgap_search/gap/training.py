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
with ``anchor = "ridge"`` (the default: a linear anchor) one of those maps per pair set is also the denoiser's
anchor, installed before training (``denoiser``): ridge, or Procrustes where validation is sure Procrustes +
fusion serves better (``anchor_kind``, ``anchor_choice``).

Ablation switches (``benchmarks/ablation_gap.py``; the defaults are the method): ``objective =
"regression"`` trains the same network as a one-step regressor (input always the zero vector at the
last timestep: no noise, no diffusion) with the same InfoNCE term; ``infonce_weight = 0`` drops the
Contrastive Diffusion Module; ``only_direction`` trains one direction alone with full batches (two such
networks are the "no BST" baseline).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ..threads import idle_cores, torch_threads
from .bridge import Bridge, SampleConfig
from .denoiser import Denoiser, DenoiserConfig
from .directions import Direction, directions_of_pair
from .groups import as_groups, group_keys
from .record import TrainingRecord, fit_pair_baselines
from .schedule import NoiseSchedule
from .train_config import OnStep, TrainConfig
from .training_data import MIN_PAIRS, Batcher, PairSet, check_pairs, confirmation_split, split_pairs
from .training_loop import optimise

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


def _record(sets: list[PairSet]) -> TrainingRecord:
    """The groups seen and the baselines fitted on the training pairs of every pair set."""
    train = group_keys(np.concatenate([s.train_groups for s in sets]))
    val = group_keys(np.concatenate([s.val_groups for s in sets]))
    baselines = {s.name: fit_pair_baselines(s.a.value, s.b.value, s.train_a, s.train_b, s.train_groups) for s in sets}
    return TrainingRecord(train, val, baselines)


def _install_anchors(net: Denoiser, record: TrainingRecord, kinds: dict[str, str]) -> None:
    """Give ``net`` each direction's linear map fitted on the training pairs (``record``) as its anchor: the kind
    ``kinds`` names for its pair set (``anchor_choice``; ridge where it names none)."""
    for name, pb in record.baselines.items():
        for qm, gm in ((pb.a, pb.b), (pb.b, pb.a)):
            m = pb.linear(kinds.get(name, "ridge"), qm, gm)
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
    from .anchor_choice import choose_anchors
    from .selection import choose_residual, counterpart_fusion, mirror_evidence, progress_score
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
    only = Direction(cfg.only_direction) if cfg.only_direction else None
    directions = tuple(d for s in sets for d in directions_of_pair(s.a, s.b) if only in (None, d))
    if not directions:
        raise ValueError(f"only_direction {cfg.only_direction!r} is not a direction of the pairs given")
    every = validation_tasks(sets, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    counterparts = counterpart_fusion(record, every) if cfg.anchor == "ridge" else None  # (weights, figures)
    kinds, kind_evidence = ({}, {}) if counterparts is None else choose_anchors(
        record, every, counterparts[0], cfg.anchor_kind, cfg.serve_confidence)
    if cfg.anchor == "ridge":
        _install_anchors(net, record, kinds)
    choice, confirm = confirmation_split(sets, cfg.val_fraction)  # halves: choices, then their confirmation
    tasks = validation_tasks(choice, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    confirm_tasks = validation_tasks(confirm, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    if not tasks or not confirm_tasks:  # too few validation clips to halve: choose and confirm on all of them
        tasks, confirm_tasks, choice = every, [], sets
    batcher = Batcher(sets, cfg.batch_size, np.random.default_rng(cfg.seed + 1), only)
    first_step = replace(cfg.sample, steps=1, guidance_scale=1.0, noise_scale=0.0, samples=1)

    chooses_residual = cfg.anchor == "ridge" and bool(cfg.residual_grid) and only is None
    tracks = [tasks] + ([confirm_tasks] if cfg.cross_fit and confirm_tasks and chooses_residual else [])

    def rate(net_now: Denoiser) -> list[tuple[float, float]]:
        return [progress_score(Bridge(net_now, schedule, first_step, {}, directions), t) for t in tracks]

    ema, history, steps, seen, seconds, checkpoint, mirror = optimise(net, schedule, cfg, batcher, on_step,
                                                                      rate if tasks and only is None else None)

    def make(sample: SampleConfig, fusion: dict, selection: dict | None = None) -> Bridge:
        return Bridge(ema, schedule, sample, dict(encoder_fingerprints), directions, fusion, cfg.to_dict(), record,
                      selection=selection)

    candidates = [cfg.sample]
    if cfg.tune_sampler:
        steps_grid = (1,) if cfg.objective == "regression" else cfg.steps_grid
        candidates = [replace(cfg.sample, steps=k, guidance_scale=g) for k in steps_grid for g in cfg.guidance_grid]
    sample, val, fusion = validate(make, candidates, choice, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    selection: dict[str, object] = {"checkpoint": checkpoint, "precision": "bf16" if cfg.use_bf16() else "fp32",
                                    "device": str(cfg.torch_device())}
    if chooses_residual and tasks:
        crossed = None
        if mirror is not None:  # cross-fitting: the same procedure on the other half, judged on the choice half
            twin = copy.deepcopy(ema)
            twin.load_state_dict(mirror)

            def make_twin(smp: SampleConfig, fus: dict, sel: dict | None = None) -> Bridge:
                return Bridge(twin, schedule, smp, {}, directions, fus, selection=sel, record=record)

            twin_sample = validate(make_twin, candidates, confirm, cfg.max_val_groups, cfg.shared_spaces,
                                   cfg.separate_spaces)[0]
            crossed = mirror_evidence(lambda a: make_twin(twin_sample, {}, a), confirm_tasks, tasks, cfg.residual_grid)
            checkpoint["mirror"] = {**checkpoint["mirror"], "sample": asdict(twin_sample)}  # type: ignore[dict-item]
        scales, alpha_fusion, alpha_val = choose_residual(
            lambda a: make(sample, {}, a), tasks, cfg.residual_grid, cfg.serve_confidence, confirm_tasks, every,
            crossed=crossed)
        fusion = {**fusion, **alpha_fusion}
        for key, figures in alpha_val.items():
            val[key] = {**val.get(key, {}), "full_residual_fused_R@1": val.get(key, {}).get("fused_R@1", 0.0),
                        **figures}
        assert counterparts is not None
        selection.update(**scales, counterpart_fusion=counterparts[0], counterparts_val=counterparts[1],
                         anchor_kind=kinds, anchor_evidence=kind_evidence)
    selection["val"] = val
    ema.cpu()  # validated on the training device; stored and served from the CPU
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


__all__ = ["MIN_PAIRS", "OnStep", "TrainConfig", "TrainReport", "train_bridge"]  # config re-exported from train_config
