"""Retrieval metrics of the standard protocol (AudioCaps, Clotho; LAION-CLAP's evaluation).

A query may have several relevant items. Relevance comes from labels (clip ids as small integers):
query i and item j are relevant to each other when ``query_labels[i] == item_labels[j]``. Scores are a
``(Q, N)`` matrix, higher = closer.

**Ranks** are 1-based positions in the list sorted by score. Ties are broken *against the truth* but
never between the truths: every irrelevant item scoring ``>=`` a relevant one comes before it, and the
relevant items of one query never count against each other. With a query's relevant scores sorted
``s_1 >= s_2 >= ...``, the j-th relevant item's rank is ``j + #{irrelevant items scoring >= s_j}``. A
perfect encoder scores R@1 = 100 (a clip's five captions, or a duplicated audio row of the same clip,
are never counted against it: the classic bug), while a method that scores everything equal - a bridge
that collapsed to one vector - ranks the truth last, never first.

- ``R@k``: share of queries whose best-ranked relevant item is in the top k (text->audio: the caption's
  clip is in the top k of the gallery of unique clips; audio->text: any of the clip's captions is).
- ``median_rank``: of the best-ranked relevant item, ``floor(median)``, as X. Mei's
  ``audio-text_retrieval`` (``tools/utils.py``: ``np.floor(np.median(ranks)) + 1`` on 0-based ranks) and
  LAION-CLAP (``src/laion_clap/training/train.py``) report it.
- ``mAP@10``: per query ``(1/R) * sum_{j : r_j <= 10} j / r_j`` with ``r_1 < r_2 < ...`` the ranks of its
  R relevant items; with one relevant item that is ``1/r`` (MRR@10). This is LAION-CLAP's audio->text
  mAP@10 (``evaluate_clotho_audiocaps`` in ``src/laion_clap/training/train.py``: "sort the rank of 5 text,
  exclude the rank >= 10, compute np.mean(np.arange(1, len(ranks)+1) / ranks)", the sum divided by the 5
  captions), itself taken from Mei's ``a2t``, which sorts the ranks before numbering them. LAION's code
  numbers them in caption order without sorting, which its own docstring does not intend: we sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KS: tuple[int, ...] = (1, 5, 10)
AP_CUTOFF = 10
_CHUNK = 1024  # query rows compared at once: bounds memory at _CHUNK x N


@dataclass(frozen=True)
class Relevance:
    """Where each query's relevant items are, computed once per (queries, items) labelling.

    ``columns (Q, R_max) int64``: row i's relevant item columns in increasing order, then zeros;
    ``n_relevant (Q,) int64``; ``valid (Q, R_max) bool``: the columns that are real (not padding).
    """

    columns: np.ndarray
    n_relevant: np.ndarray
    valid: np.ndarray


def relevance(query_labels: np.ndarray, item_labels: np.ndarray) -> Relevance:
    """``(Q,)`` and ``(N,)`` int labels -> ``Relevance``. ValueError if a query has no relevant item."""
    ql, il = np.asarray(query_labels).ravel(), np.asarray(item_labels).ravel()
    order = np.argsort(il, kind="stable")
    ordered = il[order]
    lo, hi = np.searchsorted(ordered, ql, "left"), np.searchsorted(ordered, ql, "right")
    n_rel = (hi - lo).astype(np.int64)
    if (n_rel == 0).any():
        raise ValueError(f"query {int(np.flatnonzero(n_rel == 0)[0])} has no relevant item")
    k = np.arange(int(n_rel.max()) if len(ql) else 0)
    valid = k[None, :] < n_rel[:, None]
    columns = np.where(valid, order[np.minimum(lo[:, None] + k, max(len(il) - 1, 0))], 0)
    return Relevance(columns.astype(np.int64), n_rel, valid)


def relevant_ranks(
    sim: np.ndarray, query_labels: np.ndarray, item_labels: np.ndarray, rel: Relevance | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of every query's relevant items under the tie rule above.

    ``sim``: ``(Q, N)`` finite scores; ``query_labels``: ``(Q,)`` int; ``item_labels``: ``(N,)`` int;
    ``rel``: their ``relevance``, where the caller keeps it (``protocol.Task.relevance``).
    Returns ``(ranks, n_relevant)``: ``ranks (Q, R_max) int64``, row i holding its ``n_relevant[i]``
    ranks in increasing order then zeros; ``n_relevant (Q,) int64``. ValueError if a query has no
    relevant item or the scores are not finite.
    """
    sim = _scores(sim)
    ql, il = np.asarray(query_labels).ravel(), np.asarray(item_labels).ravel()
    if sim.ndim != 2 or sim.shape != (len(ql), len(il)):
        raise ValueError(f"sim must be (Q, N) = ({len(ql)}, {len(il)}), got {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("retrieval scores contain NaN or inf")
    rel = rel if rel is not None else relevance(ql, il)
    return ranks_of(sim, rel), rel.n_relevant


def _scores(sim: np.ndarray) -> np.ndarray:
    sim = np.asarray(sim)
    return sim if sim.dtype in (np.float32, np.float64) else sim.astype(np.float64)


def ranks_of(sim: np.ndarray, rel: Relevance, cutoff: int | None = None) -> np.ndarray:
    """``relevant_ranks``' ranks of finite ``(Q, N)`` scores whose relevance is known: ``(Q, R_max) int64``.

    Each relevant score (best first) is ranked ``j + #{items >= it} - #{relevant items >= it}``: one
    comparison pass over the scores per relevant item. With ``cutoff`` (what R@k and mAP@10 need) a rank
    above it reads ``cutoff + 1``, and a query with 3 or more relevant items is ranked from its
    ``cutoff + R_max`` best scores (``np.partition``) instead: above the lowest of them that count is exact;
    at or below it all ``cutoff + R_max`` are counted, of which at least ``cutoff`` are irrelevant, so the rank
    is beyond the cutoff either way. Padding reads 0.
    """
    sim = _scores(sim)
    q, n = sim.shape
    r_max = rel.columns.shape[1]
    s = np.where(rel.valid, sim[np.arange(q)[:, None], rel.columns], -np.inf)
    s = -np.sort(-s, axis=1)  # relevant scores best first, padding (-inf) last
    rel_ge = np.empty((q, r_max), dtype=np.int64)  # relevant items scoring >= the j-th (ties included)
    if r_max:
        rel_ge[:, -1] = r_max
    for j in range(r_max - 2, -1, -1):
        rel_ge[:, j] = np.where(s[:, j] == s[:, j + 1], rel_ge[:, j + 1], j + 1)
    if cutoff is not None and r_max >= 3 and n > cutoff + r_max:
        top = np.partition(sim, n - cutoff - r_max, axis=1)[:, n - cutoff - r_max:]
        all_ge = (top[:, None, :] >= s[:, :, None]).sum(axis=2)  # exact above the lowest of them, else K
    else:
        all_ge = np.zeros((q, r_max), dtype=np.int64)
        for lo in range(0, q, _CHUNK):
            block = sim[lo:lo + _CHUNK]
            for j in range(r_max):
                all_ge[lo:lo + _CHUNK, j] = np.count_nonzero(block >= s[lo:lo + _CHUNK, j:j + 1], axis=1)
    ranks = np.arange(1, r_max + 1, dtype=np.int64)[None, :] + all_ge - rel_ge
    if cutoff is not None:
        ranks = np.minimum(ranks, cutoff + 1)
    return np.where(rel.valid, ranks, 0)


def metrics_from_ranks(ranks: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """R@k (percent), median rank and mAP@10 (percent) from ``relevant_ranks``' output."""
    out = cutoff_metrics(ranks, n_relevant, ks)
    out["median_rank"] = float(np.floor(np.median(ranks[:, 0])))
    out["mAP@10"] = out.pop("mAP@10")
    return out


def cutoff_metrics(ranks: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """R@k (``k <= AP_CUTOFF``) and mAP@10, percent, from ranks that are exact up to ``AP_CUTOFF`` (``ranks_of``
    with ``cutoff=AP_CUTOFF``, or ``relevant_ranks``): equal to ``metrics_from_ranks``' figures, bit for bit."""
    first = ranks[:, 0]
    out: dict[str, float] = {f"R@{k}": float(100.0 * np.mean(first <= k)) for k in ks}
    j = np.arange(1, ranks.shape[1] + 1, dtype=np.float64)[None, :]
    within = (ranks >= 1) & (ranks <= AP_CUTOFF)
    ap = np.where(within, j / np.maximum(ranks, 1), 0.0).sum(axis=1) / n_relevant
    out["mAP@10"] = float(100.0 * np.mean(ap))
    return out


def retrieval_metrics(
    sim: np.ndarray,
    query_labels: np.ndarray | None = None,
    item_labels: np.ndarray | None = None,
    ks: tuple[int, ...] = KS,
) -> dict[str, float]:
    """R@k for each k (percent), median rank, mAP@10 (percent) of ``(Q, N)`` scores.

    Without labels the truth of query i is item i (``Q <= N``, one relevant item each).
    """
    sim = np.asarray(sim)
    if query_labels is None or item_labels is None:
        if sim.ndim != 2 or sim.shape[0] > sim.shape[1]:
            raise ValueError(f"sim must be (Q, N) with Q <= N, got {sim.shape}")
        query_labels, item_labels = np.arange(sim.shape[0]), np.arange(sim.shape[1])
    return metrics_from_ranks(*relevant_ranks(sim, query_labels, item_labels), ks=ks)


def true_ranks(sim: np.ndarray) -> np.ndarray:
    """``(Q, N)`` scores with ``Q <= N`` and the truth of query i at column i -> ``(Q,) int64`` ranks."""
    sim = np.asarray(sim)
    if sim.ndim != 2 or sim.shape[0] > sim.shape[1]:
        raise ValueError(f"sim must be (Q, N) with Q <= N, got {sim.shape}")
    return relevant_ranks(sim, np.arange(sim.shape[0]), np.arange(sim.shape[1]))[0][:, 0]
