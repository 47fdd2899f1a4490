"""A trained bridge on its fusion-validation groups: the sampler and the fusion weights tuned, R@1 reported.

Figures follow the standard protocol (``protocol``, ``metrics``) and the fused score is the one
``dgsearch query`` serves (``fusion.fused_unit_scores``), so what is tuned is what search computes.
Each candidate sampler (DDIM steps x guidance scale, ``training.TrainConfig``) bridges the validation
clips, the fusion weights are tuned for it per query direction, and the sampler whose fused scores are best
(mean R@1 over the directions, then mean mAP@10; ties to the earlier candidate) is kept with its weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .bridge import Bridge, SampleConfig
from .directions import Direction
from .fusion import FusionConfig, fused_unit_scores, tune_fusion
from .protocol import Task, first_groups, group_codes, tasks_for
from .selection import ApplyMemo, term_matrices
from .training_data import PairSet

Scores = dict[str, dict[str, float]]


def validation_tasks(sets: list[PairSet], max_groups: int, shared_spaces: Sequence[str] = (),
                     separate_spaces: Sequence[str] = ()) -> list[Task]:
    """Both query directions of every pair set with at least 2 validation groups (the first ``max_groups``);
    a pair set whose non-audio modality is in ``shared_spaces`` gets tasks whose raw term is served, one in
    ``separate_spaces`` tasks whose raw term is not (``TrainConfig``)."""
    tasks: list[Task] = []
    for s in sets:
        codes = group_codes(s.val_groups)
        if len(np.unique(codes)) < 2:
            continue
        keep = first_groups(codes, max_groups)
        tasks.extend(tasks_for(s.a.value, s.b.value, s.val_a[keep], s.val_b[keep], codes[keep],
                               s.b.value in shared_spaces, s.b.value in separate_spaces))  # a: audio (PAIR_SETS)
    return tasks


def _score(bridge: Bridge, tasks: list[Task]) -> tuple[Scores, dict[str, FusionConfig], tuple[float, float]]:
    memo = ApplyMemo(bridge, {}, share_roles=True)  # a pair set's shared vectors bridged once
    val: Scores = {}
    fusion: dict[str, FusionConfig] = {}
    r1, ap = [], []
    for task in tasks:
        qm, gm = task.queries.modality, task.items.modality
        if not all(d in bridge.directions for d in (Direction.of(qm, gm), Direction.of(gm, qm))):
            raw, qb = task.queries.vectors @ task.items.vectors.T, None
            if Direction.of(qm, gm) in bridge.directions:
                qb = memo.apply(task.queries.vectors, qm, gm) @ task.items.vectors.T
            val[task.key] = {"raw_R@1": task.vector_metrics(raw)["R@1"]}
            if qb is not None:
                m = task.vector_metrics(qb)
                val[task.key]["bridged_R@1"] = m["R@1"]
                r1.append(m["R@1"])
                ap.append(m["mAP@10"])
            continue
        raw, qb, ib = term_matrices(task, memo)
        cfg = tune_fusion(task, raw, qb, ib)
        fused = task.metrics(fused_unit_scores(task, raw, qb, ib, cfg))
        fusion[task.key] = cfg
        val[task.key] = {"raw_R@1": task.vector_metrics(raw)["R@1"], "bridged_R@1": task.vector_metrics(qb)["R@1"],
                         "fused_R@1": fused["R@1"]}
        r1.append(fused["R@1"])
        ap.append(fused["mAP@10"])
    key = (float(np.mean(r1)), float(np.mean(ap))) if r1 else (0.0, 0.0)
    return val, fusion, key


def validate(
    make: Callable[[SampleConfig, dict[str, FusionConfig]], Bridge],
    candidates: Sequence[SampleConfig],
    sets: list[PairSet],
    max_groups: int,
    shared_spaces: Sequence[str] = (),
    separate_spaces: Sequence[str] = (),
) -> tuple[SampleConfig, Scores, dict[str, FusionConfig]]:
    """Pick the sampler and the fusion weights on at most ``max_groups`` validation groups of each pair set.

    ``make(sample, fusion)`` builds the bridge with a sampler; ``candidates`` are tried in order. Returns
    ``(sampler, scores, fusion)``: ``scores`` per query direction (``"text->audio"`` ...) ``{"raw_R@1",
    "bridged_R@1", "fused_R@1"}`` for the sampler kept, ``fusion`` its tuned weights. With no pair set
    holding 2 validation groups the first candidate is kept with default weights. A direction the bridge
    serves one way only (the "no BST" ablation) reports its bridged R@1 and gets no fusion weights.
    ``shared_spaces`` / ``separate_spaces``: modalities whose raw cosine to audio is / is not a tuned term
    (``TrainConfig``).
    """
    tasks = validation_tasks(sets, max_groups, shared_spaces, separate_spaces)
    best: tuple[tuple[float, float], SampleConfig, Scores, dict[str, FusionConfig]] | None = None
    for sample in candidates if tasks else candidates[:1]:
        val, fusion, key = _score(make(sample, {}), tasks)
        if best is None or key > best[0]:
            best = (key, sample, val, fusion)
    assert best is not None
    return best[1], best[2], best[3]


__all__ = ["validate", "validation_tasks"]
