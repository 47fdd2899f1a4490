"""Keeping an indexing run's memory flat as the number of files grows.

Each decoded window (10 s at 48 kHz, 1.9 MB) arrives from a worker as a fresh array. glibc's malloc
raises its mmap threshold dynamically after such blocks are freed, so later ones come from the heap,
which fragments and never shrinks: peak RSS grew by 64 % from 20 to 200 clips. Pinning the threshold
at 1 MiB (``mallopt(M_MMAP_THRESHOLD)``, which also turns the dynamic adjustment off) returns every
large block to the system when freed: +0.9 % (benchmarks/bench_memory.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20

_done = False


def pin_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold for this process (once); False where malloc is not glibc's."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):
        return False
    return _done
