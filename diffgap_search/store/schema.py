"""The catalog's SQL schema, its version, and the migrations between versions.

``catalog.sqlite`` is the source of truth of an index: files, their windows (segments), every vector as a
BLOB, captions and metadata. The FAISS files are derived from it. Segment ids are ``AUTOINCREMENT`` so an
id is never reused after a deletion: a FAISS file of an older generation can never point at a new window.
"""

from __future__ import annotations

import sqlite3

from diffgap_search.errors import IncompatibleIndexError

SCHEMA_VERSION = 1

SCHEMA_V1 = """
CREATE TABLE files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path_key BLOB NOT NULL UNIQUE,          -- os.fsencode(absolute path): exact, any bytes
    path TEXT NOT NULL,                     -- printable form for display (non-UTF-8 bytes escaped)
    kind TEXT NOT NULL,                     -- 'audio' | 'video'
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    status TEXT NOT NULL,                   -- 'ok' | 'error'
    error TEXT,
    duration_s REAL,
    has_audio INTEGER NOT NULL DEFAULT 1,
    indexed_at TEXT NOT NULL
);
CREATE INDEX files_sha256 ON files(sha256);
CREATE TABLE segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the FAISS id
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    UNIQUE (file_id, seq)
);
CREATE TABLE vectors (
    space TEXT NOT NULL,                    -- 'audio', 'video', 'audio_as_text', ...
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,                   -- (D,) float32 little-endian, L2-normalised
    PRIMARY KEY (space, segment_id)
) WITHOUT ROWID;
CREATE INDEX vectors_segment ON vectors(segment_id);
CREATE TABLE captions (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX captions_file ON captions(file_id);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table of the current schema version in an empty database (one transaction)."""
    conn.executescript("BEGIN;" + SCHEMA_V1 + f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');COMMIT;")


def check_version(found: int, where: str) -> None:
    """Refuse a catalog written by a newer schema; older ones would be migrated here (none exist yet)."""
    if found > SCHEMA_VERSION:
        raise IncompatibleIndexError(
            f"index {where} has schema version {found}, newer than this dgsearch understands "
            f"({SCHEMA_VERSION}): upgrade diffgap-search to open it"
        )
    if found < 1:
        raise IncompatibleIndexError(f"index {where} has an invalid schema version {found}")
