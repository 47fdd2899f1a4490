"""Reading and writing one FAISS file: a CRC-32 computed while the bytes pass, errors that say why.

``read_checked`` verifies a published file as FAISS reads it (no second pass over it); ``write_atomic`` writes a
new generation's file through a temporary one (``atomic_files.replacing``) so a kill leaves no short file under a
published name. Both go through Python file objects, so I/O errors surface as exceptions, not C prints.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

from diffgap_search.atomic_files import replacing
from diffgap_search.errors import StorageError


def read_checked(path: Path, crc32: int | None, size: int | None = None, io_flags: int = 0) -> Any:
    """``faiss.read_index`` of ``path`` in one pass that also computes the file's CRC-32; ValueError when the
    opened file's size differs from ``size``, or its CRC-32 from ``crc32`` (or bytes follow the index).
    ``None`` skips a check. Once open, the file is read whole even if a writer unlinks it meanwhile.
    ``io_flags``: faiss's read flags (``IO_FLAG_MMAP | IO_FLAG_READ_ONLY`` for a file whose inverted lists are
    on disk: ``ondisk_index.map_data`` then maps them)."""
    import faiss

    crc = 0
    with open(path, "rb") as fh:
        found = os.fstat(fh.fileno()).st_size
        if size is not None and found != size:
            raise ValueError(f"size {found} != recorded {size}")

        def read(n: int) -> bytes:
            nonlocal crc
            chunk = fh.read(n)
            crc = zlib.crc32(chunk, crc)
            return chunk

        reader = faiss.PyCallbackIOReader(read)
        index = faiss.read_index(reader, io_flags)
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

    crc = 0
    try:
        with replacing(path, durable=True) as tmp, open(tmp, "xb") as fh:

            def write(chunk: bytes) -> int:
                nonlocal crc
                crc = zlib.crc32(chunk, crc)
                return fh.write(chunk)

            writer = faiss.PyCallbackIOWriter(write)
            faiss.write_index(index, writer)
            del writer
            fh.flush()
            size = os.fstat(fh.fileno()).st_size
    except (OSError, RuntimeError) as exc:
        if not isinstance(exc, OSError) and type(exc) is not RuntimeError:
            raise  # a RecursionError, NotImplementedError…: a bug, not a write failure
        # faiss reports its I/O failures as a plain RuntimeError
        raise StorageError(
            f"cannot write the FAISS index {path}: {_io_reason(exc)}; the previous index is unchanged"
            " (free some space, then run `dgsearch index` again)"
        ) from exc
    return size, crc


def write_plain(index: Any, path: Path) -> int:
    """Write ``index`` to ``path`` (a writer's own temporary file: a shard) through a Python file, so a full
    disk raises StorageError instead of leaving a short file FAISS would later map; returns its size."""
    import faiss

    try:
        with open(path, "wb") as fh:
            writer = faiss.PyCallbackIOWriter(fh.write)
            faiss.write_index(index, writer)
            del writer
            fh.flush()
            return os.fstat(fh.fileno()).st_size
    except (OSError, RuntimeError) as exc:
        if not isinstance(exc, OSError) and type(exc) is not RuntimeError:
            raise
        path.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {_io_reason(exc)}; the published index is unchanged"
                           " (free some space, then run `dgsearch index` again)") from exc


def _io_reason(exc: BaseException) -> str:
    """One line saying why a write failed (``No space left on device``), from an OSError or faiss's text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split("failed: ", 1)[-1]
