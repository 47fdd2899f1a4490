"""Every gap-fixing method side by side on held-out pairs, both retrieval directions of every pair set.

Methods (query of modality A against items of modality B; baselines fitted on ``train_pairs``):

- ``raw``: cosine of the raw embeddings;
- ``mean_shift``: both sides centred by their modality's training mean and re-normalised;
- ``mean_shift_query``: query shifted by the gap vector ``mu_B - mu_A`` and re-normalised;
- ``ridge``: affine ridge map A -> B (alpha chosen on a holdout of the training pairs), re-normalised;
- ``procrustes``: centred orthogonal Procrustes map A -> B, re-normalised;
- ``diffgap``: the bridged query ``bridge(q, A -> B)`` against raw items;
- ``diffgap_fusion``: ``fusion.fuse`` of raw, bridged-query and bridged-item cosines, with the bridge's
  fusion weights for A -> B (tuned on its validation split) unless ``fusion`` overrides them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .baselines import LinearMap, MeanShift, l2n
from .bridge import Bridge
from .directions import PAIR_SETS, Modality
from .fusion import FusionConfig, fuse
from .metrics import retrieval_metrics

METHODS: tuple[str, ...] = (
    "raw",
    "mean_shift",
    "mean_shift_query",
    "ridge",
    "procrustes",
    "diffgap",
    "diffgap_fusion",
)


def _paired(pairs: Mapping[str, np.ndarray], a: Modality, b: Modality) -> tuple[np.ndarray, np.ndarray] | None:
    if a.value not in pairs or b.value not in pairs:
        return None
    xa, xb = np.asarray(pairs[a.value], np.float32), np.asarray(pairs[b.value], np.float32)
    ok = np.isfinite(xa).all(1) & np.isfinite(xb).all(1)
    return (l2n(xa[ok]), l2n(xb[ok])) if ok.sum() >= 2 else None


def score_matrices(
    q: np.ndarray, g: np.ndarray, qm: str, gm: str, train_q: np.ndarray, train_g: np.ndarray, bridge: Bridge,
    fusion: FusionConfig,
) -> dict[str, np.ndarray]:
    """``(Q, D)`` queries of modality ``qm`` vs ``(N, D)`` items of ``gm`` -> method -> ``(Q, N)`` scores."""
    shift = MeanShift.fit(train_q, train_g)
    raw = q @ g.T
    qb = bridge.apply(q, qm, gm) @ g.T
    ib = q @ bridge.apply(g, gm, qm).T
    return {
        "raw": raw,
        "mean_shift": shift.centre_query(q) @ shift.centre_gallery(g).T,
        "mean_shift_query": shift.shift_query(q) @ g.T,
        "ridge": LinearMap.fit_ridge(train_q, train_g)(q) @ g.T,
        "procrustes": LinearMap.fit_procrustes(train_q, train_g)(q) @ g.T,
        "diffgap": qb,
        "diffgap_fusion": fuse(raw, qb, ib, fusion),
    }


def evaluate_methods(
    train_pairs: Mapping[str, np.ndarray],
    test_pairs: Mapping[str, np.ndarray],
    bridge: Bridge,
    *,
    fusion: Mapping[str, FusionConfig] | None = None,
    max_test: int | None = None,
) -> dict[str, object]:
    """Evaluate all ``METHODS`` -> ``{"n_test": {pair set: n}, "results": {"text->audio": {method: metrics}}}``.

    ``train_pairs`` / ``test_pairs``: modality name -> ``(N, D) float32`` (NaN rows = missing), as for
    ``train_bridge``; ``test_pairs`` must be disjoint from the pairs the bridge was trained on.
    ``fusion``: optional ``"A->B"`` -> weights overriding the bridge's. ``max_test`` caps the test pairs
    per pair set (the first rows). Metrics are those of ``metrics.retrieval_metrics`` (percentages).
    """
    results: dict[str, dict[str, dict[str, float]]] = {}
    n_test: dict[str, int] = {}
    for a, b in PAIR_SETS:
        tr, te = _paired(train_pairs, a, b), _paired(test_pairs, a, b)
        if tr is None or te is None:
            continue
        if any(d not in bridge.directions for d in (f"{a.value}|{b.value}", f"{b.value}|{a.value}")):
            continue
        ta, tb = (x[:max_test] for x in te) if max_test else te
        n_test[f"{a.value}-{b.value}"] = len(ta)
        for (qm, q, trq), (gm, g, trg) in (
            ((b, tb, tr[1]), (a, ta, tr[0])),
            ((a, ta, tr[0]), (b, tb, tr[1])),
        ):
            key = f"{qm.value}->{gm.value}"
            fcfg = (fusion or {}).get(key) or bridge.fusion_for(qm.value, gm.value)
            scores = score_matrices(q, g, qm.value, gm.value, trq, trg, bridge, fcfg)
            results[key] = {m: retrieval_metrics(scores[m]) for m in METHODS}
    return {"n_test": n_test, "results": results}


def format_table(evaluation: Mapping[str, object]) -> str:
    """A markdown table: one row per (direction, method), columns R@1 R@5 R@10 median rank mAP@10."""
    lines = [
        "| direction | method | R@1 | R@5 | R@10 | median rank | mAP@10 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    results = evaluation["results"]
    assert isinstance(results, Mapping)
    for key, methods in results.items():
        for m, v in methods.items():
            lines.append(
                f"| {key} | {m} | {v['R@1']:.1f} | {v['R@5']:.1f} | {v['R@10']:.1f} | {v['median_rank']:.0f} "
                f"| {v['mAP@10']:.1f} |"
            )
    return "\n".join(lines)
