"""One vector space's FAISS index on disk: generations, atomic writes, verification and search.

A space's vectors live in the catalog; ``<space>.<generation>.faiss`` is derived from them. Publishing
(writers only: ``dgsearch index`` and ``train``) writes a temporary file, fsyncs it, ``os.replace``s it
into place, fsyncs the folder, and only then one durable catalog transaction moves ``faiss.<space>``
(generation, count, max id, size, kind, CRC-32) forward; older generations are deleted once no reader
can still need them (``generations.py``).

Readers (:func:`load_index`) never train or build an approximate index: a file that is missing, short,
damaged (its CRC-32, computed while FAISS reads it, differs from the one computed while it was written)
or disagreeing with its record is never served; the reader reads the record once more (a writer may have
just published a newer generation) and otherwise answers by exact search over the catalog's BLOBs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import FaissConfig
from diffgap_search.store import ondisk_index as ondisk
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.faiss_files import read_checked, write_atomic
from diffgap_search.store.generations import reading, remove_stale_files, sweep_unpublished
from diffgap_search.store.index_budget import choose_index, default_budget_mb, is_compressed, parse_compressed
from diffgap_search.store.index_choice import build_index, search_threads, set_search_params, train_rows

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
    budget_mb: float | None = None  # the memory budget the kind was chosen under (None: before budgets)
    data_size: int | None = None  # a compressed index's on-disk lists (``<space>.<g>.ivfdata``); None: none
    data_crc32: int | None = None

    @classmethod
    def read(cls, catalog: Catalog, space: str) -> Published | None:
        """The catalog's record of ``space``'s FAISS file, or None when none was published."""
        rec = catalog.get_meta(f"faiss.{space}")
        if rec is None:
            return None
        return cls(**{k: v for k, v in rec.items() if k in cls.__dataclass_fields__})  # a newer record's extras ignored


CHUNK_ROWS = 65_536  # vectors read from the catalog at a time (a shard fills from whole chunks)
REBUILD_KEY = "rebuild_faiss"  # meta: spaces whose next publish must rebuild (their vectors were replaced)


def faiss_path(index_dir: Path, space: str, generation: int) -> Path:
    """``<index>/<space>.<generation>.faiss``."""
    return index_dir / f"{space}.{generation}.faiss"


@dataclass
class LoadedIndex:
    """A space's FAISS index in memory plus the id range it covers (ids ≤ ``max_id``).

    ``rebuilt`` is False for a published file, True for the exact (flat) index a reader built from the
    catalog because no published file was usable; ``record`` is the catalog record that was read last
    (None when the space has none), so a searcher reloads when it changes.
    """

    space: str
    index: Any
    max_id: int
    kind: str
    rebuilt: bool
    record: Published | None = None

    _held: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)  # sorted ids (lazy)

    @property
    def ntotal(self) -> int:
        """How many vectors the index holds."""
        return int(self.index.ntotal)

    def vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors this index holds for ``ids (n,) int64``: ``(held (n,) bool, vectors (m, D) float32)``,
        one row per True of ``held``, in order.

        Read back from the index's own float32 copy (flat and IVF-Flat store vectors uncompressed), so they
        are the catalog's vectors as published, bit for bit, without a SQLite read: re-scoring ~300
        candidates this way costs microseconds where the catalog's random BLOB reads cost ~10 ms per space.
        The first call builds the id lookup (and an IVF index's direct map: ``ntotal`` int64, 8 MB at 10⁶).
        """
        import faiss

        if is_compressed(self.kind):  # codes, not vectors: the caller reads the float32 vectors elsewhere
            return np.zeros(len(ids), bool), np.zeros((0, self.index.d), np.float32)
        if self._held is None:
            if self.kind != "flat":
                faiss.extract_index_ivf(self.index).make_direct_map()
            self._held = np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._held, ids)
        held = (pos < len(self._held)) & (self._held[np.minimum(pos, len(self._held) - 1)] == ids) \
            if len(self._held) else np.zeros(len(ids), bool)
        if not held.any():
            return held, np.zeros((0, self.index.d), np.float32)
        return held, self.index.reconstruct_batch(ids[held]).astype(np.float32, copy=False)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``queries (Q, D) float32`` -> ``(scores (Q, k) float32, ids (Q, k) int64)``, -1 where absent."""
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        if self.ntotal == 0:
            q = len(queries)
            return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)
        with search_threads(len(queries)):
            scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids


def build_from_catalog(catalog: Catalog, space: str, dim: int, cfg: FaissConfig,
                       kind: str | None = None, data: tuple[Path, Callable[[int], Path]] | None = None,
                       ) -> tuple[Any, int, str]:
    """A fresh index of every vector of ``space`` of ``kind`` (default: the kind its size calls for without
    a budget; IVF is trained here: for writers only): returns ``(index, max_id, kind)``.

    A compressed kind is built in bounded memory: trained on a sample read in one pass over the catalog,
    then filled chunk by chunk (its float32 vectors are never all in memory). With ``data`` (``(the data
    file to merge into, shard file i)``) chunks go into shards of ``cfg.shard_vectors`` vectors on disk,
    merged into on-disk lists (``ondisk_index.build_sharded``: publish's path); without it, into one index
    in memory (the same trained index, the same lists in the same order)."""
    n = catalog.count_vectors(space)
    kind = kind if kind is not None else choose_index(n, dim, cfg, None).kind
    if kind == "flat":
        index, max_id = exact_from_catalog(catalog, space, dim)
        return index, max_id, kind
    if is_compressed(kind):
        comp = parse_compressed(kind)
        assert comp is not None
        index = build_index(kind, dim, _sample(catalog, space, dim, n, train_rows(comp, cfg)), cfg)
        if data is not None:
            chunks = catalog.read_vectors(space, dim=dim, chunk_rows=min(CHUNK_ROWS, cfg.shard_vectors))
            index, max_id = ondisk.build_sharded(index, chunks, data[0], data[1], cfg.shard_vectors)
            return index, max_id, kind
        max_id = 0
        for ids, vecs in catalog.read_vectors(space, dim=dim):
            index.add_with_ids(vecs, ids)
            max_id = int(ids[-1])
        return index, max_id, kind
    ids_all, vecs_all = _read_all(catalog, space, dim)
    index = build_index(kind, dim, vecs_all, cfg)
    index.add_with_ids(vecs_all, ids_all)
    return index, int(ids_all[-1]) if len(ids_all) else 0, kind


def exact_from_catalog(catalog: Catalog, space: str, dim: int) -> tuple[Any, int]:
    """``(IndexIDMap2(IndexFlatIP), max_id)`` holding every vector of ``space`` in id order; nothing is trained.

    It is the index a writer publishes for a flat-sized space, built the same way, so its hits (ids, scores,
    order) are those of the published file; for a larger space it is exact where the published IVF index
    is approximate. ``max_id`` is the highest id read (0 if none): vectors committed while it is built have
    higher ids and are found by the searcher's exact search of the delta above ``max_id``.
    """
    index = build_index("flat", dim, None, FaissConfig())
    max_id = 0
    for ids, vecs in catalog.read_vectors(space, dim=dim):
        index.add_with_ids(vecs, ids)
        max_id = int(ids[-1])
    return index, max_id


def _sample(catalog: Catalog, space: str, dim: int, n: int, rows: int, seed: int = 0) -> np.ndarray:
    """``(min(rows, n), D) float32``: a seeded sample of ``space``'s ``n`` vectors, read in one streaming pass
    (``rows``, ``index_choice.train_rows``, bounds the memory: 512 MB at 4 096 lists, 2 GB at 16 384, D = 512);
    the compressed index trains on it."""
    picked = np.sort(np.random.default_rng(seed).choice(n, size=min(rows, n), replace=False))
    out = np.empty((len(picked), dim), np.float32)
    start = filled = 0
    for _, vecs in catalog.read_vectors(space, dim=dim):
        mine = picked[(picked >= start) & (picked < start + len(vecs))] - start
        out[filled : filled + len(mine)] = vecs[mine]
        filled += len(mine)
        start += len(vecs)
    return out[:filled]


def _read_all(catalog: Catalog, space: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    parts = list(catalog.read_vectors(space, dim=dim))
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def open_published(index_dir: Path, space: str, pub: Published, cfg: FaissConfig) -> LoadedIndex | None:
    """The file ``pub`` names, verified, or None (logged) when it is missing, short, damaged or disagrees.

    Verification: the file exists, has the recorded size and CRC-32, reads, and holds the recorded count;
    a compressed index's data file (``ondisk_index.py``) exists and has its recorded size and CRC-32.
    """
    import faiss

    path = faiss_path(index_dir, space, pub.generation)
    try:
        if pub.data_size is None:
            index = read_checked(path, pub.crc32, pub.size)
        else:  # on-disk lists: read their directory, then map the data file read-only (ondisk_index.py)
            index = read_checked(path, pub.crc32, pub.size, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            ondisk.map_data(index, ondisk.data_path(index_dir, space, pub.generation), pub.data_size,
                            pub.data_crc32)
        if index.ntotal != pub.count:
            raise ValueError(f"holds {index.ntotal} vectors, catalog recorded {pub.count}")
    except (OSError, RuntimeError, ValueError) as exc:
        log.warning("FAISS file %s unusable (%s)", path.name, exc)
        return None
    set_search_params(index, cfg)
    return LoadedIndex(space, index, pub.max_id, pub.kind, rebuilt=False, record=pub)


def load_index(index_dir: Path, catalog: Catalog, space: str, dim: int, cfg: FaissConfig) -> LoadedIndex:
    """For readers: the published index of ``space``, or an exact one; never an ANN index trained here.

    1. Holding the readers' lock (so the writer keeps the file, see ``generations.py``), read the record
       and the verified file it names.
    2. When that file is missing or unusable, read the record once more, before anything else: a writer
       may just have published a newer generation; if the record moved, load the file it now names.
    3. Otherwise (no record, or no usable file) build :func:`exact_from_catalog`: a flat index needs no
       training, and for a flat-sized space it answers exactly as the published file would have.
    """
    with reading(index_dir):
        pub = Published.read(catalog, space)
        loaded = open_published(index_dir, space, pub, cfg) if pub is not None else None
    if loaded is None and pub is not None:
        with reading(index_dir):
            again = Published.read(catalog, space)
            if again is not None and again != pub:
                loaded = open_published(index_dir, space, again, cfg)
            pub = again
    if loaded is not None:
        return loaded
    if pub is not None:
        log.warning("no usable FAISS file for %s: searching the catalog's vectors exactly", space)
    index, max_id = exact_from_catalog(catalog, space, dim)
    return LoadedIndex(space, index, max_id, "flat", rebuilt=True, record=pub)


def publish(index_dir: Path, catalog: Catalog, space: str, dim: int, cfg: FaissConfig) -> Published:
    """Bring ``space``'s FAISS file up to date with the catalog and publish it as a new generation (writer
    only, under the writer lock, outside any open transaction).

    Incremental where the published file is usable, its index type still fits the size and the space is not
    marked for a rebuild (remove deleted ids, add ids above the old ``max_id``; a compressed index gets a new
    data file merged from the published lists and the new vectors' shards: ``ondisk_index.extend``); rebuilt
    from the catalog otherwise (a compressed one through shards on disk: ``ondisk_index.build_sharded``). A
    space whose stored vectors were replaced under the same ids (a bridged space after a new bridge) is marked
    in ``meta["rebuild_faiss"]`` by the transaction that replaced them, so a kill before this publish leaves
    the mark for the next one; it is cleared with the new record. The record is committed
    durably (fsynced) before older generations are deleted, and those are deleted only when no reader can
    still need them (``generations.remove_stale_files``; otherwise the next run does it).
    """
    n = catalog.count_vectors(space)
    pub = Published.read(catalog, space)
    budget = cfg.memory_budget_mb or (pub.budget_mb if pub is not None else None) or default_budget_mb()
    choice = choose_index(n, dim, cfg, budget)
    log.info("index of %s: %s", space, choice.reason)
    wanted = choice.kind
    marked = list(catalog.get_meta(REBUILD_KEY) or [])
    current = open_published(index_dir, space, pub, cfg) if pub is not None and space not in marked else None
    generation = (pub.generation if pub else 0) + 1
    compressed = is_compressed(wanted)
    data_tmp = ondisk.temporary(index_dir, space, generation, "ivfdata")

    def shard(i: int) -> Path:
        return ondisk.temporary(index_dir, space, generation, f"shard{i}")

    if current is not None and current.kind == wanted and compressed:  # a new data file; the published one is read
        gone = np.setdiff1d(ivf_ids(current.index), catalog.live_ids(space))
        chunks = catalog.read_vectors(space, after_id=current.max_id, dim=dim,
                                      chunk_rows=min(CHUNK_ROWS, cfg.shard_vectors))
        index, _ = ondisk.extend(current.index, chunks, gone, data_tmp, shard, cfg.shard_vectors)
        max_id = max(current.max_id, catalog.max_segment_id(space))
        kind = wanted
    elif current is not None and current.kind == wanted:
        index = current.index
        after_id = current.max_id if _remove_deleted(index, catalog, space, current.kind) else 0
        for ids, vecs in catalog.read_vectors(space, after_id=after_id, dim=dim):
            index.add_with_ids(vecs, ids)
        max_id = max(current.max_id, catalog.max_segment_id(space))
        kind = wanted
    else:
        index, max_id, kind = build_from_catalog(catalog, space, dim, cfg, wanted, (data_tmp, shard) if compressed
                                                 else None)
    if index.ntotal != n:
        raise RuntimeError(f"FAISS index of {space!r} holds {index.ntotal} vectors, catalog has {n}")
    data_size = data_crc = None
    if compressed:  # the data file first (durable, in place), then the .faiss file that names it
        data_size, data_crc = ondisk.seal(index, data_tmp, ondisk.data_path(index_dir, space, generation))
    size, crc = write_atomic(index, faiss_path(index_dir, space, generation))
    del index, current  # a compressed index's mapping of its data file is let go here
    record = Published(generation=generation, count=n, max_id=max_id, size=size, kind=kind, crc32=crc,
                       budget_mb=budget, data_size=data_size, data_crc32=data_crc)
    with catalog.durable():
        catalog.set_meta({f"faiss.{space}": record.__dict__, **({REBUILD_KEY: [m for m in marked if m != space]}
                                                                 if space in marked else {})})
    remove_stale_files(index_dir, space, keep=generation)
    return record


def _remove_deleted(index: Any, catalog: Catalog, space: str, kind: str) -> bool:
    """Remove from a flat or IVF-Flat ``index`` the ids the catalog no longer has; False when it was emptied
    instead (the caller then adds every vector again).

    ``IndexFlat`` renumbers its rows on removal, as ``IndexIDMap2`` assumes; ``IndexIVF`` does not, so an
    IVF-Flat index wrapped in ``IndexIDMap2`` would afterwards map its hits to the wrong ids: it is reset
    (its trained centroids kept: no training again) and refilled. (A compressed index keeps the segment ids
    in its own lists; its deleted ids are removed from the next generation's data file: ``ondisk_index``.)
    """
    import faiss

    gone = np.setdiff1d(faiss.vector_to_array(index.id_map).astype(np.int64), catalog.live_ids(space))
    if not len(gone):
        return True
    if kind != "flat":
        index.reset()
        return False
    index.remove_ids(gone)
    return True


def ivf_ids(index: Any) -> np.ndarray:
    """``(ntotal,) int64``: every id in an IVF index's inverted lists (any wrapping), list by list."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    inv = ivf.invlists
    parts = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).astype(np.int64)
             for i in range(ivf.nlist) if inv.list_size(i)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


__all__ = [
    "LoadedIndex", "Published", "build_from_catalog", "exact_from_catalog", "faiss_path", "load_index",
    "open_published", "publish", "read_checked", "remove_stale_files", "sweep_unpublished", "write_atomic",
]
