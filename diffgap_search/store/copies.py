"""Catalog queries about copies (files indexed ok with the same content hash): the one window that scores a
content's window for every copy of it, the content hash of hits' files, and the paths of a content's copies.
"""

from __future__ import annotations

from collections.abc import Iterable

from diffgap_search.store.catalog import Catalog
from diffgap_search.store.vectors import id_chunks


def canonical_segments(catalog: Catalog, segment_ids: Iterable[int]) -> dict[int, int]:
    """Segment id -> the id of the same window (same ``seq``) in the first-indexed copy of its file's
    content (the lowest segment id among the ok files sharing its ``sha256``); a window of a file without
    copies, or without a hash, maps to itself. Ids that are no window of an ok file are absent."""
    ids = sorted({int(i) for i in segment_ids})
    out: dict[int, int] = {}
    for chunk in id_chunks(ids, 900):
        marks = ",".join("?" * len(chunk))
        out.update(catalog.conn.execute(
            "SELECT s.id, coalesce((SELECT min(s2.id) FROM files f2 JOIN segments s2 ON s2.file_id = f2.id"
            " WHERE f2.sha256 = f.sha256 AND f2.status = 'ok' AND s2.seq = s.seq), s.id)"
            f" FROM segments s JOIN files f ON f.id = s.file_id WHERE s.id IN ({marks}) AND f.status = 'ok'",
            chunk,
        ).fetchall())
    return out


def file_hashes(catalog: Catalog, file_ids: Iterable[int]) -> dict[int, str]:
    """File id -> its content hash (``sha256`` hex), for the files of ``file_ids`` that have one."""
    ids = sorted({int(i) for i in file_ids})
    out: dict[int, str] = {}
    for chunk in id_chunks(ids, 900):
        marks = ",".join("?" * len(chunk))
        out.update(catalog.conn.execute(
            f"SELECT id, sha256 FROM files WHERE id IN ({marks}) AND sha256 IS NOT NULL", chunk).fetchall())
    return out


def files_with_hashes(catalog: Catalog, hashes: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
    """Content hash -> ``[(file id, display path)]`` of the ok files holding that content, by path."""
    wanted = sorted(set(hashes))
    out: dict[str, list[tuple[int, str]]] = {}
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        marks = ",".join("?" * len(chunk))
        for fid, sha, path in catalog.conn.execute(
            f"SELECT id, sha256, path FROM files WHERE sha256 IN ({marks}) AND status = 'ok' ORDER BY path, id",
            chunk,
        ):
            out.setdefault(sha, []).append((int(fid), path))
    return out
