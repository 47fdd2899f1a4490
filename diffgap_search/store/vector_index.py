"""One vector space's FAISS index on disk: generations, atomic writes, verification and search.

A space's vectors live in the catalog; ``<space>.<generation>.faiss`` is derived from them. Publishing
writes a temporary file, fsyncs it, ``os.replace``s it into place, fsyncs the folder, and only then one
catalog transaction moves ``faiss.<space>`` (generation, count, max id, size, kind, CRC-32) forward. A
reader that finds the file missing, short, damaged (its CRC-32, computed while FAISS reads it, differs
from the one computed while it was written) or disagreeing with that record rebuilds the index from the
catalog's BLOBs in memory, so a torn or tampered file is never served.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import FaissConfig
from diffgap_search.errors import StorageError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.index_choice import build_index, index_kind_for, search_threads, set_search_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """The catalog's record of a space's current FAISS file."""

    generation: int
    count: int
    max_id: int
    size: int
    kind: str
    crc32: int | None = None  # None in records written before checksums

    @classmethod
    def read(cls, catalog: Catalog, space: str) -> Published | None:
        rec = catalog.get_meta(f"faiss.{space}")
        return None if rec is None else cls(**rec)


def faiss_path(index_dir: Path, space: str, generation: int) -> Path:
    return index_dir / f"{space}.{generation}.faiss"


@dataclass
class LoadedIndex:
    """A space's FAISS index in memory plus the id range it covers (ids ≤ ``max_id``)."""

    space: str
    index: Any
    max_id: int
    kind: str
    rebuilt: bool

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``queries (Q, D) float32`` -> ``(scores (Q, k) float32, ids (Q, k) int64)``, -1 where absent."""
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        if self.ntotal == 0:
            q = len(queries)
            return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)
        with search_threads(len(queries)):
            scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids


def build_from_catalog(catalog: Catalog, space: str, dim: int, cfg: FaissConfig) -> tuple[Any, int, str]:
    """A fresh index of every vector of ``space``: returns ``(index, max_id, kind)``."""
    n = catalog.count_vectors(space)
    kind = index_kind_for(n, cfg)
    if kind == "flat":
        index = build_index(kind, dim, None, cfg)
        for ids, vecs in catalog.read_vectors(space, dim=dim):
            index.add_with_ids(vecs, ids)
    else:
        ids_all, vecs_all = _read_all(catalog, space, dim)
        index = build_index(kind, dim, vecs_all, cfg)
        index.add_with_ids(vecs_all, ids_all)
    return index, catalog.max_segment_id(space), kind


def _read_all(catalog: Catalog, space: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    parts = list(catalog.read_vectors(space, dim=dim))
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_index(index_dir: Path, catalog: Catalog, space: str, dim: int, cfg: FaissConfig) -> LoadedIndex:
    """The published index of ``space``, verified against the catalog's record; rebuilt in memory if not.

    Verification: the file of the recorded generation exists, has the recorded size and CRC-32, reads, and
    holds the recorded count. Anything else (missing, truncated, tampered, stale) -> rebuilt from the BLOBs.
    """
    pub = Published.read(catalog, space)
    if pub is not None:
        path = faiss_path(index_dir, space, pub.generation)
        try:
            if path.stat().st_size != pub.size:
                raise ValueError(f"size {path.stat().st_size} != recorded {pub.size}")
            index = read_checked(path, pub.crc32)
            if index.ntotal != pub.count:
                raise ValueError(f"holds {index.ntotal} vectors, catalog recorded {pub.count}")
            set_search_params(index, cfg)
            return LoadedIndex(space, index, pub.max_id, pub.kind, rebuilt=False)
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("FAISS file %s unusable (%s): rebuilding from the catalog", path.name, exc)
    index, max_id, kind = build_from_catalog(catalog, space, dim, cfg)
    return LoadedIndex(space, index, max_id, kind, rebuilt=True)


def publish(index_dir: Path, catalog: Catalog, space: str, dim: int, cfg: FaissConfig) -> Published:
    """Bring ``space``'s FAISS file up to date with the catalog and publish it as a new generation.

    Incremental where the index type still fits the size (remove deleted ids, add ids above the old
    ``max_id``); rebuilt from the catalog otherwise. Old generation files are removed afterwards.
    """
    n = catalog.count_vectors(space)
    wanted = index_kind_for(n, cfg)
    pub = Published.read(catalog, space)
    loaded = load_index(index_dir, catalog, space, dim, cfg) if pub is not None else None
    if loaded is not None and not loaded.rebuilt and loaded.kind == wanted:
        index = loaded.index
        _remove_deleted(index, catalog, space)
        for ids, vecs in catalog.read_vectors(space, after_id=loaded.max_id, dim=dim):
            index.add_with_ids(vecs, ids)
        max_id = max(loaded.max_id, catalog.max_segment_id(space))
        kind = wanted
    elif loaded is not None and loaded.rebuilt and loaded.kind == wanted:
        index, max_id, kind = loaded.index, loaded.max_id, loaded.kind
    else:
        index, max_id, kind = build_from_catalog(catalog, space, dim, cfg)
    if index.ntotal != n:
        raise RuntimeError(f"FAISS index of {space!r} holds {index.ntotal} vectors, catalog has {n}")
    generation = (pub.generation if pub else 0) + 1
    size, crc = write_atomic(index, faiss_path(index_dir, space, generation))
    record = Published(generation=generation, count=n, max_id=max_id, size=size, kind=kind, crc32=crc)
    catalog.set_meta({f"faiss.{space}": record.__dict__})
    remove_stale_files(index_dir, space, keep=generation)
    return record


def _remove_deleted(index: Any, catalog: Catalog, space: str) -> None:
    import faiss

    in_index = faiss.vector_to_array(index.id_map).astype(np.int64)
    gone = np.setdiff1d(in_index, catalog.live_ids(space), assume_unique=False)
    if len(gone):
        index.remove_ids(gone)


def read_checked(path: Path, crc32: int | None) -> Any:
    """``faiss.read_index`` of ``path`` in one pass that also computes the file's CRC-32; ValueError when it
    differs from ``crc32`` (or bytes follow the index). ``None`` skips the check."""
    import faiss

    crc = 0
    with open(path, "rb") as fh:

        def read(n: int) -> bytes:
            nonlocal crc
            chunk = fh.read(n)
            crc = zlib.crc32(chunk, crc)
            return chunk

        reader = faiss.PyCallbackIOReader(read)
        index = faiss.read_index(reader)
        del reader
        trailing = fh.read(1)
    if crc32 is not None and (crc != crc32 or trailing):
        raise ValueError(f"CRC-32 {crc:08x} != recorded {crc32:08x}: the file was damaged or altered")
    return index


def write_atomic(index: Any, path: Path) -> tuple[int, int]:
    """Write ``index`` to ``path`` via tmp + fsync + ``os.replace`` + fsync(dir); returns ``(size in bytes,
    CRC-32 of the bytes)``, the CRC computed as they are written.

    The bytes go through a Python file, not ``write_index(index, filename)``: faiss only prints an error
    when flushing its own file fails at close (a full disk), and would leave a short file behind silently.
    """
    import faiss

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        crc = 0
        with open(tmp, "xb") as fh:

            def write(chunk: bytes) -> int:
                nonlocal crc
                crc = zlib.crc32(chunk, crc)
                return fh.write(chunk)

            writer = faiss.PyCallbackIOWriter(write)
            faiss.write_index(index, writer)
            del writer
            fh.flush()
            os.fsync(fh.fileno())
        size = tmp.stat().st_size
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        if not isinstance(exc, OSError) and type(exc) is not RuntimeError:
            raise  # a RecursionError, NotImplementedError…: a bug, not a write failure
        # faiss reports its I/O failures as a plain RuntimeError
        raise StorageError(
            f"cannot write the FAISS index {path}: {_io_reason(exc)}; the previous index is unchanged"
            " (free some space, then run `dgsearch index` again)"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, crc


def _io_reason(exc: BaseException) -> str:
    """One line saying why a write failed (``No space left on device``), from an OSError or faiss's text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split("failed: ", 1)[-1]


def sweep_unpublished(index_dir: Path, catalog: Catalog) -> None:
    """Delete every FAISS file the catalog does not publish (writer only, under the writer lock).

    A writer killed after the catalog moved a generation, but before it deleted the old file, leaves that
    file behind; a writer killed inside ``write_atomic`` leaves a temporary file. The next run removes
    them here, even when it has nothing to publish.
    """
    for key, record in catalog.all_meta().items():
        if key.startswith("faiss.") and isinstance(record, dict):
            remove_stale_files(index_dir, key[len("faiss."):], keep=int(record["generation"]))


def remove_stale_files(index_dir: Path, space: str, keep: int) -> None:
    """Delete ``space``'s FAISS files of other generations and leftover temporary files."""
    for path in index_dir.glob(f"{space}.*.faiss"):
        gen = path.name[len(space) + 1 : -len(".faiss")]
        if gen.isdigit() and int(gen) != keep:
            path.unlink(missing_ok=True)
    for path in index_dir.glob(f".{space}.*.tmp"):
        path.unlink(missing_ok=True)
