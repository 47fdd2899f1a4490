"""The value types of search, at the bottom of the package: a query, one term of its score, a hit, a result.

Nothing here opens an index or imports a model: every other module of ``search/`` may import this one, and
this one imports only the core (and ``media/discover``'s path helper).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.errors import UsageError
from diffgap_search.media.discover import exact_path_field

EMPTY_QUERY = 'the query is empty: give some words, e.g. dgsearch query "dog barking"'
ONE_QUERY = "give exactly one query: TEXT, --audio FILE, --video FILE or --like SEGMENT_ID"
SPAN_OF_A_FILE = "--start and --end cut a query file: give --audio FILE or --video FILE with them"


@dataclass(frozen=True)
class Query:
    """Exactly one of ``text``, ``audio`` (a file), ``video`` (a file) or ``segment_id`` (more like this: an
    indexed window, scored with its stored audio vector); ``start_s``/``end_s`` cut a span of a file.

    Checked once, when made, for every face alike: words that are only blanks raise UsageError
    (:data:`EMPTY_QUERY`); :attr:`kind` raises UsageError unless exactly one query is given; a span of words or
    of a segment (:data:`SPAN_OF_A_FILE`), or one ending where it starts or before, raises UsageError."""

    text: str | None = None
    audio: Path | None = None
    video: Path | None = None
    start_s: float | None = None
    end_s: float | None = None
    segment_id: int | None = None

    def __post_init__(self) -> None:
        if self.text is not None and not self.text.strip():
            raise UsageError(EMPTY_QUERY)
        kind = self.kind  # raises unless exactly one query is given
        if (self.start_s is not None or self.end_s is not None) and kind not in ("audio", "video"):
            raise UsageError(SPAN_OF_A_FILE)
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise UsageError(f"--end ({self.end_s:g} s) must come after --start ({self.start_s:g} s)")

    @property
    def kind(self) -> str:
        """``text``, ``audio``, ``video`` or ``segment``."""
        given = [k for k in ("text", "audio", "video", "segment_id") if getattr(self, k) is not None]
        if len(given) != 1:
            raise UsageError(ONE_QUERY)
        return "segment" if given[0] == "segment_id" else given[0]

    @property
    def modality(self) -> str:
        """The modality its vectors are in: ``text``, ``video``, or ``audio`` (an audio file or a segment)."""
        kind = self.kind
        return "audio" if kind == "segment" else kind


@dataclass(frozen=True)
class SearchTerm:
    """One cosine term of a query's score: ``queries (Q, D) float32`` against ``space``, with ``weight``."""

    space: str
    queries: np.ndarray
    weight: float


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
    labels: list[str] = field(default_factory=list)  # the user's labels on the file (store/labels.py)
    ranks: dict[str, int] = field(default_factory=dict)  # hybrid/keyword: its rank in each ranking holding it
    copies: list[str] = field(default_factory=list)  # the other files with its content (search/copies.py), by path
    path_key: bytes = field(default=b"", repr=False)  # the exact path's bytes (``files.path_key``); b"": ``path``'s
    window: tuple[float, float] | None = None  # pinpointed: the indexed window it was found in (search/pinpoint.py)
    pinpoint_score: float | None = None  # pinpointed: the score of its narrowed seconds
    window_score: float | None = None  # pinpointed and ordered by its seconds: its window's score (``score``: theirs)

    @property
    def fs_path(self) -> str:
        """The path to open: ``path`` is for people (a name that is not UTF-8 shows its bytes as ``\\xNN``), this
        one round-trips through ``os.fsencode`` to the file's exact bytes."""
        return os.fsdecode(self.path_key) if self.path_key else self.path

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field but ``path_key``; ``path_bytes`` (base64 of the exact path) is added only
        where ``path`` is not the file's exact name (not UTF-8, or a control character escaped); ``window`` and
        ``pinpoint_score`` only for a pinpointed hit, ``window_score`` only for one scored by its seconds."""
        out = asdict(self)
        out.update(exact_path_field(self.path, out.pop("path_key")))
        if self.window is None:  # only a pinpointed hit has them
            del out["window"], out["pinpoint_score"]
        else:
            out["window"] = list(self.window)
        if self.window_score is None:
            del out["window_score"]
        return out


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
