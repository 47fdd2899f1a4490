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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import EncoderConfig, FaissConfig, SearchConfig, WindowConfig
from diffgap_search.encoders.base import Encoder
from diffgap_search.errors import (
    BridgeUnavailableError,
    IndexNotReadyError,
    InputNotFoundError,
    MediaDecodeError,
    QueryNotSupportedError,
    UsageError,
)
from diffgap_search.search_filters import allowed_file_ids, glob_match
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.filters import segments_of_files
from diffgap_search.store.settings import bind_encoder, embeds, stored_encoder, stored_encoder_config, stored_window
from diffgap_search.store.tags import tags_of
from diffgap_search.store.vector_index import LoadedIndex, Published, load_index

# A filter whose files hold at most this many windows is searched exactly over them (their vectors read
# from the catalog: ≈ 40 MB at D = 512), never through FAISS's top-k.
EXACT_FILTER_SEGMENTS = 20_000

EncoderLoader = Callable[[EncoderConfig], Encoder]
QUERY_WINDOWS = 4  # video query windows decoded and embedded at a time


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
    mode: str = "semantic"  # how it was ranked: semantic, keyword or hybrid (keyword_search.py)
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
        load_video_encoder: Callable[[str, str, str | None], Any] | None = None,
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
        self._video_encoder: Any = None
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
            self._require_ready()
            encoder = self._load_encoder(self.encoder_cfg)
            bind_encoder(self.catalog, encoder, str(self.index_dir))
            self._encoder = encoder
        return self._encoder

    # -- embedding the query ---------------------------------------------------------------------------
    def embed_query(self, query: Query) -> np.ndarray:
        """``(Q, D) float32`` L2-normalised query vectors (one per window for an audio query)."""
        kind = query.kind
        if kind == "text":
            text = (query.text or "").strip()
            if not text:
                raise UsageError("the query is empty: give some words, e.g. dgsearch query \"dog barking\"")
            self._require_ready()
            if not embeds(self.catalog, "text"):
                raise QueryNotSupportedError(
                    f"index {self.index_dir} was built with model {self.encoder_cfg.model!r}, which embeds audio "
                    "only: a text query cannot be searched in it; query with --audio FILE, or build an index "
                    "with a CLAP model (the default) to search by words"
                )
            return self.encoder.embed_text([text])
        if kind == "segment":
            return self._segment_vector(int(query.segment_id))  # type: ignore[arg-type]
        path = Path(query.audio or query.video)  # type: ignore[arg-type]
        if not path.is_file():
            raise InputNotFoundError(f"query file not found: {path}")
        self._require_ready()
        if kind == "video":
            if self._cavp_video():  # CAVP: video and sound share one space, no bridge needed
                return self._embed_video_file(path, query.start_s, query.end_s)
            if self.bridge_for("video") is None:
                raise BridgeUnavailableError(
                    "video -> audio search needs a DiffGAP bridge between the video and audio encoders, and this"
                    " index has none" + ("" if self.use_bridge else " in use (--no-bridge)")
                    + ": index some videos, then run `dgsearch train --pairs video`"
                )
            return self._embed_video_file(path, query.start_s, query.end_s)
        return self._embed_audio_file(path, query.start_s, query.end_s)

    def _segment_vector(self, segment_id: int) -> np.ndarray:
        """``(1, D) float32``: the stored audio vector of an indexed window (more like this). Raises
        InputNotFoundError for an id the catalog does not hold, or whose window has no audio vector."""
        self._require_ready()
        vec = self.catalog.vectors_of("audio", [segment_id]).get(segment_id)
        if vec is None or not self.catalog.hit_rows([segment_id]):
            raise InputNotFoundError(
                f"segment {segment_id} is not in index {self.index_dir} (or has no audio): take a segment_id"
                " from a query's --json output"
            )
        return np.asarray(vec, dtype=np.float32).reshape(1, -1)

    def _embed_video_file(self, path: Path, start_s: float | None, end_s: float | None) -> np.ndarray:
        """``(W, D)``: the query video's frames embedded per window (the index's windowing), optionally a span."""
        from diffgap_search.media.video import open_frames, window_bounds

        stored = stored_encoder(self.catalog, "video_encoder")
        if stored is None or self._load_video_encoder is None:
            raise BridgeUnavailableError("this index has no video encoder: index some videos first")
        if self._video_encoder is None:
            revision = stored.get("commit") or stored.get("revision")
            encoder = self._load_video_encoder(stored["model"], self.encoder_cfg.device, revision)
            bind_encoder(self.catalog, encoder, str(self.index_dir), role="video_encoder")
            self._video_encoder = encoder
        window_cfg = self._window()
        fit = "squash" if getattr(self._video_encoder, "family", None) == "cavp" else "crop"  # CAVP: whole frame
        sampler = open_frames(path, fps=self._video_encoder.fps, fit=fit)
        lo = start_s or 0.0
        hi = sampler.info.duration_s if end_s is None else min(end_s, sampler.info.duration_s)
        bounds = [(s, e) for s, e in window_bounds(sampler.info.duration_s, window_cfg) if e > lo and s < hi]
        if not bounds:
            raise MediaDecodeError(f"{path}: no video frames in the requested span")
        # Streamed: only QUERY_WINDOWS windows' frames are decoded and held at a time, whatever the video's length.
        return np.concatenate([
            self._video_encoder.embed_video([sampler.window(s, e).frames for s, e in bounds[i : i + QUERY_WINDOWS]])
            for i in range(0, len(bounds), QUERY_WINDOWS)])

    def _embed_audio_file(self, path: Path, start_s: float | None, end_s: float | None) -> np.ndarray:
        from diffgap_search.media.audio import load_audio
        from diffgap_search.media.windows import window_audio

        window_cfg = self._window()
        samples = load_audio(path, window_cfg.sample_rate)
        sr = window_cfg.sample_rate
        lo = int(round((start_s or 0.0) * sr))
        hi = len(samples) if end_s is None else int(round(end_s * sr))
        samples = samples[lo:hi]
        if len(samples) == 0:
            raise MediaDecodeError(f"{path}: no audio in the requested span")
        return self.encoder.embed_audio(window_audio(samples, window_cfg).samples)

    def _window(self) -> WindowConfig:
        """The index's windowing (its sample rate is its audio encoder's). Raises IndexNotReadyError while
        none is recorded (the first indexing run records it with its model, before its first files)."""
        self._require_ready()
        window = stored_window(self.catalog)
        assert window is not None  # checked by _require_ready
        return window

    def _require_ready(self) -> None:
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
            role = "video_encoder" if space in ("video", "cavp_audio") else "encoder"
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
            from diffgap_search.bridging import load_index_bridge

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
        if cfg.mode != "semantic":  # keyword (no model) or hybrid: keyword_search.py
            from diffgap_search import keyword_search

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
        if modality == "video" and self._cavp_video():
            from diffgap_search.cavp_search import cavp_video_terms

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

    def _cavp_video(self) -> bool:
        """Whether the index's video encoder is CAVP (its windows' sound is in the ``cavp_audio`` space)."""
        return "cavp_audio" in (stored_encoder(self.catalog, "video_encoder") or {}).get("modalities", ())

    def search_vectors(self, qvecs: np.ndarray, space: str, cfg: SearchConfig) -> tuple[list[Hit], float, float]:
        """Hits for ``qvecs (Q, D) float32`` in ``space`` (a segment's score is its max over the Q vectors)."""
        return self.search_terms([SearchTerm(space, qvecs, 1.0)], cfg)

    def search_terms(self, terms: list[SearchTerm], cfg: SearchConfig) -> tuple[list[Hit], float, float]:
        """Hits scored by the weighted mean of the terms' cosines (each a max over its query rows).

        Candidates are the union of every term's FAISS top-k (plus vectors committed since publishing);
        with several terms each candidate is re-scored exactly from the catalog's vectors. ``k`` grows
        until enough hits pass the filters or every vector has been considered. Filters are decided first
        (``search_filters.py``): when the files that pass hold at most :data:`EXACT_FILTER_SEGMENTS`
        windows, exactly those windows are scored from the catalog (a filter keeping 3 files of a million
        finds them at once); a looser filter goes through FAISS with the growing ``k``.
        """
        t0 = time.perf_counter()
        allowed = allowed_file_ids(self.catalog, cfg)
        if allowed is not None:
            seg_ids, seg_files = segments_of_files(self.catalog.conn, allowed)
            if len(seg_ids) <= EXACT_FILTER_SEGMENTS:
                scores = _best_first(self._exact_scores(terms, seg_ids), seg_ids, seg_files, cfg)
                t1 = time.perf_counter()
                hits = self._with_tags(self._resolve(scores, cfg, allowed)[: cfg.top_k])
                return hits, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000
        indexes = [self.index_for(t.space) for t in terms]
        n_total = max(ix.ntotal + self._delta_count(t.space, ix) for t, ix in zip(terms, indexes))
        k = min(max(n_total, 1), cfg.top_k * (8 if cfg.group_by_file else 1) + 32)
        t_faiss = t_sql = 0.0
        while True:
            t0 = time.perf_counter()
            found = [self._candidates(t.queries, t.space, ix, k) for t, ix in zip(terms, indexes)]
            t1 = time.perf_counter()
            scores = found[0] if len(terms) == 1 else self._fused(terms, found)
            hits = self._resolve(scores, cfg, allowed)
            t2 = time.perf_counter()
            t_faiss += (t1 - t0) * 1000
            t_sql += (t2 - t1) * 1000
            if len(hits) >= cfg.top_k or k >= n_total:
                t3 = time.perf_counter()
                hits = self._with_tags(hits[: cfg.top_k])
                return hits, t_faiss, t_sql + (time.perf_counter() - t3) * 1000
            k = min(n_total, k * 4)

    def _with_tags(self, hits: list[Hit]) -> list[Hit]:
        """The hits with their files' embedded tags (read for the hits shown only)."""
        tags = tags_of(self.catalog.conn, {h.file_id for h in hits})
        return [replace(h, tags=tags[h.file_id]) if h.file_id in tags else h for h in hits]

    def _exact_scores(self, terms: list[SearchTerm], seg_ids: np.ndarray) -> dict[int, float]:
        """Exact weighted-mean scores of exactly ``seg_ids`` (``(n,) int64``) from the catalog's vectors; a
        term a segment has no vector for is left out of its mean, a segment with none is absent."""
        ids = seg_ids.tolist()
        num = np.zeros(len(ids), np.float64)
        den = np.zeros(len(ids), np.float64)
        for term in terms:
            vecs = self.catalog.vectors_of(term.space, ids)
            have = [j for j, sid in enumerate(ids) if sid in vecs]
            if not have:
                continue
            matrix = np.stack([vecs[ids[j]] for j in have])
            sims = (term.queries @ matrix.T).max(axis=0)
            num[have] += term.weight * sims
            den[have] += term.weight
        return {sid: float(n / d) for sid, n, d in zip(ids, num, den) if d > 0}

    def _fused(self, terms: list[SearchTerm], found: list[dict[int, float]]) -> dict[int, float]:
        """Exact fused scores of the union of candidates; a term a segment has no vector for is left out
        of that segment's weighted mean."""
        ids = sorted(set().union(*found))
        row_of = {sid: j for j, sid in enumerate(ids)}
        num = np.zeros(len(ids), np.float64)
        den = np.zeros(len(ids), np.float64)
        read: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # space -> (rows, (M, D) vectors): read once
        for term in terms:  # one matrix product per term, not a Python loop over candidates
            if term.space not in read:
                vecs = self.catalog.vectors_of(term.space, ids)
                read[term.space] = (np.fromiter((row_of[sid] for sid in vecs), np.int64, len(vecs)),
                                    np.stack(list(vecs.values())) if vecs else np.zeros((0, 0), np.float32))
            rows, mat = read[term.space]
            if not len(rows):
                continue
            sims = (mat @ term.queries.T).max(axis=1)  # (M,) best over the query rows
            num[rows] += term.weight * sims.astype(np.float64)
            den[rows] += term.weight
        return {sid: float(n / d) for sid, n, d in zip(ids, num, den) if d > 0}

    def _delta_count(self, space: str, index: LoadedIndex) -> int:
        row = self.catalog.conn.execute(
            "SELECT count(*) FROM vectors WHERE space = ? AND segment_id > ?", (space, index.max_id)
        ).fetchone()
        return int(row[0])

    def _candidates(self, qvecs: np.ndarray, space: str, index: LoadedIndex, k: int) -> dict[int, float]:
        """segment id -> best score over the query vectors, from FAISS plus the unpublished delta."""
        best: dict[int, float] = {}
        scores, ids = index.search(qvecs, k)
        for row_s, row_i in zip(scores, ids):
            for s, i in zip(row_s.tolist(), row_i.tolist()):
                if i >= 0 and s > best.get(i, -np.inf):
                    best[i] = s
        for ids_d, vecs_d in self.catalog.read_vectors(space, after_id=index.max_id):
            sims = (qvecs @ vecs_d.T).max(axis=0)
            for i, s in zip(ids_d.tolist(), sims.tolist()):
                if s > best.get(i, -np.inf):
                    best[i] = s
        return best

    def _resolve(self, scores: dict[int, float], cfg: SearchConfig, allowed: set[int] | None = None) -> list[Hit]:
        rows = self.catalog.hit_rows(scores)
        if allowed is not None:
            rows = {sid: r for sid, r in rows.items() if r.file_id in allowed}
        captions = self.catalog.captions_of({r.file_id for r in rows.values()})
        hits: list[Hit] = []
        for sid, row in rows.items():
            score = float(scores[sid])
            if cfg.min_score is not None and score < cfg.min_score:
                continue
            if cfg.kind is not None and row.kind != cfg.kind:
                continue
            if cfg.path_glob is not None and not _glob_match(row.path, cfg.path_glob):
                continue
            caps = captions.get(row.file_id)
            hits.append(Hit(row.path, row.kind, row.start_s, row.end_s, score, caps[0] if caps else None,
                            sid, row.file_id))
        hits.sort(key=lambda h: (-h.score, h.path, h.start_s))
        if cfg.group_by_file:
            seen: set[int] = set()
            hits = [h for h in hits if not (h.file_id in seen or seen.add(h.file_id))]  # type: ignore[func-returns-value]
        return hits


def _best_first(scores: dict[int, float], seg_ids: np.ndarray, seg_files: np.ndarray,
                cfg: SearchConfig) -> dict[int, float]:
    """The scores of the best segments only: enough to hold ``cfg.top_k`` files (or segments without
    grouping) above ``cfg.min_score``, and every segment tied with the last one kept, so presenting them
    (``_resolve``) reads the catalog for a few rows, not for every window a filter lets through."""
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


_glob_match = glob_match  # the filter lives in search_filters.py
