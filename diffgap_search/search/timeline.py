"""``dgsearch query --audio|--video FILE --timeline``: the hits for each window of the query file, in its order.

A plain query by a file scores an indexed window by its best match over all the query's windows: a 2-minute
edit asks for the sounds of all its scenes at once, and the hits of the loudest scene crowd out the rest.
Spotting a video (the sounds for each moment of it) wants one list per moment: here each query window is a
query of its own, scored by the same terms as a one-window query file would be (``search/terms.py``: with a
bridge, the fused score), with the same filters, grouping and ``-k`` per window, and ``--pinpoint`` narrowing
each list's hits. The file is decoded and embedded once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.config import SearchConfig, SearchMode
from diffgap_search.errors import UsageError
from diffgap_search.search.embedding import query_windows
from diffgap_search.search.types import Hit, Query, SearchTerm

if TYPE_CHECKING:
    from diffgap_search.search.searcher import Searcher


@dataclass
class QueryWindow:
    """One window of the query file (its seconds) and the hits for it, best first."""

    start_s: float
    end_s: float
    hits: list[Hit]


@dataclass
class Timeline:
    """The hits of each query window in the file's order, the milliseconds spent (``encode``: the file once;
    ``search``: every window's ranking; ``pinpoint``; ``total``) and a note (files not pinpointed)."""

    query_kind: str
    windows: list[QueryWindow]
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query_kind": self.query_kind, "mode": "semantic",
            "windows": [{"start_s": w.start_s, "end_s": w.end_s, "hits": [h.to_dict() for h in w.hits]}
                        for w in self.windows],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()}}
        if self.note is not None:
            out["note"] = self.note
        return out


def search_timeline(searcher: Searcher, query: Query, cfg: SearchConfig) -> Timeline:
    """The hits for each window of ``query``'s file (module docstring). Raises UsageError for words or a
    segment (no windows of their own) and for ``--mode keyword`` (it embeds nothing)."""
    if SearchMode.of(cfg.mode) is SearchMode.KEYWORD:
        raise UsageError("--timeline ranks each window of the query file by its sound: not with --mode keyword")
    t0 = time.perf_counter()
    use_bridge = cfg.use_bridge and searcher.use_bridge
    vectors, spans = query_windows(searcher.opened, query, use_bridge=use_bridge)
    encode = (time.perf_counter() - t0) * 1000

    def terms_of(row: np.ndarray) -> list[SearchTerm]:
        return searcher.terms_for(query.modality, row, use_bridge=use_bridge)

    return per_window(searcher, query.kind, terms_of, vectors, spans, cfg, encode_ms=encode)


def per_window(searcher: Searcher, kind: str, terms_of: Callable[[np.ndarray], list[SearchTerm]], vectors: np.ndarray,
               spans: Sequence[tuple[float, float]], cfg: SearchConfig, *, exclude: frozenset[int] = frozenset(),
               encode_ms: float = 0.0) -> Timeline:
    """Each of ``vectors (W, D) float32`` (one per window, in ``spans``' order) searched on its own through the
    terms ``terms_of`` gives a ``(1, D)`` row, with ``cfg``'s filters, grouping and ``-k``, never a file of
    ``exclude``; pinpointed with ``cfg.pinpoint``."""
    t0 = time.perf_counter()
    windows: list[QueryWindow] = []
    notes: list[str] = []
    spent = {"search": 0.0, "pinpoint": 0.0}
    for row, (start, end) in enumerate(spans):
        terms = terms_of(vectors[row : row + 1])
        t1 = time.perf_counter()
        hits, _, _ = searcher.search_terms(terms, cfg, exclude)
        spent["search"] += (time.perf_counter() - t1) * 1000
        if cfg.pinpoint and hits:
            hits, unread, ms = searcher.pinpoint(hits, terms, cfg, end - start)  # a window: a scene being spotted
            spent["pinpoint"] += ms
            notes += [n for n in unread if n not in notes]
        windows.append(QueryWindow(start, end, hits))
    timings = {"encode": encode_ms, **spent, "total": encode_ms + (time.perf_counter() - t0) * 1000}
    if not cfg.pinpoint:
        del timings["pinpoint"]
    return Timeline(kind, windows, timings, "; ".join(notes) or None)
