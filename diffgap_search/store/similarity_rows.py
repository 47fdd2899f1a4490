"""Catalog queries for library-wide similarity (``dgsearch similar``, ``dgsearch dupes``): which file each
window belongs to, a file's windows, and the files to present."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from diffgap_search.store.catalog import Catalog
from diffgap_search.store.rows import FILE_COLS, FileRow, file_row


def segment_files(catalog: Catalog, space: str) -> tuple[np.ndarray, np.ndarray]:
    """``(segment ids (n,) int64 ascending, their file ids (n,) int64)`` of every vector of ``space`` whose
    file is indexed (status ``ok``)."""
    rows = catalog.conn.execute(
        "SELECT s.id, s.file_id FROM vectors v JOIN segments s ON s.id = v.segment_id"
        " JOIN files f ON f.id = s.file_id WHERE v.space = ? AND f.status = 'ok' ORDER BY s.id",
        (space,),
    ).fetchall()
    arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0].copy(), arr[:, 1].copy()


def file_segment_ids(catalog: Catalog, file_id: int) -> list[int]:
    """The ids of a file's windows, in time order."""
    return [int(r[0]) for r in catalog.conn.execute("SELECT id FROM segments WHERE file_id = ? ORDER BY seq", (file_id,))]


def segment_file_id(catalog: Catalog, segment_id: int) -> int | None:
    """The file a segment belongs to (None when the segment is not in the index, or its file failed)."""
    row = catalog.conn.execute(
        "SELECT s.file_id FROM segments s JOIN files f ON f.id = s.file_id WHERE s.id = ? AND f.status = 'ok'",
        (segment_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def files_by_id(catalog: Catalog, file_ids: Iterable[int]) -> dict[int, FileRow]:
    """file id -> its row, for the ids that exist."""
    ids = sorted({int(i) for i in file_ids})
    out: dict[int, FileRow] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        for row in catalog.conn.execute(f"SELECT {FILE_COLS} FROM files WHERE id IN ({marks})", chunk):
            out[int(row[0])] = file_row(row)
    return out
