"""An indexing run's bf16 audio tower on a CPU in two lanes: a call's windows split into an even number of
chunks of about ``LANE_WINDOWS`` (``lane_chunks``), each chunk run whole on one of two threads that own half of
torch's intra-op threads each,
instead of every operator of one batch split across all of them. Calls of fewer than ``LANES * LANE_WINDOWS``
windows keep one team, and only an indexing run asks for lanes (``index_in_lanes``): a query's few windows
keep their latency.

Why (a 2-core AMX Xeon, 2026-12-07, ``benchmarks/bench_lanes.py``, docs/benchmarks.md): while the encoder runs,
the run's decode worker and window receiver take about 3.5 CPU-s of the two cores. In one OpenMP team, whenever
one thread is preempted the other waits at the next operator's barrier: the encoder's calls took 4-5 s longer
than on the same windows decoded beforehand. Lanes meet only when a call's chunks are gathered: in process 7-15 %
less CPU in every round and 4 % less wall time (median of 16 alternated pairs, faster in 13). Alone on decoded
windows they tied in two runs of four, lost 7 % in one and won 6 % in one: only indexing asks for them.
The engine's calls hold 16-18 windows (whole files), and chunks of at most 4 left 17 or 18 windows in five
chunks, one lane working while the other waited (3.3 lane-s idle of 43.6 in a 581-window run): an even number of
chunks of about 4 (17 = 4 + 4 + 5 + 4) balances the lanes; one thread's time per window is flat from 3 to 6
windows a chunk (0.056-0.058 s, 2 and 8: 0.059-0.060). In process, alternated (``bench_lane_chunks.py``):
21.69 vs 22.59 s, the medians of 6 rounds (faster in 5, a tie in one).
Only the bf16 path takes lanes (the path measured; float32 and int8 keep one team, ONNX Runtime has its own
threads), and only with at least two torch threads.

The vectors are the same model's to within bf16's rounding: a chunk's products on one thread round as that
thread's kernels do, about 1e-3 apart per component from a team of two, as one batch size is from another
(``tests/test_clap_lanes.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

LANE_WINDOWS = 4  # about this many windows per chunk (16 windows = 2 chunks per lane)
LANES = 2


def lane_chunks(batch: np.ndarray) -> list[np.ndarray]:
    """``(N, S)`` windows -> ``LANES * max(1, round(N / (LANES * LANE_WINDOWS)))`` consecutive chunks of near-equal
    length, in order (views, not copies): every lane gets as many chunks, of about ``LANE_WINDOWS`` windows (17 ->
    4, 4, 5, 4; 8 -> 4, 4; 12 -> 3, 3, 3, 3; 21 -> 4, 3, 3, 4, 4, 3). ``N`` is at least ``LANES`` (fewer keep one
    team)."""
    n = len(batch)
    count = LANES * max(1, round(n / (LANES * LANE_WINDOWS)))
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [batch[lo:hi] for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


class Lanes:
    """``LANES`` threads with ``threads // LANES`` intra-op torch threads each (set once in each thread:
    OpenMP's thread count is per thread, so the caller's own count is untouched)."""

    def __init__(self, threads: int) -> None:
        self.per_lane = max(1, threads // LANES)
        self._pool = ThreadPoolExecutor(LANES, thread_name_prefix="dgsearch-lane",
                                        initializer=torch.set_num_threads, initargs=(self.per_lane,))

    def map(self, fn: Callable[[np.ndarray], np.ndarray], chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``fn`` of each chunk, in order (an exception in one is raised here)."""
        return list(self._pool.map(fn, chunks))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def lanes_for(device: torch.device, bf16: bool, threads: int) -> Lanes | None:
    """Lanes for an audio tower on ``device`` (``bf16``: its chosen path is bfloat16) with ``threads`` intra-op
    threads, or None where one team runs it (a GPU, another path, one thread)."""
    if device.type != "cpu" or not bf16 or threads < LANES:
        return None
    return Lanes(threads)


def index_in_lanes(encoder: Any) -> None:
    """Ask ``encoder`` (a ``ClapEncoder``) to run its long calls in lanes where ``lanes_for`` allows: now if its
    audio path is chosen, else when it is (``ClapEncoder._choose_audio_dtype``)."""
    encoder.lanes_wanted = True
    if encoder.audio_path is not None and encoder.lanes is None:
        encoder.lanes = lanes_for(encoder.device, encoder.audio_dtype == torch.bfloat16, torch.get_num_threads())
