"""Which FAISS generation files an index keeps, and when the writer may delete an old one.

A reader needs a generation's file from the moment it reads the catalog's record of a space
(``meta["faiss.<space>"]``) until it has read that file into memory; after that it searches its own copy
and never opens the file again. Readers and the writer agree through ``<index>/.readers.lock``, an
advisory ``flock``:

- **Readers** hold it shared (:func:`reading`) from before they read the record until the file is read.
  They never wait: when the writer holds it exclusively at that instant, the reader goes on without it.
  That is safe, because the writer takes it only after its new record has committed, so such a reader
  reads that record, and the writer keeps that generation.
- **The writer**, after the catalog transaction that moved a space's generation has committed (durably),
  deletes the space's other generations only while it holds the lock exclusively
  (:func:`remove_stale_files`), taken without blocking and retried for at most ``wait_s`` seconds. While
  it holds it, no reader is between a record and its file, and any reader that reads a record from then
  on reads the committed one, which is kept. When the lock cannot be had (a reader is loading a large
  index), the old files stay; the next publish of that space and the sweep at the end of every
  ``dgsearch index`` run (:func:`sweep_unpublished`) try again.
- **Crash safety**: the kernel releases a ``flock`` when its holder dies, so a reader killed while
  holding the lock blocks no deletion after its death; files a killed writer left behind (an old
  generation, a temporary file) are removed by the next run's sweep.

A reader can still miss its file: its SQLite read transaction began before the writer's commit (a
connection kept inside an explicit ``BEGIN`` is shown the old record after its file is gone), it read the
record while the writer was deleting and then slept through a whole further publish, or someone removed
the file. It then reads the record once more and, if that names no usable file either, searches exactly
(:func:`diffgap_search.store.vector_index.load_index`): a reader never trains or builds an ANN index.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from diffgap_search.store.catalog import Catalog

log = logging.getLogger(__name__)

READERS_LOCK = ".readers.lock"
DELETE_WAIT_S = 1.0  # how long a writer retries for the lock before leaving old files to the next run


@contextmanager
def reading(index_dir: Path) -> Iterator[bool]:
    """Hold the readers' lock (shared) while going from a catalog record to the file it names.

    Yields whether the lock is held: False when the writer is deleting old generations at this very
    instant (then the record now committed is the one it keeps) or when the folder is read-only and has
    no lock file (then no writer can delete anything either). Never blocks.
    """
    fd = _open_lock(index_dir)
    if fd is None:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        yield held
    finally:
        os.close(fd)  # releases the lock


def _open_lock(index_dir: Path) -> int | None:
    """A descriptor of the lock file (created when absent and the folder is writable), or None."""
    path = index_dir / READERS_LOCK
    for flags in (os.O_RDONLY | os.O_CREAT, os.O_RDONLY):
        try:
            return os.open(path, flags | os.O_CLOEXEC, 0o644)
        except OSError:
            continue
    return None


@contextmanager
def _exclusive(index_dir: Path, wait_s: float) -> Iterator[bool]:
    """Hold the readers' lock exclusively (retrying up to ``wait_s`` s); yields whether it is held."""
    try:
        fd = os.open(index_dir / READERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        log.warning("cannot open %s (%s): old FAISS generations are kept", index_dir / READERS_LOCK, exc)
        yield False
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    held = False
                    break
                time.sleep(0.01)
        yield held
    finally:
        os.close(fd)


def generation_files(index_dir: Path, space: str, suffix: str = ".faiss") -> dict[int, Path]:
    """Generation -> ``<space>.<generation><suffix>`` for every such file present (temporary files excluded):
    the FAISS files, or (``.ivfdata``) a compressed index's on-disk lists."""
    out: dict[int, Path] = {}
    for path in index_dir.glob(f"{space}.*{suffix}"):
        gen = path.name[len(space) + 1 : -len(suffix)]
        if gen.isdigit():
            out[int(gen)] = path
    return out


def remove_stale_files(index_dir: Path, space: str, keep: int, *, wait_s: float = DELETE_WAIT_S) -> bool:
    """Delete ``space``'s leftover temporary files, and its FAISS files of generations other than ``keep``
    once no reader can still need them (see the module docstring). Writer only, under the writer lock,
    after the record naming ``keep`` has committed.

    Returns True when no other generation is left, False when a reader held the lock for ``wait_s``
    seconds and the old files were kept for the next run.
    """
    for path in index_dir.glob(f".{space}.*.tmp"):  # only ever the writer's own: no reader opens them
        path.unlink(missing_ok=True)
    stale = [p for gen, p in sorted(generation_files(index_dir, space).items()) if gen != keep]
    stale += [p for gen, p in sorted(generation_files(index_dir, space, ".ivfdata").items()) if gen != keep]
    return remove_unread(index_dir, stale, wait_s=wait_s)


def remove_unread(index_dir: Path, paths: list[Path], *, wait_s: float = DELETE_WAIT_S) -> bool:
    """Delete ``paths`` (files no committed record names any more) while holding the readers' lock
    exclusively; False, deleting nothing, when a reader held it for ``wait_s`` seconds. Any file a reader
    opens after reading a record under :func:`reading` can be retired this way (old FAISS generations here;
    a replaced bridge checkpoint likewise)."""
    if not paths:
        return True
    with _exclusive(index_dir, wait_s) as held:
        if not held:
            log.info("a reader is opening an index file: %d old file(s) kept for the next run", len(paths))
            return False
        for path in paths:
            path.unlink(missing_ok=True)
    return True


def sweep_unpublished(index_dir: Path, catalog: Catalog, *, wait_s: float = DELETE_WAIT_S) -> bool:
    """Delete every FAISS file the catalog does not publish, and every bridge checkpoint it does not
    record, as :func:`remove_unread` allows (writer only, under the writer lock); True when none is left.

    A writer killed after the catalog moved a generation, but before it deleted the old file, leaves that
    file behind; a writer killed inside ``write_atomic`` leaves a temporary file; a reader loading a file
    may have kept an old generation from being deleted. The next run removes them here, even when it has
    nothing to publish.
    """
    done = True
    meta = catalog.all_meta()
    for key, record in meta.items():
        if key.startswith("faiss.") and isinstance(record, dict):
            done &= remove_stale_files(index_dir, key[len("faiss."):], keep=int(record["generation"]), wait_s=wait_s)
    bridge = meta.get("bridge")
    kept = bridge.get("file") if isinstance(bridge, dict) else None
    old_bridges = [p for p in index_dir.glob("bridge-*.safetensors") if p.name != kept]
    return remove_unread(index_dir, old_bridges, wait_s=wait_s) and done
