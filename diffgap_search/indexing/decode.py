"""Decoding files into windows, in worker processes overlapped with encoding.

``decode_file`` is what a worker runs: it never raises for a bad file, it returns the reason. A file with
more windows than ``max_windows`` comes back as ``too_long`` and is streamed by the caller in bounded
memory instead (see ``stream_windows``), so a one-hour recording never sits whole in a queue.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from diffgap_search.config import WindowConfig
from diffgap_search.errors import MediaDecodeError
from diffgap_search.media.windows import AudioWindow, Windows, iter_windows

BLOCK_SECONDS = 30.0


@dataclass(frozen=True)
class Decoded:
    """A decoded file: ``windows.samples`` ``(N, W) float32`` with start/end seconds, or an error."""

    path: Path
    windows: Windows | None
    duration_s: float
    error: str | None = None
    too_long: bool = False


def stream_windows(path: Path, kind: str, cfg: WindowConfig) -> Iterator[AudioWindow]:
    """The windows of ``path``'s audio (a video's soundtrack), streamed in bounded memory.

    Raises MediaDecodeError with a one-line reason for an undecodable file.
    """
    from diffgap_search.media.audio import iter_audio_blocks

    return iter_windows(iter_audio_blocks(path, cfg.sample_rate, BLOCK_SECONDS), cfg)


def decode_file(path: Path, kind: str, cfg: WindowConfig, max_windows: int) -> Decoded:
    """Decode and window one file; never raises for bad media (the reason is in ``error``)."""
    try:
        collected: list[AudioWindow] = []
        for window in stream_windows(path, kind, cfg):
            collected.append(window)
            if len(collected) > max_windows:
                return Decoded(path, None, 0.0, too_long=True)
        if not collected:
            return Decoded(path, None, 0.0, error="no audio samples")
        windows = Windows(
            samples=np.stack([w.samples for w in collected]).astype(np.float32, copy=False),
            starts=np.array([w.start_s for w in collected], dtype=np.float64),
            ends=np.array([w.end_s for w in collected], dtype=np.float64),
        )
        return Decoded(path, windows, float(windows.ends[-1]))
    except MediaDecodeError as exc:
        return Decoded(path, None, 0.0, error=getattr(exc, "reason", str(exc)))
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        return Decoded(path, None, 0.0, error=f"{type(exc).__name__}: {exc}".splitlines()[0])


T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int = 4) -> Iterator[R]:
    """``map(fn, items)`` in order, run in ``workers`` spawned processes with at most ``ahead`` per worker
    in flight (bounded memory); inline when ``workers`` is 0."""
    if workers <= 0:
        yield from map(fn, items)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork after torch/OpenMP threads exist
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers * ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
