"""The column sizes of the FTS5 keyword rows (``keywords_docsize``), as arrays, for BM25F (``store/bm25f.py``).

FTS5 writes one ``keywords_docsize`` row per keyword row as it goes in: ``sz`` holds the number of tokens of
each column (name, folders, captions, tags) as SQLite varints. Read whole once and remembered per catalog
until its data changes (``PRAGMA data_version`` for other connections' commits, ``total_changes`` for the
connection's own); read afresh inside an open transaction, whose rows no other reader sees.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from diffgap_search.store.rows import Connected

COLUMNS = ("name", "folders", "captions", "tags")  # the keywords table's columns, in order


@dataclass(frozen=True)
class ColumnSizes:
    """Every keyword row's column sizes.

    ``ids``: (N,) int64, the rows' file ids, ascending; ``sizes``: (N, 4) int32, tokens per column;
    ``averages``: (4,) float64, each column's mean size over the rows where it holds text (0 where none does),
    as Lucene's BM25 averages a field over the documents that have it."""

    ids: np.ndarray
    sizes: np.ndarray
    averages: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])

    def of(self, file_ids: np.ndarray) -> np.ndarray:
        """(M, 4) int32: the sizes of ``file_ids`` ((M,) int64); a row unknown here (written after this was
        read) gets the averages, rounded."""
        at = np.searchsorted(self.ids, file_ids)
        found = at < self.rows
        found[found] = self.ids[at[found]] == file_ids[found]
        out = np.repeat(np.rint(self.averages)[None, :].astype(np.int32), len(file_ids), axis=0)
        out[found] = self.sizes[at[found]]
        return out


_CACHE: weakref.WeakKeyDictionary[object, tuple[tuple[int, int], ColumnSizes]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def varints(blob: bytes) -> list[int]:
    """The SQLite varints of ``blob`` (big-endian 7-bit groups, the high bit set on every byte but the last;
    a ninth byte gives 8 bits), as FTS5 writes a row's column sizes."""
    out: list[int] = []
    i = 0
    while i < len(blob):
        value = 0
        for j in range(9):
            byte = blob[i]
            i += 1
            if j == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(value)
    return out


def column_sizes(catalog: Connected) -> ColumnSizes:
    """The keyword rows' :class:`ColumnSizes`, remembered per catalog until its data changes."""
    conn = catalog.conn
    if conn.in_transaction:
        return read_sizes(catalog)
    version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
    with _CACHE_LOCK:
        try:
            cached = _CACHE.get(catalog)
        except TypeError:  # an object that takes no weak reference is not remembered
            cached = None
    if cached is not None and cached[0] == version:
        return cached[1]
    sizes = read_sizes(catalog)
    with _CACHE_LOCK:
        try:
            _CACHE[catalog] = (version, sizes)
        except TypeError:
            pass
    return sizes


def read_sizes(catalog: Connected) -> ColumnSizes:
    """:class:`ColumnSizes` read from ``keywords_docsize`` in one pass that returns two texts (the ids, the
    sizes in hex: a third of the time of a row each at 10^5 rows). While every column of every row is under
    128 tokens (one byte each) the sizes are the bytes themselves; else each row is parsed as varints."""
    width = len(COLUMNS)
    ids_text, sizes_text = catalog.conn.execute("SELECT group_concat(id), group_concat(hex(sz), ',') FROM"
                                                " (SELECT id, sz FROM keywords_docsize ORDER BY id)").fetchone()
    if not ids_text:
        return ColumnSizes(ids=np.zeros(0, np.int64), sizes=np.zeros((0, width), np.int32),
                           averages=np.zeros(width, np.float64))
    ids = np.array(ids_text.split(","), dtype=np.int64)
    in_bytes = len(sizes_text) == len(ids) * (2 * width + 1) - 1  # every row's sizes in `width` bytes
    raw = np.frombuffer(bytes.fromhex(sizes_text.replace(",", "")), dtype=np.uint8) if in_bytes else None
    if raw is not None and raw.max(initial=0) < 0x80:
        sizes = raw.reshape(len(ids), width).astype(np.int32)
    else:
        sizes = np.array([(varints(bytes.fromhex(h)) + [0] * width)[:width] for h in sizes_text.split(",")],
                         dtype=np.int32).reshape(-1, width)
    held = (sizes > 0).sum(axis=0)
    averages = np.where(held > 0, sizes.sum(axis=0, dtype=np.int64) / np.maximum(held, 1), 0.0).astype(np.float64)
    return ColumnSizes(ids=ids, sizes=sizes, averages=averages)
