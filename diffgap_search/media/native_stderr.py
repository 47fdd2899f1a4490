"""libmpg123's notes kept off the terminal: what native code writes to file descriptor 2 while libsndfile opens or
reads an MPEG file is caught, libmpg123's own lines are dropped and anything else is written on as it came.

libsndfile decodes MP3 through libmpg123, which prints to the process's stderr whenever a stream is not clean
("Note: Illegal Audio-MPEG-Header 0x00000000 at offset 6.", "Note: Trying to resync...", "[src/libmpg123/parse.c:
wetwork():1349] error: Giving up resync after 1024 bytes", "Warning: Xing stream size off by more than 1%"), and
libsndfile offers no way to quiet it. Those lines landed in the middle of `dgsearch index`'s progress bar for a
damaged MP3 that is then indexed anyway (``media/audio.py`` decodes around the damage) or failed with its own
one-line reason: noise, and an "error:" for a file that was fine.

File descriptor 2 is the process's, so one lock serialises the sections (a server decoding two uploads at once
takes turns for these calls only); another thread's own stderr output during a section is written on when it
ends, never lost. Sections nest within a thread.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

_LOCK = threading.RLock()
_CHATTER = (b"Note: ", b"Warning: ", b"[src/libmpg123/")  # how libmpg123's messages begin
_state: dict[str, int] = {"depth": 0}
_catch: list[IO[bytes]] = []  # one file per process, emptied before each section


@contextmanager
def mpg123_quiet() -> Iterator[None]:
    """While inside: file descriptor 2 goes to a private file; on leaving it is restored, libmpg123's lines are
    dropped and every other line is written to it."""
    with _LOCK:
        if _state["depth"]:
            _state["depth"] += 1
            try:
                yield
            finally:
                _state["depth"] -= 1
            return
        try:
            sys.stderr.flush()  # Python's own buffered text goes where it was meant to, before the switch
        except (OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (closed by whoever started us): nothing to keep quiet
            yield
            return
        if not _catch:
            _catch.append(tempfile.TemporaryFile())
        catch = _catch[0].fileno()
        os.ftruncate(catch, 0)
        os.lseek(catch, 0, os.SEEK_SET)
        os.dup2(catch, 2)
        _state["depth"] = 1
        try:
            yield
        finally:
            _state["depth"] = 0
            os.dup2(saved, 2)
            os.close(saved)
            size = os.fstat(catch).st_size
            if size:
                text = os.pread(catch, size, 0)
                kept = b"".join(line for line in text.splitlines(keepends=True) if not line.startswith(_CHATTER))
                if kept:
                    os.write(2, kept)
