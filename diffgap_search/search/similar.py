"""``dgsearch similar``: the sounds nearest to one file or one window of the library.

The target is resolved in this order:

1. an existing file that the index holds (status ok): its stored ``audio`` vectors, ``(W, D) float32``, one
   per window — nothing is decoded or embedded;
2. any other existing audio (or video) file: embedded like ``dgsearch query --audio`` (the index's model
   and windowing);
3. an integer: a segment id (as ``--segments`` and ``--json`` print them): that window's stored vector.

Then it is an audio-by-example search through ``Searcher`` (same filters, grouping and output as
``dgsearch query``): a window's score is its best cosine over the target's windows. The target's own file
is never a hit, nor listed among a hit's copies; its copies at other paths are one hit (by default, as every
content: ``search/copies.py``), with a score near 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from diffgap_search.config import SearchConfig
from diffgap_search.errors import InputNotFoundError, UsageError
from diffgap_search.media.discover import path_key
from diffgap_search.search.embedding import longest, query_vectors, query_windows
from diffgap_search.search.searcher import Searcher
from diffgap_search.search.timeline import Timeline, per_window
from diffgap_search.search.types import Query, SearchResult, SearchTerm
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.similarity_rows import file_segment_ids, segment_file_id


def target_vectors(searcher: Searcher, target: str) -> tuple[np.ndarray, int | None, float]:
    """``(vectors (Q, D) float32, the target's file id or None, the seconds of its longest window)`` for
    ``target`` (a path or a segment id; module docstring). Raises InputNotFoundError when it is neither."""
    catalog = searcher.catalog
    path = Path(target)
    if path.is_file():
        row = catalog.file_by_key(path_key(path))
        if row is not None and row.status == "ok":
            found = catalog.vectors_of("audio", file_segment_ids(catalog, row.id))
            if found:
                return np.stack([found[i] for i in sorted(found)]), row.id, longest_window(catalog, found)
        vectors, seconds = query_vectors(searcher.opened, Query(audio=path), use_bridge=searcher.use_bridge)
        return vectors, None, seconds or 0.0
    if target.strip().isdigit():
        segment = int(target)
        file_id = segment_file_id(catalog, segment)
        vector = catalog.vectors_of("audio", [segment]).get(segment) if file_id is not None else None
        if vector is None:
            raise InputNotFoundError(f"segment {segment} is not in index {searcher.index_dir} (or has no audio vector)")
        return vector[None, :], file_id, longest_window(catalog, [segment])
    raise InputNotFoundError(f"{target} is neither a file nor a segment id of index {searcher.index_dir}")


def longest_window(catalog: Catalog, segment_ids: Iterable[int]) -> float:
    """The seconds of the longest of the indexed windows ``segment_ids`` (0 for none)."""
    return longest([(r.start_s, r.end_s) for r in catalog.hit_rows(list(segment_ids)).values()])


def target_windows(searcher: Searcher, target: str) -> tuple[np.ndarray, list[tuple[float, float]], int | None]:
    """``(vectors (W, D) float32, each window's seconds, the target's file id or None)`` for ``similar
    --timeline``: an indexed file's stored windows in time order, another file's windows embedded as a query
    file's, or one segment. Raises InputNotFoundError as :func:`target_vectors`."""
    catalog = searcher.catalog
    path = Path(target)
    if path.is_file():
        row = catalog.file_by_key(path_key(path))
        if row is not None and row.status == "ok":
            ids = file_segment_ids(catalog, row.id)
            found = catalog.vectors_of("audio", ids)
            rows = catalog.hit_rows(ids)
            kept = [i for i in ids if i in found and i in rows]
            if kept:
                return (np.stack([found[i] for i in kept]), [(rows[i].start_s, rows[i].end_s) for i in kept], row.id)
        vectors, spans = query_windows(searcher.opened, Query(audio=path), use_bridge=searcher.use_bridge)
        return vectors, spans, None
    vectors, file_id, _ = target_vectors(searcher, target)
    row = catalog.hit_rows([int(target)])[int(target)]
    return vectors, [(row.start_s, row.end_s)], file_id


def similar_timeline(searcher: Searcher, target: str, cfg: SearchConfig = SearchConfig()) -> Timeline:
    """The hits nearest to each window of ``target`` in its order, its own file left out (``--timeline``)."""
    if not target.strip():
        raise UsageError("give a file or a segment id: dgsearch similar FILE")
    t0 = time.perf_counter()
    vectors, spans, own_file = target_windows(searcher, target)
    encode = (time.perf_counter() - t0) * 1000
    exclude = frozenset() if own_file is None else frozenset({own_file})
    return per_window(searcher, "similar", lambda row: [SearchTerm("audio", row, 1.0)], vectors, spans, cfg,
                      exclude=exclude, encode_ms=encode)


def similar(searcher: Searcher, target: str, cfg: SearchConfig = SearchConfig()) -> SearchResult:
    """Hits nearest to ``target`` best first, its own file left out (module docstring)."""
    if not target.strip():
        raise UsageError("give a file or a segment id: dgsearch similar FILE")
    t0 = time.perf_counter()
    vectors, own_file, seconds = target_vectors(searcher, target)
    t1 = time.perf_counter()
    exclude = frozenset() if own_file is None else frozenset({own_file})
    terms = [SearchTerm("audio", vectors, 1.0)]
    hits, t_faiss, t_sql = searcher.search_terms(terms, cfg, exclude)
    result = SearchResult("similar", hits, {"encode": (t1 - t0) * 1000, "faiss": t_faiss, "sqlite": t_sql,
                                            "total": (time.perf_counter() - t0) * 1000})
    return searcher.pinpointed(result, terms, cfg, seconds)
