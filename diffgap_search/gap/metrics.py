"""Retrieval metrics from a similarity matrix whose ground truth is the diagonal (query i <-> item i).

Ranks are 1-based and pessimistic on ties: the rank of the true item i for query i is
``1 + #{j != i : sim[i, j] >= sim[i, i]}``, so a method that scores everything equal gets rank N, not 1.
With one relevant item per query, AP@10 is ``1 / rank`` when ``rank <= 10`` and 0 otherwise, so mAP@10
equals MRR@10.
"""

from __future__ import annotations

import numpy as np

KS: tuple[int, ...] = (1, 5, 10)


def true_ranks(sim: np.ndarray) -> np.ndarray:
    """``(Q, N)`` similarities with ``Q <= N`` and the truth of query i at column i -> ``(Q,) int64`` ranks."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] > sim.shape[1]:
        raise ValueError(f"sim must be (Q, N) with Q <= N, got {sim.shape}")
    q = sim.shape[0]
    diag = sim[np.arange(q), np.arange(q)]
    higher_or_tied = (sim >= diag[:, None]).sum(axis=1) - 1  # minus the true item itself
    return (1 + higher_or_tied).astype(np.int64)


def retrieval_metrics(sim: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """R@k for each k (percent), median rank, mAP@10 (percent) of a ``(Q, N)`` diagonal-truth similarity matrix."""
    ranks = true_ranks(sim)
    out: dict[str, float] = {f"R@{k}": float(100.0 * np.mean(ranks <= k)) for k in ks}
    out["median_rank"] = float(np.median(ranks))
    out["mAP@10"] = float(100.0 * np.mean(np.where(ranks <= 10, 1.0 / ranks, 0.0)))
    return out
