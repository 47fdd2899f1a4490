"""A file's embedded metadata in the catalog: ``tags`` (key, value) rows and ``file_info`` (sample rate,
channels). Writing them refreshes the file's keyword row (``store/keywords.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from diffgap_search.media.tags import FileTags
from diffgap_search.store import keywords


def put_file_meta(conn: sqlite3.Connection, file_id: int, meta: FileTags) -> None:
    """Replace the tags and stream facts of ``file_id`` and refresh its keyword row (caller's transaction)."""
    conn.execute("DELETE FROM tags WHERE file_id = ?", (file_id,))
    conn.executemany("INSERT INTO tags (file_id, key, value) VALUES (?, ?, ?)",
                     [(file_id, k, v) for k, v in meta.tags])
    conn.execute(
        "INSERT INTO file_info (file_id, sample_rate, channels) VALUES (?, ?, ?) ON CONFLICT(file_id)"
        " DO UPDATE SET sample_rate = excluded.sample_rate, channels = excluded.channels",
        (file_id, meta.sample_rate, meta.channels),
    )
    keywords.refresh(conn, [file_id])


def copy_file_meta(conn: sqlite3.Connection, src_file_id: int, dst_file_id: int) -> None:
    """Give ``dst`` the metadata of ``src`` (identical content, so identical tags); caller's transaction."""
    conn.execute("DELETE FROM tags WHERE file_id = ?", (dst_file_id,))
    conn.execute("INSERT INTO tags (file_id, key, value) SELECT ?, key, value FROM tags WHERE file_id = ? ORDER BY id",
                 (dst_file_id, src_file_id))
    conn.execute("INSERT OR REPLACE INTO file_info (file_id, sample_rate, channels)"
                 " SELECT ?, sample_rate, channels FROM file_info WHERE file_id = ?", (dst_file_id, src_file_id))
    keywords.refresh(conn, [dst_file_id])


def tags_of(conn: sqlite3.Connection, file_ids: Iterable[int]) -> dict[int, dict[str, list[str]]]:
    """file id -> ``{key: [values]}`` (files without tags are absent)."""
    ids = sorted({int(i) for i in file_ids})
    out: dict[int, dict[str, list[str]]] = {}
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        marks = ",".join("?" * len(chunk))
        for fid, key, value in conn.execute(
            f"SELECT file_id, key, value FROM tags WHERE file_id IN ({marks}) ORDER BY id", chunk
        ):
            out.setdefault(fid, {}).setdefault(key, []).append(value)
    return out


def files_without_meta(conn: sqlite3.Connection, file_ids: Iterable[int]) -> set[int]:
    """Those of ``file_ids`` whose metadata was never read (files indexed before schema version 2)."""
    ids = sorted({int(i) for i in file_ids})
    have: set[int] = set()
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        marks = ",".join("?" * len(chunk))
        have.update(r[0] for r in conn.execute(f"SELECT file_id FROM file_info WHERE file_id IN ({marks})", chunk))
    return set(ids) - have


def tag_stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """``{"files_with_tags": n, "by_key": {key: values}, "files_with_info": n}`` over files indexed ok."""
    q = conn.execute
    return {
        "files_with_tags": int(q("SELECT count(DISTINCT t.file_id) FROM tags t JOIN files f ON f.id = t.file_id"
                                 " WHERE f.status = 'ok'").fetchone()[0]),
        "by_key": dict(q("SELECT t.key, count(*) FROM tags t JOIN files f ON f.id = t.file_id WHERE f.status = 'ok'"
                         " GROUP BY t.key ORDER BY t.key").fetchall()),
        "files_with_info": int(q("SELECT count(*) FROM file_info i JOIN files f ON f.id = i.file_id"
                                 " WHERE f.status = 'ok'").fetchone()[0]),
    }
