"""Final scores: the one place a hit's score is computed, so equal sounds get equal scores, bit for bit.

A segment's score is the weighted mean of its terms' cosines, each the best over the term's query rows
(``search.types.SearchTerm``). FAISS's and BLAS's float32 kernels give scores that depend on where a vector
sits (its position in the index or in the candidate matrix picks the SIMD lane, block or tail loop that sums
it), so two identical vectors may score one ulp apart; and two byte-identical files embedded in different
encoder batches hold vectors a few ulps apart. Either way the order of "equal" hits would follow the
kernels, not the documented path-then-start rule. So every score that is shown or ranked is computed here:

1. **By content.** Each window is scored with the vectors of the same window of the first-indexed copy of
   its content (``store/copies.canonical_segments``: same ``sha256``, same ``seq``): copies of one file
   score exactly alike whichever batch embedded them.
2. **Exactly, row by row.** Each cosine is computed in float64 from the stored float32 vectors: the
   products are exact (24-bit mantissas, 48-bit products), and each row's 512 (``D``) products are summed
   by the same pairwise reduction, whatever the row's position, so identical vectors give identical bits
   (float64's error, ~1e-16, is far below anything a ranking resolves).

Rounding FAISS's float32 scores (to 1e-6, say) was the alternative, and was not chosen: two scores one ulp
apart (6e-8 near 1.0) still straddle a rounding boundary about one time in sixteen, so the tie would break
by chance, only more rarely.

The candidates' float32 scores (FAISS's, or a BLAS product over every window a filter keeps) only choose
which windows to score here: :func:`float32_slack` bounds how far they can be from these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.search.types import SearchTerm
from diffgap_search.store.copies import canonical_segments
from diffgap_search.store.vector_index import REBUILD_KEY, LoadedIndex

if TYPE_CHECKING:
    from diffgap_search.search.open_index import OpenIndex

Cosines = Callable[[np.ndarray, np.ndarray], np.ndarray]
_CHUNK = 1 << 20  # float64 elements per block of the exact product (8 MB)


def float32_slack(dim: int) -> float:
    """How far a float32 cosine of two unit ``dim``-vectors (FAISS, BLAS) may lie from the exact one, with
    room to spare: the rounding bound ``dim · 2⁻²⁴`` times 4 (covering the query's and the stored vectors'
    own float32 rounding, and copies' vectors a few ulps apart)."""
    return float(dim) * 2.0**-22


def exact_cosines(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``(m,) float64``: for each row of ``vectors (m, D) float32``, its best dot product over
    ``queries (Q, D) float32``, computed in float64 row by row (module docstring): identical rows give
    identical values wherever they sit."""
    vecs = np.asarray(vectors, dtype=np.float64)
    qs = np.asarray(queries, dtype=np.float64)
    out = np.full(len(vecs), -np.inf)
    rows = max(1, _CHUNK // max(1, vecs.shape[1] if vecs.ndim == 2 else 1))
    for q in qs:
        for start in range(0, len(vecs), rows):
            block = vecs[start : start + rows]
            np.maximum(out[start : start + rows], (block * q).sum(axis=1), out=out[start : start + rows])
    return out


def float32_cosines(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``(m,) float64``: the same best dot products by one float32 BLAS product (fast, within
    :func:`float32_slack` of :func:`exact_cosines`): for choosing candidates only."""
    return (np.asarray(vectors, np.float32) @ np.asarray(queries, np.float32).T).max(axis=1).astype(np.float64)


def term_vectors(opened: OpenIndex, space: str, ids: np.ndarray,
                 loaded: Mapping[str, LoadedIndex] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (m,) int64, vectors (m, D) float32)``: the positions in ``ids (n,) int64`` that have a vector
    in ``space``, and those vectors.

    From the space's loaded FAISS index where it holds the id (its vectors are the catalog's, as published);
    from the catalog for the rest (committed since publishing), and for every id while the space awaits a
    rebuild (a new bridge replaced its vectors under the same ids: the published file still holds the old
    ones). An id the catalog has since deleted may still be read from the index: presenting it drops it, as
    it drops any id without a segment. ``loaded``: the indexes a query found its candidates in (by space),
    so one query reads one generation even if a writer publishes another meanwhile; others are opened.
    """
    ids = np.asarray(ids, dtype=np.int64)
    held = np.zeros(len(ids), bool)
    rows: list[np.ndarray] = []
    vecs: list[np.ndarray] = []
    if space not in (opened.catalog.get_meta(REBUILD_KEY) or []):
        index = loaded[space] if loaded is not None and space in loaded else opened.index_for(space)
        held, from_index = index.vectors_of(ids)
        rows.append(np.flatnonzero(held))
        vecs.append(from_index)
    rest = np.flatnonzero(~held).tolist()
    if rest:
        from_catalog = opened.catalog.vectors_of(space, ids[rest].tolist())
        found = [j for j in rest if int(ids[j]) in from_catalog]
        rows.append(np.asarray(found, np.int64))
        vecs.append(np.stack([from_catalog[int(ids[j])] for j in found]) if found else np.zeros((0, 0), np.float32))
    kept = [(r, v) for r, v in zip(rows, vecs) if len(r)]
    if not kept:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return (np.concatenate([r for r, _ in kept]),
            np.concatenate([v for _, v in kept]).astype(np.float32, copy=False))


def weighted_mean(opened: OpenIndex, terms: Sequence[SearchTerm], ids: np.ndarray, cosines: Cosines = exact_cosines,
                  loaded: Mapping[str, LoadedIndex] | None = None) -> dict[int, float]:
    """Weighted-mean scores of ``ids (n,) int64`` by their own vectors; a term a segment has no vector for is
    left out of its mean, a segment with none is absent. Each space read once; ``cosines`` computes one
    term's best cosines (exact by default, :func:`float32_cosines` for candidates)."""
    ids = np.asarray(ids, dtype=np.int64)
    num = np.zeros(len(ids), np.float64)
    den = np.zeros(len(ids), np.float64)
    read: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for term in terms:
        if term.space not in read:
            read[term.space] = term_vectors(opened, term.space, ids, loaded)
        rows, mat = read[term.space]
        if not len(rows):
            continue
        num[rows] += term.weight * cosines(mat, term.queries)
        den[rows] += term.weight
    return {sid: float(n / d) for sid, n, d in zip(ids.tolist(), num, den) if d > 0}


def final_scores(opened: OpenIndex, terms: Sequence[SearchTerm], ids: Iterable[int],
                 loaded: Mapping[str, LoadedIndex] | None = None) -> dict[int, float]:
    """The scores of ``ids``, as shown and ranked: each window scored by its content's first-indexed copy,
    exactly (module docstring). Ids that are no window of an indexed file are absent."""
    canon = canonical_segments(opened.catalog, ids)
    scored = weighted_mean(opened, terms, np.asarray(sorted(set(canon.values())), dtype=np.int64),
                           loaded=loaded)
    return {sid: scored[c] for sid, c in canon.items() if c in scored}


def fused(opened: OpenIndex, terms: Sequence[SearchTerm], found: Sequence[dict[int, float]]) -> dict[int, float]:
    """Final scores of the union of the terms' candidates (``found``: one ``{id: score}`` per term)."""
    return final_scores(opened, terms, set().union(*found))
