"""A window onto part of a file, read as a file of its own: what libsndfile is given for one link of a chained Ogg
(``media/ogg_links.py``) or for the samples of a WAV longer than its header says (``media/wav_oversized.py``)."""

from __future__ import annotations

import io
from pathlib import Path


class ByteRange(io.RawIOBase):
    """A read-only, seekable view of bytes ``[start, end)`` of a file, as a file of its own (offset 0 is
    ``start``): what libsndfile is given for one link of a chained Ogg."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._start, self._size, self._pos = start, end - start, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = max(0, min(len(buffer), self._size - self._pos))
        if not want:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(memoryview(buffer)[:want])
        self._pos += got
        return got

    def close(self) -> None:
        self._fh.close()
        super().close()
