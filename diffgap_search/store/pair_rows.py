"""Catalog queries for a DiffGAP bridge's training and evaluation pairs (``bridge/pairs.py``): how many captions
the index holds, and the windows holding a vector in two spaces at once (a video window's sound and frames)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from diffgap_search.store.catalog import Catalog


@dataclass(frozen=True)
class PairedVectors:
    """One window with a vector in both spaces asked for: its ``segment_id``, its file's ``sha256`` (None when
    unknown) and the two ``(D,) float32`` vectors (each of its space's dimension)."""

    segment_id: int
    sha256: str | None
    first: np.ndarray
    second: np.ndarray


def captioned_files(catalog: Catalog) -> tuple[int, int]:
    """``(files with at least one sidecar caption, files)``, both among the successfully indexed files."""
    row = catalog.conn.execute(
        "SELECT (SELECT count(DISTINCT c.file_id) FROM captions c JOIN files f ON f.id = c.file_id"
        " WHERE f.status = 'ok'), (SELECT count(*) FROM files WHERE status = 'ok')"
    ).fetchone()
    return int(row[0]), int(row[1])


def paired_vectors(catalog: Catalog, first: str, second: str) -> Iterator[PairedVectors]:
    """Every window of a file indexed ok with a vector in both space ``first`` and space ``second``, in
    segment-id order (``first="audio", second="video"``: each video window's soundtrack and frames)."""
    rows = catalog.conn.execute(
        "SELECT s.id, f.sha256, a.vector, v.vector FROM segments s JOIN files f ON f.id = s.file_id"
        " JOIN vectors a ON a.segment_id = s.id AND a.space = ?"
        " JOIN vectors v ON v.segment_id = s.id AND v.space = ? WHERE f.status = 'ok' ORDER BY s.id",
        (first, second),
    )
    for sid, sha, a_blob, b_blob in rows:
        yield PairedVectors(int(sid), sha, np.frombuffer(a_blob, dtype="<f4").astype(np.float32),
                            np.frombuffer(b_blob, dtype="<f4").astype(np.float32))
