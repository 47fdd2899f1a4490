"""The SQLite catalog (through sqlite-utils, WAL): files, segments, vectors as BLOBs, captions, meta.

It is the source of truth of an index. Every write that belongs together (one batch of files with their
segments and vectors) is one transaction, so a kill loses at most the batch in flight. Readers open the
same file concurrently and take no lock (WAL).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from diffgap_search.config import index_option
from diffgap_search.errors import CorruptIndexError, IndexNotFoundError, StorageError
from diffgap_search.store.rows import FILE_COLS, FileRow, HitRow, SegmentInput, file_row, key_range, now_iso
from diffgap_search.store.schema import SCHEMA_VERSION, check_version, create_schema, migrate
from diffgap_search.store.sqlite_utils_module import import_sqlite_utils
from diffgap_search.store.vectors import VectorRows, id_chunks, vector_blob

CATALOG_NAME = "catalog.sqlite"


def _folder_hint(index_dir: Path) -> str:
    """Where a bare ``--index NAME`` (read as ``indexes/NAME``) missed an index in the folder ``./NAME``: ``" (the
    folder ./NAME holds an index: pass --index ./NAME)"``; ``""`` otherwise."""
    here = Path(index_dir.name)
    if index_dir.parent != Path("indexes") or not (here / CATALOG_NAME).is_file():
        return ""
    return f" (the folder ./{here} holds an index: pass --index ./{here})"


def _table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# SQLite's messages for SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY and SQLITE_CANTOPEN.
_STORAGE_FAILURES = ("database or disk is full", "disk I/O error", "readonly database", "unable to open")

_TABLES = frozenset({"files", "segments", "vectors", "captions", "meta", "file_info", "tags", "keywords", "labels"})

# Settings SQLite keeps per connection (forgotten when it closes), so every open applies them, readers and
# writers alike: wait up to 30 s for a lock instead of failing at once; enforce foreign keys (deleting a file
# cascades to its segments, vectors and captions); in WAL, fsync at checkpoints rather than at every commit
# (a commit survives a killed process; an OS crash may lose the last commits but never corrupts the file).
# The journal mode (WAL) is stored in the file itself, set once when the catalog is created.
# A new catalog's page size. ``vectors`` is a WITHOUT ROWID table, whose rows SQLite keeps whole in a page only
# up to ``(page_size - 12) · 64 / 255 - 23`` bytes: 1 002 at SQLite's default 4 096, so a 2 048-byte vector
# (D = 512) spilled into an overflow page of its own and cost 4.7 KB on disk; at 16 384 (up to 4 086 bytes:
# D ≤ 1 000 inline) it costs ≈ 2.3 KB and one page read. Catalogs made before keep their 4 096-byte pages.
PAGE_SIZE = 16_384
CONNECTION_PRAGMAS: dict[str, int] = {"busy_timeout": 30_000, "foreign_keys": 1, "synchronous": 1}  # 1 = NORMAL


class Catalog(VectorRows):
    """An open ``catalog.sqlite``. Use :meth:`open`; close with :meth:`close` or as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._db: Any = None
        self.path = path

    @property
    def db(self) -> Any:
        """sqlite-utils' ``Database`` over this connection, made on first use (a writer's transactions):
        a reader (``dgsearch query``) never imports sqlite-utils, a tenth of a cold query's overhead; a writer
        imports it without pandas (``store/sqlite_utils_module.py``)."""
        if self._db is None:
            self._db = import_sqlite_utils().Database(self._conn)
        return self._db

    # -- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, index_dir: Path, *, create: bool = False) -> Catalog:
        """Open the catalog of ``index_dir``; with ``create``, make the folder and schema when absent.

        Raises IndexNotFoundError when absent and not ``create``, CorruptIndexError when unreadable,
        IncompatibleIndexError when written by a newer schema.
        """
        path = index_dir / CATALOG_NAME
        if not path.exists():
            if not create:
                raise IndexNotFoundError(
                    f"no index at {index_dir}: run `dgsearch index FOLDER --index {index_option(index_dir)}` first"
                    + _folder_hint(index_dir)
                )
            index_dir.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
            catalog = cls(conn, path)  # checked and upgraded below before it is returned
            for name, value in CONNECTION_PRAGMAS.items():
                conn.execute(f"PRAGMA {name} = {value}")
            tables = _table_names(conn)
            if not tables and create:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before the first write fixes it
                conn.execute("PRAGMA journal_mode = wal")
                create_schema(catalog)
                tables = _table_names(conn)
            if "meta" not in tables:
                raise CorruptIndexError(f"{path} is not a diffgap-search catalog (no meta table)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None or not str(row[0]).isdigit():
                raise CorruptIndexError(f"{path} has no valid schema version: move it aside and index again")
            check_version(int(row[0]), str(index_dir))
            if migrate(catalog, int(row[0])):  # an older catalog is upgraded in place, in one transaction
                tables = _table_names(conn)
            missing = sorted(_TABLES - tables)
            if missing:
                raise CorruptIndexError(
                    f"{path} lacks the table(s) {', '.join(missing)}: move it aside and index again"
                )
        except sqlite3.OperationalError as exc:
            if not any(m in str(exc) for m in _STORAGE_FAILURES):
                raise CorruptIndexError(
                    f"{path} cannot be read as a catalog ({exc}): move it aside and index again"
                ) from exc
            raise StorageError(
                f"cannot upgrade the catalog {path} to schema version {SCHEMA_VERSION}: {exc}"
                " (make the index writable, then run the command again)"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise CorruptIndexError(
                f"{path} cannot be read as a catalog ({exc}): move it aside and index again"
            ) from exc
        return catalog

    @property
    def conn(self) -> sqlite3.Connection:
        """The SQLite connection: ``store/``'s own (see the rule in ``store/__init__.py``); tests read it too."""
        return self._conn

    def close(self) -> None:
        """Close the connection (a transaction still open is rolled back)."""
        self._conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ----------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        """A ``meta`` value, JSON-decoded; ``default`` when absent. Raises CorruptIndexError if unreadable."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else self._decode_meta(key, row[0])

    def _decode_meta(self, key: str, value: str) -> Any:
        try:
            return json.loads(value)
        except (TypeError, ValueError) as exc:
            raise CorruptIndexError(
                f"{self.path} has a damaged meta value {key!r} ({exc}): move it aside and index again"
            ) from exc

    def set_meta(self, values: dict[str, Any]) -> None:
        """Set ``meta`` values (JSON-encoded) in the current transaction, or in one of their own."""
        with self._atomic():
            self.conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def all_meta(self) -> dict[str, Any]:
        """Every ``meta`` value, JSON-decoded, by key. Raises CorruptIndexError if one is unreadable."""
        return {k: self._decode_meta(k, v) for k, v in self.conn.execute("SELECT key, value FROM meta ORDER BY key")}

    # -- files ---------------------------------------------------------------------------------------
    def file_by_key(self, path_key: bytes) -> FileRow | None:
        """The file whose path key (``os.fsencode`` of its absolute path) is ``path_key``, or None."""
        row = self.conn.execute(f"SELECT {FILE_COLS} FROM files WHERE path_key = ?", (path_key,)).fetchone()
        return None if row is None else file_row(row)

    def file_by_id(self, file_id: int) -> FileRow | None:
        """The file of id ``file_id``, or None."""
        row = self.conn.execute(f"SELECT {FILE_COLS} FROM files WHERE id = ?", (int(file_id),)).fetchone()
        return None if row is None else file_row(row)

    def files_under(self, prefix_key: bytes) -> list[FileRow]:
        """Every file whose path key starts with ``prefix_key`` (a folder's key ending in ``/``)."""
        rows = self.conn.execute(
            f"SELECT {FILE_COLS} FROM files WHERE substr(path_key, 1, ?) = ? ORDER BY path_key",
            (len(prefix_key), prefix_key),
        )
        return [file_row(r) for r in rows]

    def count_files_under(self, prefix_key: bytes) -> int:
        """How many files' path keys start with ``prefix_key`` (one range of the unique path index)."""
        return int(self.conn.execute("SELECT count(*) FROM files WHERE path_key >= ? AND path_key < ?",
                                     key_range(prefix_key)).fetchone()[0])

    def files(self, *, status: str | None = None) -> list[FileRow]:
        """Every file (only those of ``status`` ``ok`` or ``error`` when given), in path-key order."""
        sql = f"SELECT {FILE_COLS} FROM files"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        return [file_row(r) for r in self.conn.execute(sql + " ORDER BY path_key", args)]

    def ok_files_by_sha(self, sha256: str) -> list[FileRow]:
        """The files indexed ok whose content hash is ``sha256`` (copies of one content), in id order."""
        rows = self.conn.execute(
            f"SELECT {FILE_COLS} FROM files WHERE sha256 = ? AND status = 'ok' ORDER BY id", (sha256,)
        )
        return [file_row(r) for r in rows]

    def delete_files(self, file_ids: Sequence[int]) -> None:
        """Remove files with their segments, vectors and captions (cascade) and their labels, in one transaction."""
        with self._atomic():
            self.conn.executemany("DELETE FROM labels WHERE path_key = (SELECT path_key FROM files WHERE id = ?)",
                                  [(i,) for i in file_ids])
            self.conn.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in file_ids])

    def move_file(self, file_id: int, path_key: bytes, path: str, size: int, mtime_ns: int) -> None:
        """A rename: the row keeps its id, segments, vectors and labels; only its path and stat change."""
        with self._atomic():
            self.conn.execute("UPDATE OR REPLACE labels SET path_key = ? WHERE path_key ="
                              " (SELECT path_key FROM files WHERE id = ?)", (path_key, file_id))
            self.conn.execute(
                "UPDATE files SET path_key = ?, path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                (path_key, path, size, mtime_ns, file_id),
            )

    def touch_file(self, file_id: int, size: int, mtime_ns: int) -> None:
        """Record a new stat for a file whose content hash did not change."""
        with self._atomic():
            self.conn.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, file_id))

    def put_file(
        self,
        *,
        path_key: bytes,
        path: str,
        kind: str,
        size: int,
        mtime_ns: int,
        sha256: str | None,
        segments: Sequence[SegmentInput] = (),
        captions: Sequence[str] = (),
        error: str | None = None,
        duration_s: float | None = None,
        has_audio: bool = True,
    ) -> int:
        """Insert or replace one file with its segments, vectors and captions; returns the file id.

        Call inside :meth:`batch` so a batch of files is one transaction. A replaced file's old segments
        are deleted (their ids are never reused). ``error`` set means status 'error' and no segments.
        """
        with self._atomic():
            self.conn.execute("DELETE FROM files WHERE path_key = ?", (path_key,))
            cur = self.conn.execute(
                "INSERT INTO files (path_key, path, kind, size, mtime_ns, sha256, status, error, duration_s,"
                " has_audio, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path_key, path, kind, size, mtime_ns, sha256, "error" if error else "ok", error,
                 duration_s, int(has_audio), now_iso()),
            )
            file_id = int(cur.lastrowid or 0)
            for seq, seg in enumerate(segments):
                cur = self.conn.execute(
                    "INSERT INTO segments (file_id, seq, start_s, end_s) VALUES (?, ?, ?, ?)",
                    (file_id, seq, float(seg.start_s), float(seg.end_s)),
                )
                seg_id = int(cur.lastrowid or 0)
                self.conn.executemany(
                    "INSERT INTO vectors (space, segment_id, vector) VALUES (?, ?, ?)",
                    [(space, seg_id, vector_blob(vec)) for space, vec in seg.vectors.items()],
                )
            self.conn.executemany(
                "INSERT INTO captions (file_id, text, source) VALUES (?, ?, 'sidecar')",
                [(file_id, c) for c in captions],
            )
        return file_id

    def set_captions(self, file_id: int, captions: Sequence[str]) -> bool:
        """Replace a file's captions when they differ; True when something changed."""
        if self.captions_of([file_id]).get(file_id, []) == list(captions):
            return False
        with self._atomic():
            self.conn.execute("DELETE FROM captions WHERE file_id = ?", (file_id,))
            self.conn.executemany(
                "INSERT INTO captions (file_id, text, source) VALUES (?, ?, 'sidecar')",
                [(file_id, c) for c in captions],
            )
        return True

    def copy_segments(self, src_file_id: int, dst_file_id: int) -> None:
        """Give ``dst`` the same windows and vectors as ``src`` (identical content, another path)."""
        with self._atomic():
            for seg_id, seq, start, end in self.conn.execute(
                "SELECT id, seq, start_s, end_s FROM segments WHERE file_id = ? ORDER BY seq", (src_file_id,)
            ).fetchall():
                cur = self.conn.execute(
                    "INSERT INTO segments (file_id, seq, start_s, end_s) VALUES (?, ?, ?, ?)",
                    (dst_file_id, seq, start, end),
                )
                self.conn.execute(
                    "INSERT INTO vectors (space, segment_id, vector) SELECT space, ?, vector FROM vectors"
                    " WHERE segment_id = ?",
                    (cur.lastrowid, seg_id),
                )

    @contextmanager
    def durable(self) -> Iterator[None]:
        """Commits made inside are fsynced before they return (``synchronous = FULL``), for a commit after
        which files are deleted on its strength (a moved FAISS generation). SQLite cannot change this inside
        a transaction: opened inside one, it changes nothing (that transaction commits later, elsewhere)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("PRAGMA synchronous = FULL")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA synchronous = {CONNECTION_PRAGMAS['synchronous']}")

    def batch(self) -> Any:
        """A transaction grouping several writes (``with catalog.batch(): ...``)."""
        return self._atomic()

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """``db.atomic()`` (a transaction, or a savepoint inside one) whose storage failures (disk full,
        I/O error, read-only file) become a StorageError; the transaction is rolled back either way."""
        try:
            with self.db.atomic():
                yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if not any(m in text for m in _STORAGE_FAILURES):
                raise
            raise StorageError(
                f"cannot write the catalog {self.path}: {text}; nothing of this batch was kept"
                " (free some space or make the index writable, then run `dgsearch index` again)"
            ) from exc

    # -- segments and vectors ------------------------------------------------------------------------
    def captions_of(self, file_ids: Iterable[int]) -> dict[int, list[str]]:
        """file id -> its captions in the order stored; files without captions are absent."""
        ids = list(file_ids)
        out: dict[int, list[str]] = {}
        for chunk in id_chunks(ids, 900):
            marks = ",".join("?" * len(chunk))
            for fid, text in self.conn.execute(
                f"SELECT file_id, text FROM captions WHERE file_id IN ({marks}) ORDER BY id", chunk
            ):
                out.setdefault(fid, []).append(text)
        return out

    def hit_rows(self, segment_ids: Iterable[int]) -> dict[int, HitRow]:
        """Segment id -> what to present; ids no longer in the catalog are simply absent."""
        ids = [int(i) for i in segment_ids]
        out: dict[int, HitRow] = {}
        for chunk in id_chunks(ids, 900):
            marks = ",".join("?" * len(chunk))
            for sid, fid, path, kind, start, end, key in self.conn.execute(
                "SELECT s.id, f.id, f.path, f.kind, s.start_s, s.end_s, f.path_key FROM segments s"
                f" JOIN files f ON f.id = s.file_id WHERE s.id IN ({marks}) AND f.status = 'ok'",
                chunk,
            ):
                out[sid] = HitRow(sid, fid, path, kind, start, end, bytes(key))
        return out

    def path_bounds(self) -> tuple[str, str] | None:
        """The display paths of the first and the last file indexed ok in the byte order of their absolute paths
        (``path_key``'s index: two index probes), or None when none is: every other file sorts between them, so
        what the two share at their start every file shares (``info.library_folder``)."""
        q = "SELECT path FROM files WHERE status = 'ok' ORDER BY path_key {} LIMIT 1"
        first = self.conn.execute(q.format("ASC")).fetchone()
        last = self.conn.execute(q.format("DESC")).fetchone()
        return (str(first[0]), str(last[0])) if first and last else None

    def stats(self) -> dict[str, Any]:
        """Counts for ``dgsearch info``: files (ok, failed, by kind, videos without sound), segments, seconds
        of media, vectors per space."""
        q = self.conn.execute
        return {
            "files": int(q("SELECT count(*) FROM files WHERE status = 'ok'").fetchone()[0]),
            "failed_files": int(q("SELECT count(*) FROM files WHERE status = 'error'").fetchone()[0]),
            "segments": int(q("SELECT count(*) FROM segments").fetchone()[0]),
            "seconds": float(q("SELECT coalesce(sum(duration_s), 0) FROM files WHERE status = 'ok'").fetchone()[0]),
            "by_kind": dict(q("SELECT kind, count(*) FROM files WHERE status = 'ok' GROUP BY kind ORDER BY kind").fetchall()),
            "vectors": dict(q("SELECT space, count(*) FROM vectors GROUP BY space ORDER BY space").fetchall()),
            "video_without_audio": int(
                q("SELECT count(*) FROM files WHERE kind = 'video' AND has_audio = 0 AND status = 'ok'").fetchone()[0]
            ),
        }


__all__ = ["CATALOG_NAME", "CONNECTION_PRAGMAS", "SCHEMA_VERSION", "Catalog", "FileRow", "HitRow", "SegmentInput"]
