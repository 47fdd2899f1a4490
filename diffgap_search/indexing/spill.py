"""A decode worker's result handed to the indexing process through a memory file instead of its pipe.

A decoded file's windows are large (a 10 s window at 48 kHz is a ``(480000,) float32`` array, 1.9 MB) and went
through the worker's socket pair inside the pickled result: the worker copied each array into the pickle, the
kernel copied it through the socket in chunks of its buffer, waking the reader for each, and the reader copied
it again out of the pickle. Here the worker writes each large array of its result into an anonymous memory file
(``memfd_create``) that the indexing process handed it, and sends the result through its pipe as before with a
placeholder (:class:`InFile`: the array's place, dtype and shape) in each array's stead; the indexing process
reads each array with one ``preadv`` into memory of its own. Nothing is unpickled that was not before: the
arrays' bytes are read as raw numbers. Measured moving 581 windows of 1.9 MB from a spawned process (2-core AMX
Xeon, CPU seconds of both processes, the spawn's own start included in each): 1.75 through the socket pair,
0.65 through such a file.

The file holds one result at a time: the pool gives a worker its next task only after the result before it
was read back (``pool._Worker.check``), so every result is written from offset 0 and the file keeps the size of
the largest (at most ``MAX_WINDOWS_PER_TASK + 1`` windows: 63 MB of 10 s windows, freed with the worker). No
name is created, so nothing is left behind however the processes end. Where the platform has no
``memfd_create`` (macOS), or the file cannot be made or written (memory exhausted), the result goes through
the pipe whole, as before.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_SPILL_BYTES = 64 * 1024  # smaller arrays (seconds, tags, frames of a short clip) stay in the pipe's message
_NUMERIC_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex: raw numbers, nothing else


@dataclass(frozen=True)
class InFile:
    """An array's stead in a spilled result: its C-ordered bytes at ``offset`` of the memory file."""

    offset: int
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Spilled:
    """A result whose large arrays are in the worker's memory file, each replaced by an :class:`InFile`."""

    result: Any


class SpillFd:
    """The memory file's descriptor as a worker's argument: pickled for a spawned process as a duplicate of the
    descriptor (how ``multiprocessing`` hands a ``Connection`` to its child)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        from multiprocessing.reduction import DupFd

        return _rebuild, (DupFd(self.fd),)


def _rebuild(dup: Any) -> SpillFd:
    return SpillFd(dup.detach())


def open_spill() -> SpillFd | None:
    """A new, empty memory file for one worker, or None where none can be made (the pipe is used instead)."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        return None
    try:
        return SpillFd(create("dgsearch-decoded", getattr(os, "MFD_CLOEXEC", 0)))
    except OSError:
        return None


def close_spill(spill: SpillFd | None) -> None:
    if spill is not None and spill.fd >= 0:
        os.close(spill.fd)
        spill.fd = -1


def spill(result: Any, into: SpillFd | None) -> Any:
    """In a worker: ``result`` as a :class:`Spilled` whose numeric arrays of ``MIN_SPILL_BYTES`` or more were
    written into ``into`` from offset 0, or ``result`` itself where it has none or the file cannot take them."""
    if into is None:
        return result
    end = [0]

    def write(leaf: Any) -> Any:
        if not (isinstance(leaf, np.ndarray) and leaf.nbytes >= MIN_SPILL_BYTES and leaf.dtype.kind in _NUMERIC_KINDS):
            return leaf
        a = np.ascontiguousarray(leaf)
        raw, done = memoryview(a).cast("B"), 0
        while done < a.nbytes:
            done += os.pwrite(into.fd, raw[done:], end[0] + done)
        placed = InFile(end[0], a.dtype.str, tuple(a.shape))
        end[0] += a.nbytes
        return placed

    try:
        swapped = _swap(result, write)
    except OSError:
        return result
    return Spilled(swapped) if end[0] else result


def unspill(message: Spilled, spill: SpillFd) -> Any:
    """In the indexing process: the result a worker spilled, each array read into fresh memory of this process."""

    def read(leaf: Any) -> Any:
        if not isinstance(leaf, InFile):
            return leaf
        a = np.empty(leaf.shape, np.dtype(leaf.dtype))  # not zeroed first: the read is its first touch
        raw, done = memoryview(a).cast("B"), 0
        while done < a.nbytes:
            n = os.preadv(spill.fd, [raw[done:]], leaf.offset + done)
            if n <= 0:
                raise OSError(f"the decode worker's memory file ended at byte {leaf.offset + done}")
            done += n
        return a

    return _swap(message.result, read)


def _swap(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """``obj`` with ``leaf`` applied to everything that is not a list, tuple, dict or dataclass instance (those are
    rebuilt around the results, a dataclass by ``dataclasses.replace``)."""
    if isinstance(obj, list):
        return [_swap(x, leaf) for x in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_swap(x, leaf) for x in obj)
    if isinstance(obj, dict):
        return {k: _swap(v, leaf) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and not isinstance(obj, (InFile, Spilled)):
        return dataclasses.replace(obj, **{f.name: _swap(getattr(obj, f.name), leaf)
                                           for f in dataclasses.fields(obj) if f.init})
    return leaf(obj)
