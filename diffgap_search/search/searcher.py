"""Search: a query (text, an audio file, a video file) -> hits (file, window seconds, score, caption).

A :class:`Searcher` keeps the catalog, the encoder and the FAISS indexes open, so a warm process answers
in milliseconds. Readers never wait for the writer: the published FAISS generation is searched, plus an
exact search over vectors committed since it was published, and every hit is joined with the catalog, so
a hit never names a file or window that is not there at that moment. A reader never trains or builds an
approximate index: without a usable published file it searches the catalog's vectors exactly
(``store/vector_index.load_index``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.search import scoring as search_scoring
from diffgap_search.config import EncoderConfig, FaissConfig, SearchConfig, WindowConfig, encoder_role
from diffgap_search.encoders.base import Encoder, FrameEncoder, identity_of
from diffgap_search.errors import BridgeUnavailableError, IndexNotReadyError, UsageError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import bind_encoder, stored_encoder, stored_encoder_config, stored_window
from diffgap_search.store.vector_index import LoadedIndex, Published, load_index

EncoderLoader = Callable[[EncoderConfig], Encoder]


@dataclass(frozen=True)
class Query:
    """Exactly one of ``text``, ``audio`` (a file), ``video`` (a file) or ``segment_id`` (more like this: an
    indexed window, scored with its stored audio vector); ``start_s``/``end_s`` cut a span of a file."""

    text: str | None = None
    audio: Path | None = None
    video: Path | None = None
    start_s: float | None = None
    end_s: float | None = None
    segment_id: int | None = None

    @property
    def kind(self) -> str:
        """``text``, ``audio``, ``video`` or ``segment``."""
        given = [k for k in ("text", "audio", "video", "segment_id") if getattr(self, k) is not None]
        if len(given) != 1:
            raise UsageError("give exactly one query: TEXT, --audio FILE, --video FILE or --like SEGMENT_ID")
        return "segment" if given[0] == "segment_id" else given[0]


@dataclass(frozen=True)
class SearchTerm:
    """One cosine term of a query's score: ``queries (Q, D) float32`` against ``space``, with ``weight``."""

    space: str
    queries: np.ndarray
    weight: float


_UNSET: Any = object()


@dataclass(frozen=True)
class Hit:
    """One result: ``score`` is cosine similarity (higher is closer), seconds are into the file."""

    path: str
    kind: str
    start_s: float
    end_s: float
    score: float
    caption: str | None
    segment_id: int
    file_id: int
    tags: dict[str, list[str]] = field(default_factory=dict)  # the file's embedded tags (media/tags.py)
    ranks: dict[str, int] = field(default_factory=dict)  # hybrid/keyword: its rank in each ranking holding it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    """Hits best first, plus per-stage timings in milliseconds (encode, faiss, sqlite, total)."""

    query_kind: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    mode: str = "semantic"  # how it was ranked: semantic, keyword or hybrid (search/keyword.py)
    note: str | None = None  # why a hybrid query was answered by one ranking alone

    def to_dict(self) -> dict[str, Any]:
        out = {"query_kind": self.query_kind, "mode": self.mode, "hits": [h.to_dict() for h in self.hits],
               "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()}}
        if self.note is not None:
            out["note"] = self.note
        return out


class Searcher:
    """An open index ready to answer queries. ``model`` overrides the index's recorded model id (its
    weights must still be the index's: checked by fingerprint)."""

    def __init__(
        self,
        index_dir: Path,
        load_encoder: EncoderLoader,
        *,
        model: str | None = None,
        device: str = "auto",
        faiss_cfg: FaissConfig = FaissConfig(),
        use_bridge: bool = True,
        load_video_encoder: Callable[[str, str, str | None], FrameEncoder] | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.catalog = Catalog.open(index_dir)
        self._load_encoder = load_encoder
        self._model = model
        self._device = device
        self.faiss_cfg = faiss_cfg
        self._encoder: Encoder | None = None
        self.use_bridge = use_bridge
        self._bridge: Any = _UNSET
        self._bridge_record: Any = None
        self._load_video_encoder = load_video_encoder
        self._video_encoder: FrameEncoder | None = None
        self._indexes: dict[str, tuple[Published | None, LoadedIndex]] = {}

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def encoder_cfg(self) -> EncoderConfig:
        """What loads the index's encoder: its recorded model (read again until the encoder is loaded, so a
        searcher opened during the first indexing run picks up the model that run records)."""
        return stored_encoder_config(self.catalog, model=self._model, device=self._device)

    @property
    def encoder(self) -> Encoder:
        """The index's audio encoder, loaded once. Raises IndexNotReadyError while no model is recorded."""
        if self._encoder is None:
            self.require_ready()
            encoder = self._load_encoder(self.encoder_cfg)
            bind_encoder(self.catalog, identity_of(encoder), str(self.index_dir))
            self._encoder = encoder
        return self._encoder

    @property
    def video_encoder(self) -> FrameEncoder:
        """The index's video encoder (CLIP frames or CAVP), loaded once from its record. Raises
        BridgeUnavailableError when the index has none (no video indexed) or no loader was given."""
        if self._video_encoder is None:
            stored = stored_encoder(self.catalog, "video_encoder")
            if stored is None or self._load_video_encoder is None:
                raise BridgeUnavailableError("this index has no video encoder: index some videos first")
            revision = stored.get("commit") or stored.get("revision")
            encoder = self._load_video_encoder(stored["model"], self.encoder_cfg.device, revision)
            bind_encoder(self.catalog, identity_of(encoder), str(self.index_dir), role="video_encoder")
            self._video_encoder = encoder
        return self._video_encoder

    def embed_query(self, query: Query) -> np.ndarray:
        """``(Q, D) float32`` L2-normalised query vectors (one per window for an audio or video query):
        ``query_embedding.embed_query``."""
        from diffgap_search.search.embedding import embed_query

        return embed_query(self, query)

    def window(self) -> WindowConfig:
        """The index's windowing (its sample rate is its audio encoder's). Raises IndexNotReadyError while
        none is recorded (the first indexing run records it with its model, before its first files)."""
        self.require_ready()
        window = stored_window(self.catalog)
        assert window is not None  # checked by require_ready
        return window

    def require_ready(self) -> None:
        """Raise IndexNotReadyError while the catalog exists but records no model or windowing yet: its first
        ``dgsearch index`` run has committed nothing to search (it may still be loading its model)."""
        if stored_encoder(self.catalog) is None or stored_window(self.catalog) is None:
            raise IndexNotReadyError(
                f"index {self.index_dir} is being built and has nothing to search yet: its first `dgsearch index`"
                " run has not committed any files; query again once it has"
            )

    # -- searching -----------------------------------------------------------------------------------
    def index_for(self, space: str) -> LoadedIndex:
        """The space's index, reloaded when the catalog's record of it changes: the published FAISS generation,
        or, when none is usable, an exact (flat) index of the catalog's vectors. Never trains anything."""
        pub = Published.read(self.catalog, space)
        cached = self._indexes.get(space)
        if cached is None or cached[0] != pub:
            role = encoder_role(space)
            dim = int((stored_encoder(self.catalog, role) or {"dim": 0})["dim"])
            loaded = load_index(self.index_dir, self.catalog, space, dim, self.faiss_cfg)
            self._indexes[space] = (loaded.record, loaded)
        return self._indexes[space][1]

    @property
    def bridge(self) -> Any:
        """The index's DiffGAP bridge (checked against its encoders), or None (absent, or ``use_bridge`` off).

        Reloaded when the catalog's ``meta["bridge"]`` record changes (a ``dgsearch train`` committed a new
        one), so a long-running reader (``dgsearch serve``) follows it without a restart: one small meta
        read per access."""
        if not self.use_bridge:
            return None
        record = self.catalog.get_meta("bridge")
        if self._bridge is _UNSET or record != self._bridge_record:
            from diffgap_search.bridge.index_bridge import load_index_bridge

            self._bridge = load_index_bridge(self.index_dir, self.catalog)
            self._bridge_record = record
        return self._bridge

    def search(self, query: Query, cfg: SearchConfig = SearchConfig()) -> SearchResult:
        """Run ``query`` and return hits best first (grouped per file unless ``cfg.group_by_file`` is off).

        Text -> audio with a bridge fuses three cosines (see ``gap/fusion.py``): raw query vs audio windows,
        the bridged query (text -> audio) vs audio windows, and the raw query vs the windows' bridged
        text-side vectors, with the weights the bridge tuned on its validation pairs. Video -> audio always
        goes through the bridge (the raw spaces are unrelated). Audio -> audio is a plain cosine search.
        ``cfg.mode`` "keyword" or "hybrid" goes through ``keyword_search.search`` (names, folders, captions and
        tags; fused with this search by reciprocal rank in hybrid mode). Filters apply before top-k.
        """
        if cfg.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {cfg.top_k}")
        if cfg.mode != "semantic":  # keyword (no model) or hybrid: search/keyword.py
            from diffgap_search.search import keyword as keyword_search

            return keyword_search.search(self, query, cfg)
        t0 = time.perf_counter()
        kind = query.kind
        qvecs = self.embed_query(query)
        t1 = time.perf_counter()
        terms = self.terms_for("audio" if kind == "segment" else kind, qvecs)
        t2 = time.perf_counter()
        hits, t_faiss, t_sql = self.search_terms(terms, cfg)
        total = (time.perf_counter() - t0) * 1000
        return SearchResult(kind, hits, {"encode": (t1 - t0) * 1000, "bridge": (t2 - t1) * 1000, "faiss": t_faiss,
                                         "sqlite": t_sql, "total": total})

    def bridge_for(self, modality: str) -> Any:
        """The bridge when it can turn ``modality`` queries into audio-side vectors, else None."""
        if modality == "audio":
            return None
        bridge = self.bridge
        if bridge is None or f"audio|{modality}" not in {d.value for d in bridge.directions}:
            return None
        return bridge

    def terms_for(self, modality: str, qvecs: np.ndarray) -> list[SearchTerm]:
        """The weighted cosine terms a query of ``modality`` is scored by (one term without a bridge)."""
        if modality == "video" and self.cavp_video():
            from diffgap_search.search.cavp import cavp_video_terms

            return [SearchTerm(space, q, w) for space, q, w in cavp_video_terms(self.bridge_for("video"), qvecs)]
        bridge = self.bridge_for(modality)
        if bridge is None:
            return [SearchTerm("audio", qvecs, 1.0)]
        fusion = bridge.fusion_for(modality, "audio")
        bridged = bridge.apply(qvecs, modality, "audio")
        terms = [SearchTerm("audio", bridged, fusion.w_query_bridged),
                 SearchTerm(f"audio_as_{modality}", qvecs, fusion.w_item_bridged)]
        if modality == "text" and fusion.w_raw > 0:  # CLAP's text and audio share a space; video's does not
            terms.append(SearchTerm("audio", qvecs, fusion.w_raw))
        return [t for t in terms if t.weight > 0]

    def cavp_video(self) -> bool:
        """Whether the index's video encoder is CAVP (its windows' sound is in the ``cavp_audio`` space)."""
        return "cavp_audio" in (stored_encoder(self.catalog, "video_encoder") or {}).get("modalities", ())

    def search_vectors(self, qvecs: np.ndarray, space: str, cfg: SearchConfig) -> tuple[list[Hit], float, float]:
        """Hits for ``qvecs (Q, D) float32`` in ``space`` (a segment's score is its max over the Q vectors)."""
        return self.search_terms([SearchTerm(space, qvecs, 1.0)], cfg)

    def search_terms(self, terms: list[SearchTerm], cfg: SearchConfig) -> tuple[list[Hit], float, float]:
        """Hits scored by the weighted mean of the terms' cosines, with the milliseconds spent in FAISS and
        in SQLite: ``search_scoring.search_terms`` (candidates, exact re-scoring, filters, presentation)."""
        return search_scoring.search_terms(self, terms, cfg)

