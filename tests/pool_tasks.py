"""Task functions for ``test_decode_pool.py``, in their own light module so spawned workers import it fast.

``task(i)`` returns ``i * 10`` after ``SLEEP[i]`` seconds, except for the items in ``FAULTS``: those kill
their worker with SIGSEGV, SIGABRT or ``_exit(3)``, hang in native code holding the GIL, or raise.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

FAULTS = {3: "segv", 5: "abort", 7: "exit", 9: "hang", 11: "raise"}


def task(i: int) -> int:
    """``i * 10``, or the fault ``FAULTS[i]``."""
    action = FAULTS.get(i)
    if action == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "abort":
        os.abort()
    elif action == "exit":
        os._exit(3)
    elif action == "hang":
        while True:
            ctypes.PyDLL(None).sleep(3600)
    elif action == "raise":
        raise ValueError(f"a bug in the task for item {i}")
    return i * 10


def slow(i: int) -> tuple[int, int]:
    """``(i, pid)`` after 0.4 s, except item 1, which segfaults after 0.1 s (while the others are busy)."""
    if i == 1:
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(0.4)
    return i, os.getpid()


def lost(i: int, reason: str) -> str:
    return f"{i}: {reason}"


def windows(i: int) -> dict:
    """Item ``i``'s result holding large arrays (``i + 1`` windows of 480,000 float32 samples, seeded by ``i``: the
    size of a 10 s window at 48 kHz), a small one and plain values, as a decoded file holds."""
    import numpy as np

    rng = np.random.default_rng(i)
    return {"i": i, "windows": [rng.standard_normal(480_000).astype(np.float32) for _ in range(i + 1)],
            "seconds": np.arange(i + 1, dtype=np.float64), "frames": rng.integers(0, 255, (2, 64, 64, 3), np.uint8)}
