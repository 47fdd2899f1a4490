"""The catalog's SQL schema, its version, and the migrations between versions.

``catalog.sqlite`` is the source of truth of an index: files, their windows (segments), every vector as a
BLOB, captions and metadata. The FAISS files are derived from it. Segment ids are ``AUTOINCREMENT`` so an
id is never reused after a deletion: a FAISS file of an older generation can never point at a new window.
"""

from __future__ import annotations

import sqlite3

from diffgap_search.errors import IncompatibleIndexError
from diffgap_search.store.keywords import WORDS_VERSION, rebuild_all
from diffgap_search.store.rows import Connected

SCHEMA_VERSION = 3

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


# Version 2 adds what a file says about itself (its tags, sample rate and channels) and a full-text index
# for keyword search. ``file_info`` has a row once a file's metadata has been read (none for files indexed
# by version 1 until the next ``dgsearch index`` reads it, without decoding). ``keywords`` is an FTS5 table
# whose rowid is the file id, kept by ``store/keywords.py``; the trigger removes a file's row with the file.
SCHEMA_V2_ADDITIONS = """
CREATE TABLE file_info (
    file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
    sample_rate INTEGER,                    -- Hz of the first audio stream, as the container states it
    channels INTEGER
);
CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    key TEXT NOT NULL,                      -- title | description | comment | keywords | category | artist | ...
    value TEXT NOT NULL
);
CREATE INDEX tags_file ON tags(file_id);
CREATE VIRTUAL TABLE keywords USING fts5(
    name, folders, captions, tags,          -- words of the file name (camelCase split), its folders, ...
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER files_keywords_delete AFTER DELETE ON files BEGIN
    DELETE FROM keywords WHERE rowid = old.id;
END;
"""

# Version 3 adds the user's own labels (``dgsearch label``, ``store/labels.py``). A label belongs to a path, not
# to a file row: indexing replaces a changed file's row (a new id) and keeps its path, and a rename moves the
# path (``Catalog.move_file`` moves its labels along); a file leaving the index takes its labels with it
# (``Catalog.delete_files``). Keyed so, no write of the indexer has to read a label first.
SCHEMA_V3_ADDITIONS = """
CREATE TABLE labels (
    path_key BLOB NOT NULL,                 -- files.path_key of the labelled file
    folded TEXT NOT NULL,                   -- the label NFKC-normalised and case-folded: what is compared
    label TEXT NOT NULL,                    -- the label as written (one spelling per folded form)
    added_at TEXT NOT NULL,
    PRIMARY KEY (path_key, folded)
) WITHOUT ROWID;
CREATE INDEX labels_folded ON labels(folded);
"""

# Migrations: version N -> N+1, each a script run inside the one transaction that upgrades the catalog.
MIGRATIONS: dict[int, str] = {1: SCHEMA_V2_ADDITIONS, 2: SCHEMA_V3_ADDITIONS}


def create_schema(catalog: Connected) -> None:
    """Create every table of the current schema version in the empty database of ``catalog`` (one transaction)."""
    catalog.conn.executescript("BEGIN;" + SCHEMA_V1 + SCHEMA_V2_ADDITIONS + SCHEMA_V3_ADDITIONS
                       + f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                       + f"INSERT INTO meta VALUES ('keyword_words', '{WORDS_VERSION}');COMMIT;")


def migrate(catalog: Connected, found: int) -> bool:
    """Upgrade ``catalog``, of schema version ``found``, to :data:`SCHEMA_VERSION` in one transaction (all
    steps or none: a kill or a failure leaves it at ``found``); True when something was upgraded.

    ``BEGIN IMMEDIATE`` takes the write lock first, and the version is read again under it, so two
    processes opening the same old catalog at once upgrade it once. A read-only catalog cannot be
    upgraded: the caller gets SQLite's error (a StorageError in ``Catalog.open``).
    """
    if found >= SCHEMA_VERSION:
        return False
    conn = catalog.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0])
        start = version
        while version < SCHEMA_VERSION:
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            version += 1
        if start < 2:  # the files a version-1 catalog holds become searchable by their names and captions
            rebuild_all(catalog)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def _statements(script: str) -> list[str]:
    """A script's statements, each complete (``sqlite3.complete_statement``), so a trigger body's inner
    ``;`` does not split it; executed one by one, they stay inside the caller's transaction (unlike
    ``executescript``, which commits first)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if not current and line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def check_version(found: int, where: str) -> None:
    """Refuse a catalog written by a newer schema (older ones are upgraded by :func:`migrate`)."""
    if found > SCHEMA_VERSION:
        raise IncompatibleIndexError(
            f"index {where} has schema version {found}, newer than this dgsearch understands "
            f"({SCHEMA_VERSION}): upgrade diffgap-search to open it"
        )
    if found < 1:
        raise IncompatibleIndexError(f"index {where} has an invalid schema version {found}")
