"""An indexing process's heap: freed memory kept for reuse, and memory still bounded however many files.

Measured on the full-size CLAP in bf16, 2 cores of an AMX Xeon, 240 clips = 581 windows (2026-12-05):

- **Page faults were a fifth of the encoder's CPU.** glibc's malloc serves blocks above its mmap threshold
  (at most 32 MiB) with a fresh ``mmap`` and unmaps them when freed; torch's large activations are such
  blocks, so every batch faulted them in afresh: the encoder alone on 96 pre-decoded windows took 1.0-1.2 M
  minor faults and 1.6-1.9 s of kernel time out of 8.7 CPU-s. And after each committed batch ``malloc_trim(0)``
  handed every free heap page back, to be faulted in again by the next batch: 5.0-5.6 M faults and 9-10 s of
  kernel time in a 31 s run. :func:`keep_freed_memory` makes malloc take large blocks from its heap
  (``M_MMAP_MAX = 0``) and keep what is freed there (``M_TRIM_THRESHOLD`` 1 GiB), so each batch reuses the
  last one's pages: the encoder alone 4.25-4.49 -> 3.11-3.29 s, the run in process 30.3-30.8 -> 25.6-27.0 s
  (``benchmarks/bench_heap.py``, ``results/heap-amx-xeon-20261205.md``), the vectors bit-identical (the same arithmetic at other addresses).
- **The price is memory.** The heap keeps its working set: peak RSS of that run 1.22-1.26 -> 1.35-1.39 GB, and the
  resident size between batches settles near 1.65 GB where trimming after every batch brought it back to
  1.05-1.2 GB. Capping the mmap threshold at 32 or 8 MiB instead kept less (1.30-1.41 / 1.24 GB peak) but
  saved less or lost (28.6-29.1 / 33.8-34.3 s).
- **Still bounded.** Files differ in length, so a heap that is never trimmed fragments (peak RSS 1.24 -> 1.88
  GB from 20 to 200 clips with no trim at all). :class:`HeapGuard` trims only when anonymous resident memory
  (the heap's: not mapped files' or shared memory's) has grown more than ``GROWTH_ALLOWED`` past the working
  set: that size after the run's first batch, measured
  again one batch after each trim. The first batch's size alone was too low a mark (the decode prefetch and the
  heap's spread grow over the first batches): a guard that kept it trimmed 5-16 times in 35 batches of the run
  above, each trim faulting the next batch's activations in afresh; measuring again after a trim, 1-3 times,
  0.40-0.59 M faults instead of 0.95-2.15 M, 24.8 s instead of 26.4 (medians of 3), the same peak RSS
  (``results/heap-rebase-amx-xeon-20261205.md``). Where ``keep_freed_memory`` cannot apply (a malloc that is not
  glibc's) the guard trims after every batch, as runs always did.

These are process-wide settings, for the rest of the process: an indexing run (``run_index``), its decode
workers (``decode.decode_task``: 3.6 -> 3.0 CPU-s of decoding for those 240 clips, 296 k -> 15 k faults) and
the Ray engine's embedding actors and decode tasks apply them; a program that indexes once and then needs its heap back can
call :func:`release_free_memory`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from diffgap_search.libc import libc_function

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
KEPT_TOP_BYTES = 1 << 30  # free memory at the heap's top kept rather than returned (1 GiB)
GROWTH_ALLOWED = 0.10  # resident memory may grow this share past the first batch's before the guard trims

_kept = False


def release_free_memory() -> bool:
    """Return freed heap memory to the system (glibc ``malloc_trim``); False where malloc is not glibc's."""
    trim = libc_function("malloc_trim")
    return trim is not None and bool(trim(0))


def keep_freed_memory() -> bool:
    """From now on, for the whole process: large blocks from malloc's heap instead of ``mmap``, and freed
    memory kept for reuse instead of returned at once. True if applied (now or before), False where malloc is
    not glibc's (nothing changes)."""
    global _kept
    if not _kept:
        mallopt = libc_function("mallopt")
        _kept = mallopt is not None and bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_TOP_BYTES))
    return _kept


def anonymous_resident_bytes() -> int | None:
    """This process's anonymous resident memory in bytes (``/proc/self/statm``: resident minus shared pages),
    where its heap lives; None where there is no such file. Not the whole resident set: the pages of mapped
    files (libraries, weights) and of shared memory come and go without the heap, e.g. a Ray actor's input
    blocks mapped from the object store, which made the guard trim 5 times instead of once in 50 batches."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            fields = fh.read().split()
            return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapGuard:
    """Called after each committed batch: trims the heap when it has grown past its working set.

    The working set is the resident size after the run's first batch, and after the first batch that follows
    each trim (a freshly trimmed heap holds what a batch needs, not what fragments left). ``keep``: whether
    :func:`keep_freed_memory` applies (False: trim after every batch, the behaviour without it). ``growth``: the
    share resident memory may grow past the working set. ``rss``: the reader of resident bytes
    (:func:`anonymous_resident_bytes`; None from it means "unknown": trim)."""

    def __init__(self, keep: bool, growth: float = GROWTH_ALLOWED,
                 rss: Callable[[], int | None] = anonymous_resident_bytes) -> None:
        self.keep, self.growth, self._rss = keep, growth, rss
        self.limit: int | None = None  # bytes; set after the first batch, and again after the one after a trim
        self.trims = 0

    def after_batch(self) -> bool:
        """Trim if due; returns whether it trimmed."""
        now = self._rss() if self.keep else None
        if now is not None and self.limit is None:
            self.limit = int(now * (1.0 + self.growth))
            return False
        if now is not None and self.limit is not None and now <= self.limit:
            return False
        self.trims += 1
        release_free_memory()
        self.limit = None  # the next batch measures the working set again
        return True
