"""The searcher: a query (words, an audio file, a video file, an indexed window) -> hits (file, window
seconds, score, caption), ranked by the query's mode.

:class:`Searcher` is the one place that dispatches the modes (``SearchConfig.mode``):

- ``semantic``: the query's vectors (``search/embedding.py``) scored by its terms (``search/terms.py``:
  one cosine, or the bridge's fusion) over the index's vector spaces (``search/scoring.py``);
- ``keyword``: BM25F over names, folders, captions and tags (``search/keyword.py``); no model is loaded;
- ``hybrid``: both, fused by reciprocal rank (``search/keyword.py``), or one of them alone when the query
  has no words or the index's model cannot embed them (the result says which, in ``mode`` and ``note``).

The filters (``search/filters.py``) are decided once per query, before ranking, and every ranking of that
query uses the same decision. The open index (catalog, encoders, bridge, FAISS indexes) is
``search/open_index.py``; a warm process answers in milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.config import Device, EncoderConfig, FaissConfig, SearchConfig, SearchMode, WindowConfig
from diffgap_search.encoders.base import Encoder, EncoderLoader, FrameEncoder, QueryVideoLoader
from diffgap_search.errors import UsageError
from diffgap_search.search.copies import shown
from diffgap_search.search.keyword import (
    fuse_by_coverage,
    hybrid_depth,
    keyword_groups,
    search_keyword,
    semantic_only_reason,
)
from diffgap_search.search.scoring import rank_groups, with_tags
from diffgap_search.search.scoring import search_terms as score_terms
from diffgap_search.search.embedding import embed_query, query_vectors
from diffgap_search.search.file_filter import Allowed
from diffgap_search.search.filters import allowed_file_ids
from diffgap_search.search.open_index import OpenIndex
from diffgap_search.search.terms import bridge_for, query_terms
from diffgap_search.search.types import Hit, Query, SearchResult, SearchTerm
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.keywords import informative_tokens
from diffgap_search.store.vector_index import LoadedIndex

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge
    from diffgap_search.gap.served_bridge import ServedBridge

class Searcher:
    """An open index ready to answer queries (see the module docstring). ``model`` overrides the index's
    recorded model id (its weights must still be the index's: checked by fingerprint). ``use_bridge`` False
    opens the index without its bridge for every query; a query's own ``SearchConfig.use_bridge`` turns it
    off for that query alone. ``precision``: the CLAP encoder's precision path (``--precision``)."""

    def __init__(
        self,
        index_dir: Path,
        load_encoder: EncoderLoader,
        *,
        model: str | None = None,
        device: str = Device.AUTO,
        faiss_cfg: FaissConfig = FaissConfig(),
        use_bridge: bool = True,
        load_video_encoder: QueryVideoLoader | None = None,
        precision: str = "auto",
    ) -> None:
        self.opened = OpenIndex(index_dir, load_encoder, model=model, device=device, faiss_cfg=faiss_cfg,
                                load_video_encoder=load_video_encoder, precision=precision)
        self.use_bridge = use_bridge

    def close(self) -> None:
        self.opened.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the open index ----------------------------------------------------------------------------------
    @property
    def index_dir(self) -> Path:
        return self.opened.index_dir

    @property
    def catalog(self) -> Catalog:
        return self.opened.catalog

    @property
    def encoder_cfg(self) -> EncoderConfig:
        return self.opened.encoder_cfg

    @property
    def encoder(self) -> Encoder:
        return self.opened.encoder

    @property
    def video_encoder(self) -> FrameEncoder:
        return self.opened.video_encoder

    def window(self) -> WindowConfig:
        return self.opened.window()

    def require_ready(self) -> None:
        self.opened.require_ready()

    def index_for(self, space: str) -> LoadedIndex:
        return self.opened.index_for(space)

    @property
    def bridge(self) -> Bridge | ServedBridge | None:
        """The index's DiffGAP bridge, or None (absent, or the searcher opened with ``use_bridge`` off)."""
        return self.opened.bridge if self.use_bridge else None

    def bridge_for(self, modality: str) -> Bridge | ServedBridge | None:
        """The bridge when it can turn ``modality`` queries into audio-side vectors, else None."""
        return bridge_for(self.bridge, modality) if modality != "audio" else None

    # -- one query -----------------------------------------------------------------------------------------
    def embed_query(self, query: Query, *, use_bridge: bool = True) -> np.ndarray:
        """``(Q, D) float32`` L2-normalised query vectors (one per window for an audio or video query)."""
        return embed_query(self.opened, query, use_bridge=use_bridge and self.use_bridge)

    def terms_for(self, modality: str, qvecs: np.ndarray, *, use_bridge: bool = True) -> list[SearchTerm]:
        """The weighted cosine terms a query of ``modality`` is scored by (``search/terms.py``)."""
        bridge = self.bridge if use_bridge else None
        return query_terms(modality, qvecs, bridge, cavp_video=modality == "video" and self.opened.cavp_video(),
                           text_shares_audio=modality != "text" or self.opened.text_shares_audio())

    def search_terms(self, terms: list[SearchTerm], cfg: SearchConfig,
                     exclude: frozenset[int] = frozenset()) -> tuple[list[Hit], float, float]:
        """Hits scored by the weighted mean of the terms' cosines, one per content unless ``cfg.all_copies``,
        never of a file in ``exclude``, with the milliseconds spent in FAISS (the filters included) and in
        SQLite (``search/scoring.py``)."""
        t0 = time.perf_counter()
        allowed = allowed_file_ids(self.catalog, cfg, may_ask=True)
        t_filters = (time.perf_counter() - t0) * 1000
        hits, t_faiss, t_sql = score_terms(self.opened, terms, cfg, allowed, exclude)
        return hits, t_faiss + t_filters, t_sql

    def pinpoint(self, hits: list[Hit], terms: list[SearchTerm], cfg: SearchConfig, query_s: float | None = None,
                 *, by_seconds: bool = True) -> tuple[list[Hit], list[str], float]:
        """``(hits narrowed by search/pinpoint.py, scored and ordered by their narrowed seconds when
        ``by_seconds`` (a ranking by cosine; a hybrid one keeps its order), one per moment when windows are listed,
        the files not pinpointed with why, the milliseconds spent)``; ``query_s``: the seconds of the query's
        longest window (None for words: ``search/spans.answer``)."""
        from diffgap_search.search.pinpoint import by_narrowed_score, one_per_moment, pinpoint_hits

        t0 = time.perf_counter()
        narrowed, notes = pinpoint_hits(self.opened, terms, hits, query_s)
        if by_seconds:  # the span's cosine, not the window's background, decides
            narrowed = by_narrowed_score(narrowed)
        if not cfg.group_by_file:
            narrowed = one_per_moment(narrowed)
        return narrowed, notes, (time.perf_counter() - t0) * 1000

    def pinpointed(self, result: SearchResult, terms: list[SearchTerm], cfg: SearchConfig,
                   query_s: float | None = None, *, by_seconds: bool = True) -> SearchResult:
        """``result`` with its hits' seconds narrowed when ``cfg.pinpoint`` (``search/pinpoint.py``; listing windows,
        one hit per moment; ``query_s`` and ``by_seconds`` as :meth:`pinpoint`'s): the time in
        ``timings_ms["pinpoint"]`` (and the total), the hits left as they were in ``note``."""
        if not cfg.pinpoint or not result.hits:
            return result
        result.hits, notes, spent = self.pinpoint(result.hits, terms, cfg, query_s, by_seconds=by_seconds)
        result.timings_ms["pinpoint"] = spent
        result.timings_ms["total"] = result.timings_ms.get("total", 0.0) + spent
        if notes:
            result.note = "; ".join([result.note, *notes] if result.note else notes)
        return result

    def search_vectors(self, qvecs: np.ndarray, space: str, cfg: SearchConfig,
                       exclude: frozenset[int] = frozenset()) -> tuple[list[Hit], float, float]:
        """Hits for ``qvecs (Q, D) float32`` in ``space`` (a segment's score is its max over the Q vectors)."""
        return self.search_terms([SearchTerm(space, qvecs, 1.0)], cfg, exclude)

    def search(self, query: Query, cfg: SearchConfig = SearchConfig()) -> SearchResult:
        """Run ``query`` in ``cfg.mode`` and return hits best first (one per file unless
        ``cfg.group_by_file`` is off; one per content, listing its copies, unless ``cfg.all_copies``:
        ``search/copies.py``); filters apply before top-k (module docstring)."""
        if cfg.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {cfg.top_k}")
        mode = SearchMode.of(cfg.mode)
        kind = query.kind
        t0 = time.perf_counter()
        allowed = allowed_file_ids(self.catalog, cfg, may_ask=True)
        t_filters = (time.perf_counter() - t0) * 1000
        if mode is SearchMode.KEYWORD:
            return search_keyword(self.catalog, query.text if kind == "text" else None, cfg, allowed)
        if mode is SearchMode.HYBRID and kind == "text" and not self.opened.words_searchable():
            result = search_keyword(self.catalog, query.text, cfg, allowed)  # an audio-only model
            result.note = "the index's model embeds audio only: keyword search only" + unpinpointed(cfg)
            return result
        needs_bridge = self.opened.words_need_bridge(cfg.use_bridge and self.use_bridge) if kind == "text" else None
        if mode is SearchMode.HYBRID and needs_bridge is not None:
            result = search_keyword(self.catalog, query.text, cfg, allowed)
            result.note = f"{needs_bridge}: keyword search only" + unpinpointed(cfg)
            return result
        reason = semantic_only_reason(kind, cfg)
        if mode is SearchMode.SEMANTIC or reason is not None:
            result = self._semantic(query, cfg, allowed, t_filters)
            if mode is SearchMode.HYBRID:
                result.mode, result.note = "semantic", "; ".join(n for n in (reason, result.note) if n) or None
            return result
        return self._hybrid(query, cfg, allowed, t_filters)

    def _ranked(self, query: Query, cfg: SearchConfig, allowed: Allowed,
                t_filters: float) -> tuple[list[list[Hit]], dict[str, float], list[SearchTerm], float | None]:
        """The embedding ranking as groups of copies (``search/scoring.rank_groups``): encode, bridge (terms),
        candidates and final scores, with its timings, the terms and the seconds of the query's longest window
        (None for words). ``t_filters``: milliseconds already spent deciding ``allowed`` (counted in ``faiss``, as
        scoring's)."""
        t0 = time.perf_counter()
        use_bridge = cfg.use_bridge and self.use_bridge
        qvecs, query_s = query_vectors(self.opened, query, use_bridge=use_bridge)
        t1 = time.perf_counter()
        terms = self.terms_for(query.modality, qvecs, use_bridge=use_bridge)
        t2 = time.perf_counter()
        groups, t_faiss, t_sql = rank_groups(self.opened, terms, cfg, allowed)
        return groups, {"encode": (t1 - t0) * 1000, "bridge": (t2 - t1) * 1000, "faiss": t_faiss + t_filters,
                        "sqlite": t_sql}, terms, query_s

    def _semantic(self, query: Query, cfg: SearchConfig, allowed: Allowed, t_filters: float) -> SearchResult:
        """The embedding ranking, one hit per content unless ``cfg.all_copies``, with copies and tags."""
        t0 = time.perf_counter()
        groups, timings, terms, query_s = self._ranked(query, cfg, allowed, t_filters)
        t1 = time.perf_counter()
        hits = with_tags(self.opened, shown(self.catalog, groups, all_copies=cfg.all_copies, allowed=allowed))
        timings["sqlite"] += (time.perf_counter() - t1) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000 + t_filters
        return self.pinpointed(SearchResult(query.kind, hits, timings), terms, cfg, query_s)

    def _hybrid(self, query: Query, cfg: SearchConfig, allowed: Allowed, t_filters: float) -> SearchResult:
        """Words ranked by the embeddings and by keyword, fused (``search/keyword.py``)."""
        t0 = time.perf_counter()
        depth = hybrid_depth(cfg)
        semantic, sem_timings, sem_terms, query_s = self._ranked(query, replace(cfg, top_k=depth), allowed, t_filters)
        t1 = time.perf_counter()
        terms = informative_tokens(self.catalog, query.text or "")  # counted once, for ranking and coverage
        words = keyword_groups(self.catalog, terms, depth, allowed=allowed, all_copies=cfg.all_copies)
        t2 = time.perf_counter()
        groups = fuse_by_coverage(self.catalog, terms, semantic, words, cfg)
        hits = with_tags(self.opened, shown(self.catalog, groups, all_copies=cfg.all_copies, allowed=allowed))
        t3 = time.perf_counter()
        timings = {**{f"semantic.{k}": v for k, v in sem_timings.items()},
                   "keyword": (t2 - t1) * 1000, "fusion": (t3 - t2) * 1000, "total": (t3 - t0) * 1000 + t_filters}
        return self.pinpointed(SearchResult(query.kind, hits, timings, mode="hybrid"), sem_terms, cfg, query_s,
                               by_seconds=False)  # fused ranks, not cosines: the fusion's order stands


def unpinpointed(cfg: SearchConfig) -> str:
    """The note's tail for a query answered by keywords alone although ``cfg.pinpoint`` asked for seconds."""
    return " (not pinpointed: --pinpoint needs the query's embedding)" if cfg.pinpoint else ""
