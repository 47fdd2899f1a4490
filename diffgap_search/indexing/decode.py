"""Decoding files into windows (soundtrack samples and video frames), in worker processes overlapped
with encoding.

``decode_file`` is what a worker runs: it never raises for a bad file, it returns the reason. A file with
more windows than ``max_windows`` comes back as ``too_long`` and is streamed by the caller in bounded
memory instead (``iter_segments``), so a one-hour recording never sits whole in a queue.

A video's segments are its soundtrack's windows (same start/end seconds), each with that window's frames;
a video without a soundtrack has frame-only segments cut from the video's own duration.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import TypeVar

import numpy as np

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.errors import MediaDecodeError

BLOCK_SECONDS = 30.0


@dataclass(frozen=True)
class SegmentData:
    """One window: ``audio`` ``(W,) float32`` (None for a silent video), ``frames`` ``(F, S, S, 3) uint8``
    (None for audio files, or when frames are off)."""

    start_s: float
    end_s: float
    audio: np.ndarray | None
    frames: np.ndarray | None


@dataclass(frozen=True)
class Decoded:
    """A decoded file's segments (in order), or an error, or ``too_long`` (stream it instead)."""

    path: Path
    segments: list[SegmentData]
    has_audio: bool = True
    error: str | None = None
    too_long: bool = False

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0


def iter_segments(path: Path, kind: str, cfg: WindowConfig, video: VideoConfig) -> tuple[bool, Iterator[SegmentData]]:
    """``(has_audio, segments)`` of ``path``, streamed in bounded memory.

    Raises MediaDecodeError with a one-line reason for an undecodable file (possibly while iterating).
    """
    from diffgap_search.media.audio import iter_audio_blocks
    from diffgap_search.media.windows import iter_windows

    if kind != "video":
        windows = iter_windows(iter_audio_blocks(path, cfg.sample_rate, BLOCK_SECONDS), cfg)
        return True, (SegmentData(w.start_s, w.end_s, w.samples, None) for w in windows)
    from diffgap_search.media.video import iter_frame_windows, probe_video

    info = probe_video(path)
    if not info.has_audio:
        if not video.frames:
            raise MediaDecodeError(f"{path}: a video without a soundtrack, and frames are off (--no-frames)")
        frames = iter_frame_windows(path, cfg, fps=video.fps, size=video.size)
        return False, (SegmentData(f.start_s, f.end_s, None, f.frames) for f in frames)
    audio = iter_windows(iter_audio_blocks(path, cfg.sample_rate, BLOCK_SECONDS), cfg)
    if not video.frames:
        return True, (SegmentData(w.start_s, w.end_s, w.samples, None) for w in audio)
    # Frame windows are cut from the video's duration, audio windows from the decoded soundtrack; when the
    # two streams differ in length by a window edge, the audio's seconds are the truth and a segment may
    # lack frames (or extra frame windows are dropped).
    frames = iter_frame_windows(path, cfg, fps=video.fps, size=video.size)
    pairs = zip_longest(audio, frames)
    return True, (SegmentData(a.start_s, a.end_s, a.samples, f.frames if f is not None else None)
                  for a, f in pairs if a is not None)


def decode_file(path: Path, kind: str, cfg: WindowConfig, video: VideoConfig, max_windows: int) -> Decoded:
    """Decode and window one file; never raises for bad media (the reason is in ``error``)."""
    try:
        has_audio, segments = iter_segments(path, kind, cfg, video)
        collected: list[SegmentData] = []
        for seg in segments:
            collected.append(seg)
            if len(collected) > max_windows:
                return Decoded(path, [], has_audio, too_long=True)
        if not collected:
            return Decoded(path, [], has_audio, error="no audio samples")
        return Decoded(path, collected, has_audio)
    except MediaDecodeError as exc:
        return Decoded(path, [], error=getattr(exc, "reason", None) or _strip_path(str(exc), path))
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        return Decoded(path, [], error=f"{type(exc).__name__}: {exc}".splitlines()[0])


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int = 3) -> Iterator[R]:
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
