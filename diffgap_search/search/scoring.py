"""Scoring a query's terms against the index: candidates, exact re-scoring, fusion, presentation.

A term is one weighted cosine (``search.types.SearchTerm``:
``queries (Q, D) float32`` against a vector space); a segment's score is the weighted mean of its terms'
cosines, each the best over the term's query rows. Candidates are each term's FAISS top-k plus the vectors
committed since publishing; with several terms every candidate is re-scored exactly. The vectors for that
come from the loaded FAISS index's own float32 copy where it holds them and is current
(``LoadedIndex.vectors_of``), and from the catalog otherwise.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.config import SearchConfig
from diffgap_search.search.filters import glob_match
from diffgap_search.search.types import Hit, SearchTerm
from diffgap_search.store.filters import segments_of_files
from diffgap_search.store.tags import tags_of
from diffgap_search.store.vector_index import REBUILD_KEY, LoadedIndex

if TYPE_CHECKING:
    from diffgap_search.search.open_index import OpenIndex

# A filter whose files hold at most this many windows is searched exactly over them (their vectors read
# from the catalog: ≈ 40 MB at D = 512), never through FAISS's top-k.
EXACT_FILTER_SEGMENTS = 20_000


def search_terms(opened: OpenIndex, terms: list[SearchTerm], cfg: SearchConfig,
                 allowed: set[int] | None) -> tuple[list[Hit], float, float]:
    """Hits scored by the weighted mean of the terms' cosines (each a max over its query rows), with the
    milliseconds spent finding and scoring candidates (FAISS) and presenting them (SQLite).

    Candidates are the union of every term's FAISS top-k (plus vectors committed since publishing);
    with several terms each candidate is re-scored exactly (:func:`fused`). ``k`` grows until enough hits
    pass the filters or every vector has been considered. ``allowed`` holds the ids of the files the filters
    let through, decided before ranking (``search/filters.py``; None: every file). When they hold at most :data:`EXACT_FILTER_SEGMENTS` windows,
    exactly those windows are scored (a filter keeping 3 files of a million finds them at once); a looser
    filter goes through FAISS with the growing ``k``.
    """
    t0 = time.perf_counter()
    if allowed is not None:
        seg_ids, seg_files = segments_of_files(opened.catalog, allowed)
        if len(seg_ids) <= EXACT_FILTER_SEGMENTS:
            scores = best_first(exact_scores(opened, terms, seg_ids), seg_ids, seg_files, cfg)
            t1 = time.perf_counter()
            hits = with_tags(opened, resolve(opened, scores, cfg, allowed)[: cfg.top_k])
            return hits, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000
    indexes = [opened.index_for(t.space) for t in terms]
    n_total = max(ix.ntotal + delta_count(opened, t.space, ix) for t, ix in zip(terms, indexes))
    k = min(max(n_total, 1), cfg.top_k * (8 if cfg.group_by_file else 1) + 32)
    t_faiss = t_sql = 0.0
    while True:
        t0 = time.perf_counter()
        found = [candidates(opened, t.queries, t.space, ix, k) for t, ix in zip(terms, indexes)]
        t1 = time.perf_counter()
        scores = found[0] if len(terms) == 1 else fused(opened, terms, found)
        hits = resolve(opened, scores, cfg, allowed)
        t2 = time.perf_counter()
        t_faiss += (t1 - t0) * 1000
        t_sql += (t2 - t1) * 1000
        if len(hits) >= cfg.top_k or k >= n_total:
            t3 = time.perf_counter()
            hits = with_tags(opened, hits[: cfg.top_k])
            return hits, t_faiss, t_sql + (time.perf_counter() - t3) * 1000
        k = min(n_total, k * 4)


def term_vectors(opened: OpenIndex, space: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (m,) int64, vectors (m, D) float32)``: the positions in ``ids (n,) int64`` that have a vector
    in ``space``, and those vectors.

    From the space's loaded FAISS index where it holds the id (its vectors are the catalog's, as published);
    from the catalog for the rest (committed since publishing), and for every id while the space awaits a
    rebuild (a new bridge replaced its vectors under the same ids: the published file still holds the old
    ones). An id the catalog has since deleted may still be read from the index: presenting it
    (:func:`resolve`) drops it, as it drops any id without a segment.
    """
    ids = np.asarray(ids, dtype=np.int64)
    held = np.zeros(len(ids), bool)
    rows: list[np.ndarray] = []
    vecs: list[np.ndarray] = []
    if space not in (opened.catalog.get_meta(REBUILD_KEY) or []):
        held, from_index = opened.index_for(space).vectors_of(ids)
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


def weighted_mean(opened: OpenIndex, terms: list[SearchTerm], ids: np.ndarray) -> dict[int, float]:
    """Exact weighted-mean scores of ``ids (n,) int64``; a term a segment has no vector for is left out of
    its mean, a segment with none is absent. One matrix product per term; each space read once."""
    num = np.zeros(len(ids), np.float64)
    den = np.zeros(len(ids), np.float64)
    read: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for term in terms:
        if term.space not in read:
            read[term.space] = term_vectors(opened, term.space, ids)
        rows, mat = read[term.space]
        if not len(rows):
            continue
        sims = (mat @ term.queries.T).max(axis=1)  # (m,) best over the query rows
        num[rows] += term.weight * sims.astype(np.float64)
        den[rows] += term.weight
    return {sid: float(n / d) for sid, n, d in zip(ids.tolist(), num, den) if d > 0}


def exact_scores(opened: OpenIndex, terms: list[SearchTerm], seg_ids: np.ndarray) -> dict[int, float]:
    """Exact weighted-mean scores of exactly ``seg_ids`` (``(n,) int64``, e.g. every window a filter keeps)."""
    return weighted_mean(opened, terms, np.asarray(seg_ids, dtype=np.int64))


def fused(opened: OpenIndex, terms: list[SearchTerm], found: list[dict[int, float]]) -> dict[int, float]:
    """Exact fused scores of the union of the terms' candidates (``found``: one ``{id: score}`` per term)."""
    return weighted_mean(opened, terms, np.asarray(sorted(set().union(*found)), dtype=np.int64))


def delta_count(opened: OpenIndex, space: str, index: LoadedIndex) -> int:
    """How many vectors of ``space`` were committed since ``index`` was published (ids above its max)."""
    return opened.catalog.count_vectors(space, after_id=index.max_id)


def candidates(opened: OpenIndex, qvecs: np.ndarray, space: str, index: LoadedIndex, k: int) -> dict[int, float]:
    """segment id -> best score over ``qvecs (Q, D) float32``, from FAISS plus the unpublished delta."""
    best: dict[int, float] = {}
    scores, ids = index.search(qvecs, k)
    for row_s, row_i in zip(scores, ids):
        for s, i in zip(row_s.tolist(), row_i.tolist()):
            if i >= 0 and s > best.get(i, -np.inf):
                best[i] = s
    for ids_d, vecs_d in opened.catalog.read_vectors(space, after_id=index.max_id):
        sims = (qvecs @ vecs_d.T).max(axis=0)
        for i, s in zip(ids_d.tolist(), sims.tolist()):
            if s > best.get(i, -np.inf):
                best[i] = s
    return best


def resolve(opened: OpenIndex, scores: dict[int, float], cfg: SearchConfig,
            allowed: set[int] | None = None) -> list[Hit]:
    """The scored segments the catalog still holds, as hits best first (one per file when grouping),
    after the ``min_score``, ``kind`` and path filters."""
    rows = opened.catalog.hit_rows(scores)
    if allowed is not None:
        rows = {sid: r for sid, r in rows.items() if r.file_id in allowed}
    captions = opened.catalog.captions_of({r.file_id for r in rows.values()})
    hits: list[Hit] = []
    for sid, row in rows.items():
        score = float(scores[sid])
        if cfg.min_score is not None and score < cfg.min_score:
            continue
        if cfg.kind is not None and row.kind != cfg.kind:
            continue
        if cfg.path_glob is not None and not glob_match(row.path, cfg.path_glob):
            continue
        caps = captions.get(row.file_id)
        hits.append(Hit(row.path, row.kind, row.start_s, row.end_s, score, caps[0] if caps else None,
                        sid, row.file_id))
    hits.sort(key=lambda h: (-h.score, h.path, h.start_s))
    if cfg.group_by_file:
        seen: set[int] = set()
        hits = [h for h in hits if not (h.file_id in seen or seen.add(h.file_id))]  # type: ignore[func-returns-value]
    return hits


def with_tags(opened: OpenIndex, hits: list[Hit]) -> list[Hit]:
    """The hits with their files' embedded tags (read for the hits shown only)."""
    tags = tags_of(opened.catalog, {h.file_id for h in hits})
    return [replace(h, tags=tags[h.file_id]) if h.file_id in tags else h for h in hits]


def best_first(scores: dict[int, float], seg_ids: np.ndarray, seg_files: np.ndarray,
               cfg: SearchConfig) -> dict[int, float]:
    """The scores of the best segments only: enough to hold ``cfg.top_k`` files (or segments without
    grouping) above ``cfg.min_score``, and every segment tied with the last one kept, so presenting them
    (:func:`resolve`) reads the catalog for a few rows, not for every window a filter lets through."""
    file_of = dict(zip(seg_ids.tolist(), seg_files.tolist()))
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    kept: dict[int, float] = {}
    units: set[int] = set()
    for sid, score in ranked:
        if cfg.min_score is not None and score < cfg.min_score:
            break
        if len(units) >= cfg.top_k and score < kept[next(reversed(kept))]:
            break
        kept[sid] = score
        units.add(file_of[sid] if cfg.group_by_file else sid)
    return kept
