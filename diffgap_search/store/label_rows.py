"""Reading the user's labels by file: the one query ``store/labels.py`` (hits' labels) and ``store/keywords.py``
(labels as keyword text) share. Its own module because ``labels`` imports ``keywords`` (a label written refreshes
the file's keyword row), so ``keywords`` cannot import ``labels``."""

from __future__ import annotations

from collections.abc import Iterable

from diffgap_search.store.rows import Connected
from diffgap_search.store.vectors import id_chunks


def labels_by_file(catalog: Connected, file_ids: Iterable[int]) -> dict[int, list[str]]:
    """file id -> its labels as written, in the order they were put on (files without labels are absent)."""
    ids = sorted({int(i) for i in file_ids})
    out: dict[int, list[str]] = {}
    for chunk in id_chunks(ids, 900):
        marks = ",".join("?" * len(chunk))
        for fid, label in catalog.conn.execute(
                f"SELECT f.id, l.label FROM files f JOIN labels l ON l.path_key = f.path_key WHERE f.id IN ({marks})"
                " ORDER BY f.id, l.added_at, l.folded", chunk):
            out.setdefault(int(fid), []).append(str(label))
    return out
