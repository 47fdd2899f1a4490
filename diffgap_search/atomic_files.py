"""Replacing a file atomically: a reader sees the old file or the whole new one, never half of either.

One rule for every file the project writes in place (the FAISS files, the bridge checkpoint, the weights
copies, small JSON caches, exports, the web app's playback cache): write a temporary file beside the target
(same folder, so the rename stays on one file system), optionally fsync it, ``os.replace`` it onto the
target, and for a durable write fsync the folder too, so the rename itself survives a power cut. On any
failure the temporary file is removed and the exception propagates: callers translate ``OSError`` into
their own domain error, as each knows what the file was for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NAME_MAX = 255  # bytes in one file name: Linux's ext4, XFS, Btrfs; macOS's APFS and Windows' NTFS count 255 units


def temporary_beside(path: Path) -> Path:
    """A fresh name in ``path``'s folder, hidden and unique per process and thread: ``.NAME.PID.TID.tmp``, with
    NAME cut short where the whole would not fit a file name (:data:`NAME_MAX` bytes)."""
    tail = f".{os.getpid()}.{threading.get_ident()}.tmp"
    name = os.fsencode(path.name)[: NAME_MAX - 1 - len(tail)]
    return path.with_name(f".{os.fsdecode(name)}{tail}")


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX: fsync the directory itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: Path, *, durable: bool = False, tmp: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; when the block ends normally it replaces ``path``.

    ``tmp``: the temporary name (default :func:`temporary_beside`); it must be in ``path``'s folder.
    ``durable``: fsync the written file before the rename and the folder after it, so once the block has
    exited, ``path`` holds the new bytes even after a crash. The temporary file is removed if the block or
    the replacement raises (any exception, ``KeyboardInterrupt`` included).
    """
    path = Path(path)
    tmp = temporary_beside(path) if tmp is None else Path(tmp)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)


def write_bytes(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`replacing`)."""
    with replacing(path, durable=durable) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically (see :func:`replacing`)."""
    write_bytes(path, text.encode("utf-8"), durable=durable)
