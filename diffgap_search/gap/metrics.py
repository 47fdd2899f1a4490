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

import numpy as np

KS: tuple[int, ...] = (1, 5, 10)
AP_CUTOFF = 10
_CHUNK = 1024  # query rows compared at once: bounds memory at _CHUNK x N


def relevant_ranks(
    sim: np.ndarray, query_labels: np.ndarray, item_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of every query's relevant items under the tie rule above.

    ``sim``: ``(Q, N)`` finite scores; ``query_labels``: ``(Q,)`` int; ``item_labels``: ``(N,)`` int.
    Returns ``(ranks, n_relevant)``: ``ranks (Q, R_max) int64``, row i holding its ``n_relevant[i]``
    ranks in increasing order then zeros; ``n_relevant (Q,) int64``. ValueError if a query has no
    relevant item or the scores are not finite.
    """
    sim = np.asarray(sim)
    if sim.dtype not in (np.float32, np.float64):
        sim = sim.astype(np.float64)
    ql, il = np.asarray(query_labels).ravel(), np.asarray(item_labels).ravel()
    if sim.ndim != 2 or sim.shape != (len(ql), len(il)):
        raise ValueError(f"sim must be (Q, N) = ({len(ql)}, {len(il)}), got {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("retrieval scores contain NaN or inf")
    labels, counts = np.unique(il, return_counts=True)
    pos = np.searchsorted(labels, ql)
    if len(labels):
        found = (pos < len(labels)) & (labels[np.minimum(pos, len(labels) - 1)] == ql)
    else:
        found = np.zeros(len(ql), dtype=bool)
    if not found.all():
        raise ValueError(f"query {int(np.flatnonzero(~found)[0])} has no relevant item")
    n_rel = counts[pos].astype(np.int64)
    ranks = np.zeros((len(ql), int(n_rel.max()) if len(ql) else 0), dtype=np.int64)
    for lo in range(0, len(ql), _CHUNK):
        hi = min(lo + _CHUNK, len(ql))
        ranks[lo:hi] = _chunk_ranks(sim[lo:hi], ql[lo:hi, None] == il[None, :], n_rel[lo:hi], ranks.shape[1])
    return ranks, n_rel


def _chunk_ranks(s: np.ndarray, rel: np.ndarray, n_rel: np.ndarray, r_max: int) -> np.ndarray:
    """Ranks of a chunk of queries: ``s (c, N)`` scores, ``rel (c, N) bool`` -> ``(c, r_max) int64``.

    The relevant scores are taken best first, one at a time (a tie between two relevant items takes two
    turns), and each is ranked after every irrelevant item scoring at least as much.
    """
    out = np.zeros((len(s), r_max), dtype=np.int64)
    remaining = np.where(rel, s, -np.inf)
    wrong = ~rel
    rows = np.arange(len(s))
    for j in range(r_max):
        best = remaining.argmax(axis=1)
        score = remaining[rows, best]
        remaining[rows, best] = -np.inf
        wrong_ge = ((s >= score[:, None]) & wrong).sum(axis=1)
        out[:, j] = np.where(j < n_rel, j + 1 + wrong_ge, 0)
    return out


def metrics_from_ranks(ranks: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """R@k (percent), median rank and mAP@10 (percent) from ``relevant_ranks``' output."""
    first = ranks[:, 0]
    out: dict[str, float] = {f"R@{k}": float(100.0 * np.mean(first <= k)) for k in ks}
    out["median_rank"] = float(np.floor(np.median(first)))
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
