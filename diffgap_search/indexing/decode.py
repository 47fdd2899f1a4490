"""Decoding files into windows (soundtrack samples and video frames), in worker processes overlapped
with encoding (``indexing/pool.py`` runs ``decode_task`` there; a worker that crashes or hangs costs its
file only, recorded through ``lost_decode``).

``decode_file`` is what a worker runs: it never raises for a bad file, it returns the reason. A file with
more windows than ``max_windows`` comes back as ``too_long`` and is streamed by the caller in bounded
memory instead (``iter_segments``), so a one-hour recording never sits whole in a queue.

A video's segments are its soundtrack's windows (same start/end seconds), each with that window's frames;
a video without a soundtrack has frame-only segments cut from the video's own duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from diffgap_search.config import VideoConfig, WindowConfig, env_seconds
from diffgap_search.errors import MediaDecodeError
from diffgap_search.indexing.memory import keep_freed_memory
from diffgap_search.media.tags import FileTags, read_tags

BLOCK_SECONDS = 30.0
MAX_WINDOWS_PER_TASK = 32  # ~60 MB of 10 s windows at 48 kHz; longer files are streamed
DECODE_TIMEOUT_ENV = "DGSEARCH_DECODE_TIMEOUT"
DEFAULT_DECODE_TIMEOUT_S = 600.0


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
    tags: FileTags = FileTags()  # read by the worker that decoded the file (its embedded metadata)

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
    from diffgap_search.media.video import open_frames, probe_video, window_bounds

    if not video.frames:
        if not probe_video(path).has_audio:
            raise MediaDecodeError(f"{path}: a video without a soundtrack, and frames are off (--no-frames)")
        windows = iter_windows(iter_audio_blocks(path, cfg.sample_rate, BLOCK_SECONDS), cfg)
        return True, (SegmentData(w.start_s, w.end_s, w.samples, None) for w in windows)
    sampler = open_frames(path, fps=video.fps, size=video.size, fit=video.fit)
    if not sampler.info.has_audio:
        bounds = window_bounds(sampler.info.duration_s, cfg)
        return False, (SegmentData(s, e, None, sampler.window(s, e).frames) for s, e in bounds)
    # The soundtrack's windows are the truth (cut from its decoded samples); each gets the frames of its own
    # seconds, so audio and frames pair by start/end even when the two streams differ in length. A window
    # that starts after the last frame has no frames.
    audio = iter_windows(iter_audio_blocks(path, cfg.sample_rate, BLOCK_SECONDS), cfg)
    picture_end = sampler.info.duration_s
    return True, (SegmentData(a.start_s, a.end_s, a.samples,
                              sampler.window(a.start_s, a.end_s).frames if a.start_s < picture_end else None)
                  for a in audio)


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
        return Decoded(path, collected, has_audio, tags=_tags_of(path))
    except MediaDecodeError as exc:
        return Decoded(path, [], error=getattr(exc, "reason", None) or _strip_path(str(exc), path))
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        return Decoded(path, [], error=f"{type(exc).__name__}: {exc}".splitlines()[0])


def _tags_of(path: Path) -> FileTags:
    """The file's tags (``media/tags.py``), with the sample rate and channel count its decoder found in this
    process when it has decoded the stream (the truth where a container's header is vague: mutagen reports
    2 channels for a mono AAC stream whose header does not rule out implicit parametric stereo)."""
    tags = read_tags(path)
    from diffgap_search.media.audio_conditioning import stream_facts

    facts = stream_facts(path)
    if facts is None:
        return tags
    return replace(tags, sample_rate=facts[0], channels=facts[1])


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


DecodeArgs = tuple[Path, str, WindowConfig, VideoConfig, int]  # (path, kind, windows, video, max_windows)


def decode_task(args: DecodeArgs) -> Decoded:
    """What a decode worker runs for one file: ``decode_file(*args)``, its process keeping its freed heap
    (``indexing/memory.py``: each file's blocks reuse the last one's pages instead of faulting in new ones)."""
    keep_freed_memory()
    return decode_file(*args)


def stream_task(args: DecodeArgs) -> Iterator[tuple[bool, FileTags] | SegmentData]:
    """What a worker runs for a long file: ``(has_audio, tags)`` first, then the file's segments one by one."""
    path, kind, cfg, video, _ = args
    keep_freed_memory()
    has_audio, segments = iter_segments(path, kind, cfg, video)
    first = next(segments, None)  # the decoder has opened the stream: its rate and channels are known
    yield has_audio, _tags_of(path)
    if first is not None:
        yield first
    yield from segments


def stream_segments(
    args: DecodeArgs, workers: int, deadline_s: float | None
) -> tuple[bool, FileTags, Iterator[SegmentData]]:
    """``(has_audio, tags, segments)``: ``iter_segments`` of a long file and its tags, run in a worker process
    of its own unless ``workers`` is 0 (a crash or a hang then raises MediaDecodeError with the pool's
    reasons, see ``indexing/pool.py``). Close the iterator when done with it (that ends the worker)."""
    if workers <= 0:
        has_audio, segments = iter_segments(*args[:4])
        first = next(segments, None)
        return has_audio, _tags_of(args[0]), _closable(first, segments)
    from diffgap_search.indexing.pool import stream_in_worker

    stream = stream_in_worker(stream_task, args, deadline_s=deadline_s)
    try:
        has_audio, tags = next(stream)  # type: ignore[misc]
    except BaseException:
        stream.close()
        raise
    return bool(has_audio), tags, stream  # type: ignore[return-value]


def _closable(first: SegmentData | None, rest: Iterator[SegmentData]) -> Iterator[SegmentData]:
    """``first`` then ``rest``, as a generator (the runner closes a long file's stream when done with it; an
    ``itertools.chain`` has no ``close``)."""
    if first is not None:
        yield first
    yield from rest


def lost_decode(args: DecodeArgs, reason: str) -> Decoded:
    """The result of a file whose worker crashed or ran past its deadline (see ``indexing/pool.py``)."""
    return Decoded(args[0], [], error=reason)


def decode_timeout_s() -> float:
    """The per-file decode deadline in a worker: ``DGSEARCH_DECODE_TIMEOUT`` seconds, default 600.

    One task decodes at most ``max_windows + 1`` windows (about 5.5 minutes of media at the default
    windows; longer files are streamed), so 10 minutes is far past any healthy decoder. Raises
    UsageError for a value that is not a positive number.
    """
    return env_seconds(DECODE_TIMEOUT_ENV, DEFAULT_DECODE_TIMEOUT_S)
