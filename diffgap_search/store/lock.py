"""The writer lock of an index: one ``dgsearch index``/``train`` at a time; readers take no lock.

An advisory ``flock`` on ``<index>/.writer.lock``: released by the kernel when the process dies, so a
killed indexer never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from diffgap_search.errors import IndexBusyError

LOCK_NAME = ".writer.lock"


@contextmanager
def writer_lock(index_dir: Path, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the index's writer lock; wait up to ``wait_s`` seconds, then raise IndexBusyError."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                    raise IndexBusyError(
                        f"index {index_dir} is busy: another dgsearch process (pid {holder}) is writing to it;"
                        " wait for it to finish or pass --wait SECONDS"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
