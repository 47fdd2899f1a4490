"""Scoring a query's terms against the index: candidates, final scores, groups of copies, presentation.

A term is one weighted cosine (``search.types.SearchTerm``: ``queries (Q, D) float32`` against a vector
space); a segment's score is the weighted mean of its terms' cosines, each the best over the term's query
rows. Candidates are each term's FAISS top-k plus the best of the vectors committed since publishing (or,
under a filter keeping few windows, the best of exactly those windows by one float32 product); every
candidate then gets its final score, exactly and by content (``search/rescore.py``), and the hits are
grouped into copies (``search/copies.py``). ``k`` grows until the first ``top_k`` groups are settled: each
scores above the most any window left out could score (the candidates' float32 bound plus
``rescore.float32_slack``), so neither a tie nor a copy is cut at the edge of FAISS's top-k.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.config import SearchConfig
from diffgap_search.search.copies import best, group_hits, shown
from diffgap_search.search.file_filter import Allowed, allowed_among, glob_match
from diffgap_search.search.rescore import (  # noqa: F401 - term_vectors, fused: part of this module's API
    final_scores,
    float32_cosines,
    float32_slack,
    fused,
    term_vectors,
    weighted_mean,
)
from diffgap_search.search.types import Hit, SearchTerm
from diffgap_search.store.filters import segments_of_files
from diffgap_search.store.index_budget import is_compressed
from diffgap_search.store.labels import labels_of
from diffgap_search.store.tags import tags_of
from diffgap_search.store.vector_index import LoadedIndex

if TYPE_CHECKING:
    from diffgap_search.search.open_index import OpenIndex

# A filter whose files hold at most this many windows is searched exactly over them (their vectors read
# from the catalog: ≈ 40 MB at D = 512), never through FAISS's top-k.
EXACT_FILTER_SEGMENTS = 20_000

Pool = tuple[np.ndarray, np.ndarray]  # (segment ids (n,) int64, float32 scores (n,) float64), best first


def search_terms(opened: OpenIndex, terms: list[SearchTerm], cfg: SearchConfig, allowed: Allowed,
                 exclude: frozenset[int] = frozenset()) -> tuple[list[Hit], float, float]:
    """The first ``cfg.top_k`` hits, one per content unless ``cfg.all_copies`` (:func:`rank_groups`), with
    their copies and tags, and the milliseconds spent finding and scoring candidates (FAISS) and presenting
    them (SQLite)."""
    groups, t_faiss, t_sql = rank_groups(opened, terms, cfg, allowed, exclude)
    t0 = time.perf_counter()
    hits = with_tags(opened, shown(opened.catalog, groups, all_copies=cfg.all_copies, allowed=allowed,
                                   exclude=exclude))
    return hits, t_faiss, t_sql + (time.perf_counter() - t0) * 1000


def rank_groups(opened: OpenIndex, terms: list[SearchTerm], cfg: SearchConfig, allowed: Allowed,
                exclude: frozenset[int] = frozenset()) -> tuple[list[list[Hit]], float, float]:
    """The first ``cfg.top_k`` groups of hits (copies of one content; one hit each with ``cfg.all_copies``),
    best first, by the weighted mean of the terms' cosines (final scores: ``search/rescore.py``), with the
    milliseconds spent in FAISS and in SQLite.

    ``allowed`` holds the ids of the files the filters let through, decided before ranking
    (``search/filters.py``; None: every file); ``exclude`` the files never to return (``similar``'s own).
    When the allowed files hold at most :data:`EXACT_FILTER_SEGMENTS` windows, exactly those windows are
    candidates (a filter keeping 3 files of a million finds them at once); otherwise FAISS's top-k with a
    growing ``k`` (module docstring).
    """
    t0 = time.perf_counter()
    indexes = [opened.index_for(t.space) for t in terms]  # one generation of each for the whole query
    loaded = {t.space: ix for t, ix in zip(terms, indexes)}
    pool: Pool | None = None
    # a file indexed ok holds a window, so more files than that hold more windows (FAISS's path is right either way)
    if isinstance(allowed, set) and len(allowed) <= EXACT_FILTER_SEGMENTS:  # listed (search/file_filter.py)
        seg_ids, _ = segments_of_files(opened.catalog, allowed)
        if len(seg_ids) <= EXACT_FILTER_SEGMENTS:
            pool = best_of(weighted_mean(opened, terms, seg_ids, float32_cosines, loaded))
    if pool is not None:
        n_total = len(pool[0])
    else:
        n_total = max(ix.ntotal + delta_count(opened, t.space, ix) for t, ix in zip(terms, indexes))
    slack = float32_slack(terms[0].queries.shape[1]) if terms else 0.0
    k = min(max(n_total, 1), cfg.top_k * (8 if cfg.group_by_file else 1) + 32)
    t_faiss, t_sql = (time.perf_counter() - t0) * 1000, 0.0
    while True:
        t0 = time.perf_counter()
        ids, bound = pool_top(pool, k) if pool is not None else faiss_top(opened, terms, indexes, k)
        scores = final_scores(opened, terms, ids, loaded)
        t1 = time.perf_counter()
        hits = resolve(opened, scores, cfg, allowed, exclude)
        groups = group_hits(opened.catalog, hits, by_window=not cfg.group_by_file, all_copies=cfg.all_copies)
        t2 = time.perf_counter()
        t_faiss += (t1 - t0) * 1000
        t_sql += (t2 - t1) * 1000
        if k >= n_total or settled(groups, cfg, bound + slack):
            return groups[: cfg.top_k], t_faiss, t_sql
        k = min(n_total, k * 4)


def settled(groups: Sequence[Sequence[Hit]], cfg: SearchConfig, bound: float) -> bool:
    """True when no window left out (each scoring at most ``bound``) can change the first ``cfg.top_k``
    groups: there are that many and the last scores above ``bound``, or ``bound`` is below ``--min-score``."""
    if cfg.min_score is not None and bound < cfg.min_score:
        return True
    return len(groups) >= cfg.top_k and best(groups[cfg.top_k - 1]).score > bound


def best_of(scores: dict[int, float]) -> Pool:
    """``scores`` as ``(ids, scores)`` arrays, best first (ties by id)."""
    ids = np.fromiter(scores.keys(), np.int64, len(scores))
    vals = np.fromiter(scores.values(), np.float64, len(scores))
    order = np.lexsort((ids, -vals))
    return ids[order], vals[order]


def pool_top(pool: Pool, k: int) -> tuple[list[int], float]:
    """The ``k`` best of ``pool`` and the float32 score of the best left out (-inf when none is)."""
    ids, vals = pool
    return ids[:k].tolist(), float(vals[k]) if k < len(ids) else -np.inf


def faiss_top(opened: OpenIndex, terms: list[SearchTerm], indexes: list[LoadedIndex], k: int) -> tuple[set[int], float]:
    """The union of the terms' candidates (:func:`candidates`) and the most a window left out can score by
    float32: the weighted mean of the bounds of the terms that left some out (exact for a window with a
    vector in each of their spaces, the usual case; a window missing some may be scored by fewer terms)."""
    ids: set[int] = set()
    num = den = 0.0
    for term, index in zip(terms, indexes):
        found, bound = candidates(opened, term.queries, term.space, index, k)
        ids |= found
        if np.isfinite(bound):
            num += term.weight * bound
            den += term.weight
    return ids, (num / den if den > 0 else -np.inf)


def delta_count(opened: OpenIndex, space: str, index: LoadedIndex) -> int:
    """How many vectors of ``space`` were committed since ``index`` was published (ids above its max)."""
    return opened.catalog.count_vectors(space, after_id=index.max_id)


def candidates(opened: OpenIndex, qvecs: np.ndarray, space: str, index: LoadedIndex, k: int) -> tuple[set[int], float]:
    """The ``k`` best segments of ``space`` for each of ``qvecs (Q, D) float32`` from FAISS, and the ``k`` best
    of those committed since publishing, with the float32 score above which nothing was left out (the
    highest score a row's ``k``-th candidate has; -inf when nothing was).

    A compressed index (``store/index_budget.py``) gives ``k · rescore_factor`` candidates by approximate
    scores, all re-scored exactly afterwards; its scores bound nothing (a code's score may be off by more
    than any slack), so its top-k is taken as settled: recall, not proof (measured in
    ``benchmarks/bench_large_index.py``)."""
    found: set[int] = set()
    bound = -np.inf
    approximate = is_compressed(index.kind)
    scores, ids = index.search(qvecs, k * opened.faiss_cfg.rescore_factor if approximate else k)
    found.update(int(i) for i in ids[ids >= 0].tolist())
    if index.ntotal > k and not approximate:
        full = ids[:, -1] >= 0  # a row with fewer than k results (IVF: its lists ran out) left none out
        if full.any():
            bound = float(scores[full, -1].max())
    for ids_d, vecs_d in opened.catalog.read_vectors(space, after_id=index.max_id):
        sims = (qvecs @ vecs_d.T).max(axis=0)
        if len(sims) > k:
            cut = np.argpartition(-sims, k)
            found.update(ids_d[cut[:k]].tolist())
            bound = max(bound, float(sims[cut[k:]].max()))
        else:
            found.update(ids_d.tolist())
    return found, bound


def resolve(opened: OpenIndex, scores: dict[int, float], cfg: SearchConfig, allowed: Allowed = None,
            exclude: frozenset[int] = frozenset()) -> list[Hit]:
    """The scored segments the catalog still holds, as hits best first, ties by path then start (one per
    file when grouping), after the ``min_score``, ``kind`` and path filters and without ``exclude``'s files."""
    rows = opened.catalog.hit_rows(scores)
    if allowed is not None or exclude:
        passing = allowed_among(allowed, {r.file_id for r in rows.values()})
        rows = {sid: r for sid, r in rows.items() if r.file_id in passing and r.file_id not in exclude}
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
                        sid, row.file_id, path_key=row.path_key))
    hits.sort(key=lambda h: (-h.score, h.path, h.start_s))
    if cfg.group_by_file:
        seen: set[int] = set()
        hits = [h for h in hits if not (h.file_id in seen or seen.add(h.file_id))]  # type: ignore[func-returns-value]
    return hits


def with_tags(opened: OpenIndex, hits: list[Hit]) -> list[Hit]:
    """The hits with their files' embedded tags and the user's labels (read for the hits shown only)."""
    files = {h.file_id for h in hits}
    tags = tags_of(opened.catalog, files)
    labels = labels_of(opened.catalog, files)
    return [replace(h, tags=tags.get(h.file_id, {}), labels=labels.get(h.file_id, [])) for h in hits]
