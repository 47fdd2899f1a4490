"""The catalog's row types: what goes in (``SegmentInput``) and what comes out (``FileRow``, ``HitRow``); and
``Connected``, what the modules beneath ``catalog.py`` see of a ``Catalog``."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np


class Connected(Protocol):
    """What the store modules that ``catalog.py`` itself uses (``schema``'s migration, ``keywords``) see of the
    ``Catalog`` they are given: its connection. Typed so, not as ``Catalog``, because ``catalog.py`` imports
    them (an import back would be a cycle); callers pass the ``Catalog``."""

    @property
    def conn(self) -> sqlite3.Connection:
        """The catalog's SQLite connection."""


def key_range(prefix_key: bytes) -> tuple[bytes, bytes]:
    """``(low, high)``: the path keys starting with ``prefix_key`` (a folder's key, ending in ``/``) are exactly
    those with ``low <= key < high``, one range of the unique path index (its last byte plus one)."""
    return prefix_key, prefix_key[:-1] + bytes([prefix_key[-1] + 1])


@dataclass(frozen=True)
class FileRow:
    """One row of ``files``."""

    id: int
    path_key: bytes
    path: str
    kind: str
    size: int
    mtime_ns: int
    sha256: str | None
    status: str
    error: str | None
    duration_s: float | None
    has_audio: bool


@dataclass(frozen=True)
class SegmentInput:
    """A window to store: its seconds and its vectors per space, each ``(D,) float32`` L2-normalised."""

    start_s: float
    end_s: float
    vectors: dict[str, np.ndarray]


@dataclass(frozen=True)
class HitRow:
    """What the catalog knows of one segment, for presenting a hit."""

    segment_id: int
    file_id: int
    path: str  # display form (non-UTF-8 bytes escaped)
    kind: str
    start_s: float
    end_s: float
    path_key: bytes  # the file's exact path, os.fsencode'd (``files.path_key``)


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second (``files.indexed_at``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_row(row: sqlite3.Row | tuple[Any, ...]) -> FileRow:
    """A ``files`` row selected as ``FILE_COLS`` -> ``FileRow``."""
    return FileRow(
        id=row[0], path_key=bytes(row[1]), path=row[2], kind=row[3], size=row[4], mtime_ns=row[5],
        sha256=row[6], status=row[7], error=row[8], duration_s=row[9], has_audio=bool(row[10]),
    )


# the columns ``file_row`` reads, in its order
FILE_COLS = "id, path_key, path, kind, size, mtime_ns, sha256, status, error, duration_s, has_audio"
