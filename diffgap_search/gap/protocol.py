"""The standard retrieval protocol on paired embeddings grouped by clip: what is a query, what is an item.

Pairs arrive as rows ``(x_a[i], x_b[i], group[i])``; a clip (group) may repeat its audio once per caption
and its captions once per window. The protocol (AudioCaps, Clotho; ``metrics``) wants a gallery of
*unique* clips, so each modality's rows are first reduced to the unique vectors of each group, then to
*units*:

- a clip-level modality (audio, video) has one unit per group: its unique vectors are the clip's windows,
  and a unit's score is the **maximum over its windows**, as ``dgsearch query`` ranks a file by its best
  window (and an audio or video query with several windows by its best one);
- text has one unit per unique caption.

A ``Task`` is one query direction (e.g. text->audio): every query unit is ranked against every item unit,
relevant when they share a group. A ``(V_q, V_i)`` matrix of vector scores is pooled to ``(U_q, U_i)`` by
``Task.pool``; fused scores pool each term over the query's vectors first, then take the weighted mean,
then pool over the item's vectors: the order ``search.Searcher`` computes them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .metrics import (AP_CUTOFF, KS, Relevance, cutoff_metrics, metrics_from_ranks, ranks_of, relevance,
                      relevant_ranks)

CLIP_LEVEL: frozenset[str] = frozenset({"audio", "video"})


@dataclass(frozen=True)
class Side:
    """One modality's unique vectors, sorted by unit.

    ``vectors (V, D) float32``; ``starts (U,) int64``: the first row of each unit (rows of a unit are
    contiguous); ``labels (U,) int64``: the group code of each unit.
    """

    modality: str
    vectors: np.ndarray
    starts: np.ndarray
    labels: np.ndarray

    @property
    def n_units(self) -> int:
        """U, the number of units (clips, or captions)."""
        return len(self.starts)

    def pool(self, sim: np.ndarray, axis: int) -> np.ndarray:
        """Maximum of ``sim`` over each unit's rows along ``axis`` (``V`` there becomes ``U``)."""
        if len(self.starts) == len(self.vectors):
            return sim
        return np.maximum.reduceat(sim, self.starts, axis=axis)


def build_side(modality: str, x: np.ndarray, codes: np.ndarray) -> Side:
    """Rows ``x (N, D) float32`` with group ``codes (N,) int64`` -> the modality's unique vectors per group.

    Duplicated rows of a group (a clip's audio repeated once per caption) are kept once. Deterministic:
    rows come out sorted by group code, then in order of first appearance.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    codes = np.asarray(codes, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(codes):
        raise ValueError(f"x must be (N, D) with N = len(codes) = {len(codes)}, got {x.shape}")
    first: dict[tuple[int, bytes], int] = {}
    for i, (c, row) in enumerate(zip(codes.tolist(), x)):
        first.setdefault((c, row.tobytes()), i)
    keep = np.array(sorted(first.values(), key=lambda i: (codes[i], i)), dtype=np.int64)
    vectors, vcodes = x[keep], codes[keep]
    if modality in CLIP_LEVEL:
        starts = np.flatnonzero(np.r_[True, vcodes[1:] != vcodes[:-1]]) if len(vcodes) else np.zeros(0, np.int64)
    else:
        starts = np.arange(len(vcodes))
    return Side(modality, vectors, starts.astype(np.int64), vcodes[starts])


@dataclass(frozen=True)
class Task:
    """One query direction of the protocol: ``queries`` units ranked against ``items`` units."""

    queries: Side
    items: Side
    shared_space: bool = False  # raw vectors of both sides in one space besides CLAP's text–audio (CAVP's video–audio)
    separate_space: bool = False  # raw vectors in unrelated spaces although text–audio (a text encoder of its own)

    @property
    def key(self) -> str:
        """``"text->audio"``: query modality -> item modality."""
        return f"{self.queries.modality}->{self.items.modality}"

    def pool(self, sim: np.ndarray) -> np.ndarray:
        """``(V_q, V_i)`` vector scores -> ``(U_q, U_i)`` unit scores (max over each unit's vectors)."""
        return self.items.pool(self.queries.pool(sim, axis=0), axis=1)

    def metrics(self, unit_scores: np.ndarray) -> dict[str, float]:
        """``metrics.retrieval_metrics`` of ``(U_q, U_i)`` unit scores (relevant = same group)."""
        return metrics_from_ranks(*relevant_ranks(unit_scores, self.queries.labels, self.items.labels, self.relevance))

    @cached_property
    def relevance(self) -> Relevance:
        """Where each query unit's relevant item units are (computed once per task)."""
        return relevance(self.queries.labels, self.items.labels)

    def cutoff_metrics(self, unit_scores: np.ndarray) -> dict[str, float]:
        """R@1, R@5, R@10 and mAP@10 of finite ``(U_q, U_i)`` unit scores, equal to ``metrics``' (no median
        rank): ranks are counted only as far as those need (``metrics.ranks_of``), the tuning loops' metric."""
        return cutoff_metrics(ranks_of(unit_scores, self.relevance, AP_CUTOFF), self.relevance.n_relevant, KS)

    def vector_metrics(self, sim: np.ndarray) -> dict[str, float]:
        """``metrics`` of ``(V_q, V_i)`` vector scores, pooled first."""
        return self.metrics(self.pool(sim))


def group_codes(groups: np.ndarray) -> np.ndarray:
    """Group ids (any values with a ``str``) -> ``(N,) int64`` codes, equal ids equal codes."""
    return np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)[1].astype(np.int64)


def tasks_for(
    a: str, b: str, xa: np.ndarray, xb: np.ndarray, codes: np.ndarray, shared_space: bool = False,
    separate_space: bool = False,
) -> tuple[Task, Task]:
    """Both directions of one pair set from paired rows ``xa, xb (N, D)`` -> ``(b->a, a->b)`` tasks;
    ``shared_space``: the two modalities' raw vectors lie in one space (see ``Task.shared_space``);
    ``separate_space``: they do not, although text and audio (see ``Task.separate_space``)."""
    side_a, side_b = build_side(a, xa, codes), build_side(b, xb, codes)
    return Task(side_b, side_a, shared_space, separate_space), Task(side_a, side_b, shared_space, separate_space)


def first_groups(codes: np.ndarray, limit: int | None) -> np.ndarray:
    """``(N,) bool``: rows of the first ``limit`` group codes (in code order); all rows when ``limit`` is None."""
    if limit is None:
        return np.ones(len(codes), dtype=bool)
    return np.isin(codes, np.unique(codes)[:limit])
