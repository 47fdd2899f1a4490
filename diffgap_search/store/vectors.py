"""The catalog's vectors: one BLOB (little-endian float32) per (space, segment), read and written here.

:class:`VectorRows` is a part of ``catalog.Catalog`` (its base class): the SQL on the ``vectors`` table.
A space is one kind of vector (``audio``, ``text``-side ``audio_as_text``, ``video``, ``cavp_audio`` ...);
every vector of a space has its dimension D.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

import numpy as np

from diffgap_search.errors import CorruptIndexError


class VectorRows:
    """The ``vectors`` table's reads and writes, on the connection ``conn`` of the catalog it is part of."""

    @property
    def conn(self) -> sqlite3.Connection:
        """The catalog's connection (``Catalog.conn``)."""
        raise NotImplementedError

    def count_vectors(self, space: str, *, after_id: int = 0) -> int:
        """How many vectors ``space`` holds (with ``after_id``: only those of segment ids above it, e.g. the
        vectors committed since a FAISS file holding ids up to ``after_id`` was published)."""
        if after_id:
            row = self.conn.execute(
                "SELECT count(*) FROM vectors WHERE space = ? AND segment_id > ?", (space, int(after_id))
            ).fetchone()
        else:
            row = self.conn.execute("SELECT count(*) FROM vectors WHERE space = ?", (space,)).fetchone()
        return int(row[0])

    def max_segment_id(self, space: str) -> int:
        """The highest segment id with a vector in ``space`` (0 when it has none)."""
        row = self.conn.execute("SELECT max(segment_id) FROM vectors WHERE space = ?", (space,)).fetchone()
        return int(row[0] or 0)

    def spaces(self) -> list[str]:
        """Every space holding a vector, by name."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT space FROM vectors ORDER BY space")]

    def read_vectors(
        self, space: str, *, after_id: int = 0, dim: int | None = None, chunk_rows: int = 65_536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids (n,) int64, vectors (n, D) float32)`` chunks of one space, ordered by segment id."""
        last = after_id
        while True:
            rows = self.conn.execute(
                "SELECT segment_id, vector FROM vectors WHERE space = ? AND segment_id > ?"
                " ORDER BY segment_id LIMIT ?",
                (space, last, chunk_rows),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            if dim is not None and vecs.shape[1] != dim:
                raise CorruptIndexError(f"vectors of space {space!r} have dimension {vecs.shape[1]}, expected {dim}")
            yield ids, vecs.astype(np.float32, copy=False)
            last = int(ids[-1])

    def vectors_of(self, space: str, segment_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """segment id -> ``(D,) float32`` vector of ``space``; ids without one are absent."""
        out: dict[int, np.ndarray] = {}
        for chunk in id_chunks([int(i) for i in segment_ids], 900):
            marks = ",".join("?" * len(chunk))
            for sid, blob in self.conn.execute(
                f"SELECT segment_id, vector FROM vectors WHERE space = ? AND segment_id IN ({marks})", [space, *chunk]
            ):
                out[int(sid)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return out

    def put_vectors(self, space: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace ``vectors (n, D) float32`` of ``space`` for segment ``ids (n,)`` (caller's transaction)."""
        self.conn.executemany(
            "INSERT INTO vectors (space, segment_id, vector) VALUES (?, ?, ?)"
            " ON CONFLICT(space, segment_id) DO UPDATE SET vector = excluded.vector",
            [(space, int(i), vector_blob(v)) for i, v in zip(ids, vectors)],
        )

    def delete_space(self, space: str) -> None:
        """Remove every vector of ``space`` (caller's transaction)."""
        self.conn.execute("DELETE FROM vectors WHERE space = ?", (space,))

    def rename_space(self, old: str, new: str) -> None:
        """Move every vector of space ``old`` to space ``new``, which must hold none (caller's transaction)."""
        self.conn.execute("UPDATE vectors SET space = ? WHERE space = ?", (new, old))

    def live_ids(self, space: str) -> np.ndarray:
        """``(n,) int64`` every segment id that has a vector in ``space``, ascending."""
        rows = self.conn.execute("SELECT segment_id FROM vectors WHERE space = ? ORDER BY segment_id", (space,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)


def vector_blob(vec: np.ndarray) -> bytes:
    """``(D,)`` float vector -> its BLOB: little-endian float32 bytes."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def id_chunks(seq: Sequence[int], n: int) -> Iterator[list[int]]:
    """``seq`` in lists of at most ``n`` (SQLite's bound-parameter limit for ``IN (...)`` lists)."""
    for i in range(0, len(seq), n):
        yield list(seq[i : i + n])
