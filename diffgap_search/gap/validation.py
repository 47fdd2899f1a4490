"""A trained bridge on its fusion-validation groups: raw / bridged / fused R@1, and the fusion weights tuned.

Figures follow the standard protocol (``protocol``, ``metrics``) and the fused score is the one
``dgsearch query`` serves (``fusion.fused_unit_scores``), so the weights are tuned on what search computes.
"""

from __future__ import annotations

import numpy as np

from .bridge import Bridge
from .fusion import FusionConfig, fused_unit_scores, tune_fusion
from .protocol import Task, first_groups, group_codes, tasks_for
from .training_data import PairSet


def term_matrices(task: Task, bridge: Bridge) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three ``(V_q, V_i)`` cosine terms of ``task``: raw, bridged query, bridged items."""
    q, g = task.queries.vectors, task.items.vectors
    qm, gm = task.queries.modality, task.items.modality
    return q @ g.T, bridge.apply(q, qm, gm) @ g.T, q @ bridge.apply(g, gm, qm).T


def validate(
    bridge: Bridge, sets: list[PairSet], max_groups: int
) -> tuple[dict[str, dict[str, float]], dict[str, FusionConfig]]:
    """Per query direction (``"text->audio"`` ...): ``{"raw_R@1", "bridged_R@1", "fused_R@1"}`` on at most
    ``max_groups`` validation groups of each pair set, and the fusion weights tuned there. A pair set with
    fewer than 2 validation groups is skipped (its directions keep the default weights)."""
    val: dict[str, dict[str, float]] = {}
    fusion: dict[str, FusionConfig] = {}
    for s in sets:
        codes = group_codes(s.val_groups)
        if len(np.unique(codes)) < 2:
            continue
        keep = first_groups(codes, max_groups)
        for task in tasks_for(s.a.value, s.b.value, s.val_a[keep], s.val_b[keep], codes[keep]):
            raw, qb, ib = term_matrices(task, bridge)
            cfg = tune_fusion(task, raw, qb, ib)
            fusion[task.key] = cfg
            val[task.key] = {
                "raw_R@1": task.vector_metrics(raw)["R@1"],
                "bridged_R@1": task.vector_metrics(qb)["R@1"],
                "fused_R@1": task.metrics(fused_unit_scores(task, raw, qb, ib, cfg))["R@1"],
            }
    return val, fusion


__all__ = ["term_matrices", "validate"]
