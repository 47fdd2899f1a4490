"""A file's embedded metadata in the catalog: ``tags`` (key, value) rows and ``file_info`` (sample rate,
channels). Writing them refreshes the file's keyword row (``store/keywords.py``).

What is written comes in as a :class:`FileMeta`: any value with those three attributes (``media.tags.FileTags``,
which reads them from the file, is one), so the store does not import the media stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from diffgap_search.store import keywords
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.vectors import id_chunks


class FileMeta(Protocol):
    """A file's embedded metadata as the store keeps it: ``tags`` as ``(key, value)`` pairs in their order,
    the first audio stream's ``sample_rate`` (Hz) and ``channels`` (None when unknown)."""

    @property
    def tags(self) -> Sequence[tuple[str, str]]:
        """``(key, value)`` pairs, in their order."""

    @property
    def sample_rate(self) -> int | None:
        """The first audio stream's rate in Hz, or None."""

    @property
    def channels(self) -> int | None:
        """The first audio stream's channel count, or None."""


@dataclass(frozen=True)
class TagStats:
    """Tags over the files indexed ok: files with a tag, values per key (by key), files whose stream facts
    (``file_info``) were read."""

    files_with_tags: int = 0
    by_key: dict[str, int] = field(default_factory=dict)
    files_with_info: int = 0


def put_file_meta(catalog: Catalog, file_id: int, meta: FileMeta) -> None:
    """Replace the tags and stream facts of ``file_id`` and refresh its keyword row (caller's transaction)."""
    conn = catalog.conn
    conn.execute("DELETE FROM tags WHERE file_id = ?", (file_id,))
    conn.executemany("INSERT INTO tags (file_id, key, value) VALUES (?, ?, ?)",
                     [(file_id, k, v) for k, v in meta.tags])
    conn.execute(
        "INSERT INTO file_info (file_id, sample_rate, channels) VALUES (?, ?, ?) ON CONFLICT(file_id)"
        " DO UPDATE SET sample_rate = excluded.sample_rate, channels = excluded.channels",
        (file_id, meta.sample_rate, meta.channels),
    )
    keywords.refresh(catalog, [file_id])


def copy_file_meta(catalog: Catalog, src_file_id: int, dst_file_id: int) -> None:
    """Give ``dst`` the metadata of ``src`` (identical content, so identical tags); caller's transaction."""
    conn = catalog.conn
    conn.execute("DELETE FROM tags WHERE file_id = ?", (dst_file_id,))
    conn.execute("INSERT INTO tags (file_id, key, value) SELECT ?, key, value FROM tags WHERE file_id = ? ORDER BY id",
                 (dst_file_id, src_file_id))
    conn.execute("INSERT OR REPLACE INTO file_info (file_id, sample_rate, channels)"
                 " SELECT ?, sample_rate, channels FROM file_info WHERE file_id = ?", (dst_file_id, src_file_id))
    keywords.refresh(catalog, [dst_file_id])


def tags_of(catalog: Catalog, file_ids: Iterable[int]) -> dict[int, dict[str, list[str]]]:
    """file id -> ``{key: [values]}`` (files without tags are absent)."""
    ids = sorted({int(i) for i in file_ids})
    out: dict[int, dict[str, list[str]]] = {}
    for chunk in id_chunks(ids, 900):
        marks = ",".join("?" * len(chunk))
        for fid, key, value in catalog.conn.execute(
            f"SELECT file_id, key, value FROM tags WHERE file_id IN ({marks}) ORDER BY id", chunk
        ):
            out.setdefault(fid, {}).setdefault(key, []).append(value)
    return out


def files_without_meta(catalog: Catalog, file_ids: Iterable[int]) -> set[int]:
    """Those of ``file_ids`` whose metadata was never read (files indexed before schema version 2)."""
    ids = sorted({int(i) for i in file_ids})
    have: set[int] = set()
    for chunk in id_chunks(ids, 900):
        marks = ",".join("?" * len(chunk))
        have.update(r[0] for r in catalog.conn.execute(f"SELECT file_id FROM file_info WHERE file_id IN ({marks})",
                                                       chunk))
    return set(ids) - have


def tag_stats(catalog: Catalog) -> TagStats:
    """How the files indexed ok are tagged (:class:`TagStats`)."""
    q = catalog.conn.execute
    return TagStats(
        files_with_tags=int(q("SELECT count(DISTINCT t.file_id) FROM tags t JOIN files f ON f.id = t.file_id"
                              " WHERE f.status = 'ok'").fetchone()[0]),
        by_key=dict(q("SELECT t.key, count(*) FROM tags t JOIN files f ON f.id = t.file_id WHERE f.status = 'ok'"
                      " GROUP BY t.key ORDER BY t.key").fetchall()),
        files_with_info=int(q("SELECT count(*) FROM file_info i JOIN files f ON f.id = i.file_id"
                              " WHERE f.status = 'ok'").fetchone()[0]),
    )
