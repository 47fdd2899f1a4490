"""A compressed index built in bounded memory and served memory-mapped (issue 23, "built in bounded memory").

**Files.** A compressed generation is two files: ``<space>.<g>.faiss`` (the trained parts: OPQ rotation,
coarse quantiser, PQ codebooks; and the lists' directory: each list's offset, size and capacity) and
``<space>.<g>.ivfdata``, FAISS's ``OnDiskInvertedLists`` data (per list ``capacity · m`` code bytes, then
``capacity`` int64 ids). The ``.faiss`` file names its data file by base name only, so an index folder can be
moved or copied whole.

**Build** (writer, :func:`build_sharded`): the trained, empty index is copied into a shard, vectors are added
to it chunk by chunk as the catalog yields them, and every ``shard_vectors`` vectors the shard is written to a
temporary file and freed; ``faiss.contrib.ondisk.merge_ondisk`` then reads the shards with ``IO_FLAG_MMAP``
(their lists are mapped, not loaded) and copies list after list into one new data file. Memory is one shard's
codes (``m + 8`` bytes per vector) plus the trained parts, not the float32 vectors nor the whole index.

**Incremental publish** (:func:`extend`): a new generation's data file is merged from the published lists
(mapped read-only: readers map the same file, so it is never written) and shards of the new vectors. With
deletions, the published lists' live entries are first copied (codes as they are) into shards of whole lists
(:func:`live_shards`), which take their place in the merge. Nothing is encoded again, nothing is trained.

**Reading** (:func:`map_data`): the ``.faiss`` file is read with ``IO_FLAG_MMAP | IO_FLAG_READ_ONLY``; for
``OnDiskInvertedLists`` the first means "do not map the data now" (it contains ``IO_FLAG_SKIP_IVF_DATA``:
``OnDiskInvertedListsIOHook::read`` in the FAISS source). The reader then checks the data file's size and
CRC-32 against the catalog's record, names it by its path in the index folder and maps it read-only
(``do_mmap``: ``PROT_READ``, ``MAP_SHARED``): its pages are the page cache's, faulted in by the lists a search
probes, so a query process's own memory does not grow with the number of vectors. An unlinked data file stays
mapped until the reader drops the index (the writer deletes old generations only as ``generations.py`` allows).
"""

from __future__ import annotations

import os
import shutil
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.atomic_files import fsync_folder
from diffgap_search.errors import StorageError
from diffgap_search.libc import libc_function
from diffgap_search.store.coarse_training import set_add_beam
from diffgap_search.store.faiss_files import write_plain

DATA_SUFFIX = ".ivfdata"
CRC_CHUNK = 8 << 20  # bytes read at a time when checking a data file
# vectors encoded per FAISS call: PQ with ≥ 16 dimensions per sub-quantiser encodes through distance tables of
# m · 256 floats per vector (16 KB at m = 16: 1 GB for a 65 536-row chunk); 16 384 rows keep that ≤ 256 MB
ADD_ROWS = 16_384


def data_path(index_dir: Path, space: str, generation: int) -> Path:
    """``<index>/<space>.<generation>.ivfdata``."""
    return index_dir / f"{space}.{generation}{DATA_SUFFIX}"


def temporary(index_dir: Path, space: str, generation: int, what: str) -> Path:
    """``<index>/.<space>.<generation>.<what>.tmp``: a writer's own file, which ``generations.remove_stale_files``
    sweeps (a shard, a data file being merged) when a kill left it behind."""
    return index_dir / f".{space}.{generation}.{what}.tmp"


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to ``/dev/null`` meanwhile: FAISS ``printf``s ``resizing <file> to <n> bytes``
    whenever it sizes a data file, and a command's stdout may be JSON. C's buffer is flushed before fd 1 is
    restored, so the line is not written later."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (a daemon): nothing to keep clean
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    fflush = libc_function("fflush")
    try:
        os.dup2(null, 1)
        yield
    finally:
        if fflush is not None:
            fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def is_on_disk(index: Any) -> bool:
    """True when ``index``'s inverted lists are an ``OnDiskInvertedLists`` (mapped or not)."""
    import faiss

    return isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists),
                      faiss.OnDiskInvertedLists)


def empty_copy(index: Any) -> Any:
    """A trained, empty copy of the compressed ``index`` (same OPQ, coarse quantiser and codebooks; empty
    in-memory lists). Its lists are not copied when they are on disk (only their directory is serialised)."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    flags = faiss.IO_FLAG_SKIP_IVF_DATA if is_on_disk(index) else 0
    copy = faiss.deserialize_index(faiss.serialize_index(index), flags)
    _set_lists(copy, faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size))
    return copy


def _set_lists(index: Any, lists: Any) -> None:
    """Make ``lists`` (owned from now on by ``index``) the inverted lists of ``index``; ntotal follows."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    ivf.replace_invlists(lists, True)
    lists.this.disown()
    index.ntotal = ivf.ntotal = lists.compute_ntotal()


def write_shards(empty: Any, chunks: Iterable[tuple[np.ndarray, np.ndarray]], shard_file: Callable[[int], Path],
                 shard_vectors: int) -> tuple[list[Path], int]:
    """Encode ``chunks`` of ``(ids (n,) int64, vectors (n, D) float32)`` into copies of the trained, empty
    ``empty``, each written to ``shard_file(i)`` once it holds ≥ ``shard_vectors`` vectors (and the last one)
    and freed: returns ``(shard files, highest id added (0: none))``. One shard is in memory at a time."""
    max_id = 0
    set_add_beam(empty)  # a loaded index carries a reader's wider HNSW beam: adding needs FAISS's

    def fills() -> Iterator[Callable[[Any], int]]:
        nonlocal max_id
        for ids, vecs in chunks:
            if not len(ids):
                continue
            max_id = max(max_id, int(ids.max()))

            def fill(shard: Any, ids: np.ndarray = ids, vecs: np.ndarray = vecs) -> int:
                for lo in range(0, len(ids), ADD_ROWS):  # FAISS's encoding scratch grows with the rows per call
                    shard.add_with_ids(np.ascontiguousarray(vecs[lo : lo + ADD_ROWS], np.float32),
                                       np.ascontiguousarray(ids[lo : lo + ADD_ROWS], np.int64))
                return len(ids)

            yield fill

    paths = _cut_shards(empty, fills(), shard_file, shard_vectors)
    return paths, max_id


def build_sharded(trained: Any, chunks: Iterable[tuple[np.ndarray, np.ndarray]], data_tmp: Path,
                  shard_file: Callable[[int], Path], shard_vectors: int) -> tuple[Any, int]:
    """Fill the trained, empty compressed ``trained`` from ``chunks`` (see :func:`write_shards`) through shards
    merged by ``merge_ondisk`` into the data file ``data_tmp``: returns ``(trained, now holding every vector
    in on-disk lists mapped read-write, highest id)``. The shard files are deleted on return."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    paths, max_id = write_shards(trained, chunks, shard_file, shard_vectors)
    try:
        ivf = faiss.extract_index_ivf(trained)
        check_room(data_tmp, sum(faiss.read_index(str(p), faiss.IO_FLAG_MMAP).ntotal for p in paths), ivf.code_size)
        if paths:
            with quiet_stdout():
                merge_ondisk(trained, [str(p) for p in paths], str(data_tmp))
        else:
            merge_lists(trained, [], data_tmp)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    return trained, max_id


def merge_lists(empty: Any, lists: list[Any], data_tmp: Path) -> Any:
    """``merge_ondisk``'s steps for inverted lists already open: every list of ``lists`` (each ``nlist`` lists
    of ``empty``'s code size; a published, read-only mapped one among them) copied, in that order, into a new
    ``OnDiskInvertedLists`` in ``data_tmp``, which becomes ``empty``'s lists. Returns ``empty``."""
    import faiss

    ivf = faiss.extract_index_ivf(empty)
    out = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(data_tmp))
    vec = faiss.InvertedListsPtrVector()
    for il in lists:
        vec.push_back(il)
    entries = sum(il.compute_ntotal() for il in lists)
    check_room(data_tmp, entries, ivf.code_size)
    if entries:
        with quiet_stdout():
            out.merge_from_multiple(vec.data(), vec.size(), False)
    else:  # nothing to copy (FAISS cannot size a file to 0 bytes): an empty data file, never mapped
        data_tmp.write_bytes(b"")
    _set_lists(empty, out)
    return empty


def live_shards(current: Any, gone: np.ndarray, empty: Any, shard_file: Callable[[int], Path],
                shard_vectors: int) -> list[Path]:
    """``current``'s entries whose ids are not in ``gone (g,) int64``, their codes copied as they are, cut into
    shard files of whole lists (≥ ``shard_vectors`` entries each, the last one fewer) holding copies of the
    trained, empty ``empty``: the published lists without the deleted windows, in list order, in order within
    each list. One shard is in memory at a time. (Removing ids from a merged ``OnDiskInvertedLists`` in place
    is not safe: a list that shrinks below half its capacity is moved to a slot the merge never recorded as
    taken, over another list.)"""
    import faiss

    inv = faiss.extract_index_ivf(current).invlists
    code_size = inv.code_size

    def fills() -> Iterator[Callable[[Any], int]]:
        for j in range(inv.nlist):
            n = inv.list_size(j)
            if not n:
                continue
            ids = faiss.rev_swig_ptr(inv.get_ids(j), n)
            keep = ~np.isin(ids, gone, assume_unique=True)
            if not keep.any():
                continue
            codes = faiss.rev_swig_ptr(inv.get_codes(j), n * code_size).reshape(n, code_size)
            kept_ids, kept_codes = np.ascontiguousarray(ids[keep]), np.ascontiguousarray(codes[keep])

            def fill(shard: Any, j: int = j, kept_ids: np.ndarray = kept_ids,
                     kept_codes: np.ndarray = kept_codes) -> int:
                lists = faiss.extract_index_ivf(shard).invlists
                lists.add_entries(j, len(kept_ids), faiss.swig_ptr(kept_ids), faiss.swig_ptr(kept_codes))
                return len(kept_ids)

            yield fill

    return _cut_shards(empty, fills(), shard_file, shard_vectors)


def _cut_shards(empty: Any, fills: Iterable[Callable[[Any], int]], shard_file: Callable[[int], Path],
                shard_vectors: int) -> list[Path]:
    """Run each ``fill(shard) -> entries added`` on the shard in memory (a copy of the trained, empty ``empty``,
    made when needed); a shard holding ≥ ``shard_vectors`` entries, and the last one, is written to
    ``shard_file(i)`` and freed. On any error the shard files written so far are removed."""
    paths: list[Path] = []
    shard: Any = None
    held = 0
    try:
        for fill in fills:
            if shard is None:
                shard = empty_copy(empty)
            held += fill(shard)
            if held >= shard_vectors:
                paths.append(_write_shard(shard, shard_file(len(paths))))
                shard, held = None, 0
        if shard is not None:
            paths.append(_write_shard(shard, shard_file(len(paths))))
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths


def _write_shard(shard: Any, path: Path) -> Path:
    """Write ``shard`` (its ntotal set from its lists) to ``path``; returns ``path``."""
    import faiss

    ivf = faiss.extract_index_ivf(shard)
    shard.ntotal = ivf.ntotal = ivf.invlists.compute_ntotal()
    write_plain(shard, path)
    return path


def check_room(data_tmp: Path, entries: int, code_size: int) -> None:
    """StorageError unless ``data_tmp``'s disk has room for ``entries`` codes and ids: FAISS sizes the file
    with ``truncate`` and fills it through a mapping, where a full disk is a SIGBUS, not an error."""
    need = entries * (code_size + 8)
    free = shutil.disk_usage(data_tmp.parent).free
    if need > free:
        raise StorageError(f"cannot merge the index into {data_tmp.parent}: it needs {need / 1e6:.0f} MB,"
                           f" {free / 1e6:.0f} MB are free; the published index is unchanged"
                           " (free some space, then run `dgsearch index` again)")


def extend(current: Any, chunks: Iterable[tuple[np.ndarray, np.ndarray]], gone: np.ndarray, data_tmp: Path,
           shard_file: Callable[[int], Path], shard_vectors: int) -> tuple[Any, int]:
    """A new index: ``current``'s lists (left untouched) without ``gone (g,) int64``, then shards of ``chunks``,
    merged into ``data_tmp``. Returns ``(index, highest id added (0: none))``. Without deletions the published
    lists are merged from where they lie; with some, their live entries are first copied into shards
    (:func:`live_shards`). Nothing is encoded again."""
    import faiss

    empty = empty_copy(current)
    paths: list[Path] = []
    try:
        if len(gone):
            paths = live_shards(current, np.sort(np.asarray(gone, np.int64)), empty, shard_file, shard_vectors)
        new, max_id = write_shards(empty, chunks, lambda i: shard_file(len(paths) + i), shard_vectors)
        paths += new
        shards = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP) for p in paths]  # mapped, not loaded
        lists = [] if len(gone) else [faiss.extract_index_ivf(current).invlists]
        lists += [faiss.extract_index_ivf(s).invlists for s in shards]
        index = merge_lists(empty, lists, data_tmp)
        del lists, shards
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    return index, max_id


def seal(index: Any, data_tmp: Path, final: Path) -> tuple[int, int]:
    """Make ``data_tmp`` (the data file ``index`` was merged into) durable and move it to ``final``; ``index``'s
    list directory then names it by base name (write the ``.faiss`` file after this). Returns ``(size,
    CRC-32)`` of the data file. Pages written through FAISS's shared mapping are in the page cache, which
    ``fsync`` writes out."""
    import faiss

    od = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    try:
        with open(data_tmp, "rb") as fh:
            os.fsync(fh.fileno())
            size, crc = _size_crc(fh)
        os.replace(data_tmp, final)
    except BaseException:
        data_tmp.unlink(missing_ok=True)
        raise
    fsync_folder(final.parent)
    od.filename = final.name
    return size, crc


def map_data(index: Any, path: Path, size: int | None, crc32: int | None) -> None:
    """Map ``path``, read-only, as the lists of ``index`` (read with ``IO_FLAG_MMAP``: its on-disk lists not yet
    mapped). ValueError when ``index`` has no on-disk lists, or the file's size or CRC-32 differs from the
    record (``None`` skips a check) or from the size the lists' directory gives; OSError when it is missing."""
    import faiss

    od = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    if not isinstance(od, faiss.OnDiskInvertedLists):
        raise ValueError("the record names a data file but the index holds its lists in memory")
    with open(path, "rb") as fh:
        found, crc = _size_crc(fh)
    if found != od.totsize or (size is not None and found != size):
        raise ValueError(f"data file {path.name}: size {found} != recorded {size}")
    if crc32 is not None and crc != crc32:
        raise ValueError(f"data file {path.name}: CRC-32 {crc:08x} != recorded {crc32:08x}: damaged or altered")
    od.read_only = True
    od.filename = str(path)
    if found:
        od.do_mmap()


def _size_crc(fh: Any) -> tuple[int, int]:
    """``(bytes, CRC-32)`` of an open binary file read from its start, :data:`CRC_CHUNK` bytes at a time."""
    fh.seek(0)
    crc = size = 0
    while chunk := fh.read(CRC_CHUNK):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    return size, crc
