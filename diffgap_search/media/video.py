"""Video decoding: frames at a fixed rate, grouped into the soundtrack's windows, streamed window by window.

Frames come from decord (imported lazily). For each window only that window's frames are fetched
(``VideoReader.get_batch`` on the frame indices the window needs), so memory is bounded by one window
(``ceil(window_s * fps)`` frames of ``size x size x 3`` bytes), whatever the video's length; the only
per-video state is the frame timestamp table (two float64 per source frame).

Sampling rule (chosen here, tested to the frame):
    windows are the audio rule for duration ``d`` (the video's decodable duration unless the caller
    passes the soundtrack's): ``d <= window`` -> one window ``[0, d]``; else
    ``n = ceil((d - window) / hop) + 1`` windows, window ``i`` covers ``[s_i, s_i + window]`` with
    ``s_i = min(i*hop, d - window)`` (the last one ends at ``d``), evaluated in samples by
    ``media/windows.py``'s own ``window_spans`` (``window_bounds``). A soundtrack's windows get their
    frames by their own seconds (``FrameSampler.window``), so the two always pair by start/end.
    Inside ``[start, end]`` the sample times are the centres of ``1/fps`` slots,
    ``t_k = start + (k + 0.5) / fps`` for ``k = 0 .. F-1`` with ``F = max(1, ceil((end - start) * fps - 0.5))``
    (every ``t_k < end``). The frame sampled at ``t`` is the one on screen at ``t``: the last frame whose
    presentation timestamp is ``<= t`` (timestamps from ``get_frame_timestamp``, relative to the first
    frame), so variable-frame-rate files are sampled by time, not by index. Times past the last frame
    take the last frame.

Geometry: the short side is scaled to ``size`` and the long side centre-cropped, giving
``size x size`` frames (CLIP's own resize + centre crop, so the encoder's processor has nothing left to
resize at 224); ``fit="squash"`` (CAVP) decodes the native frame and resizes the whole of it to
``size x size`` with Pillow's bilinear filter, as Diff-Foley does (``video_geometry``); ``size=None`` keeps
the native displayed size. Rotation metadata is honoured (decord
applies it; see ``video_geometry`` for the quarter-turn workaround).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import WindowConfig
from diffgap_search.errors import MediaDecodeError
from diffgap_search.media.frame_times import FrameTimes, frame_times
from diffgap_search.media.ffmpeg_frames import FfmpegFrameSampler
from diffgap_search.media.video_types import FrameWindow, VideoInfo, sample_times
from diffgap_search.media.video_geometry import DecodePlan, finish_frames, plan_decode
from diffgap_search.media.discover import VIDEO_EXTENSIONS
from diffgap_search.media.video_probe import StreamsInfo, probe_streams
from diffgap_search.media.windows import window_spans

__all__ = [
    "DEFAULT_FPS",
    "VIDEO_EXTENSIONS",
    "FrameSampler",
    "FrameWindow",
    "VideoInfo",
    "iter_frame_windows",
    "open_frames",
    "probe_video",
    "sample_times",
    "window_bounds",
]

DEFAULT_FPS = 4.0
# A file whose decodable frames stop this much before the duration its container declares is truncated.
_TRUNCATION_SLACK_S = 1.0
_TRUNCATION_SLACK_FRACTION = 0.05
# Source frames decoded per decord call: bounds a window's native-size frames in memory (8 x 1080p RGB = 50 MB).
_DECODE_CHUNK = 8
# The frame rate that times a video none of whose frames has a timestamp and whose stream declares none.
_UNTIMED_FPS = 25.0


def window_bounds(duration_s: float, cfg: WindowConfig) -> list[tuple[float, float]]:
    """The audio stage's windows for a ``duration_s``-second clip, as ``(start_s, end_s)`` pairs.

    Evaluated exactly as ``media/windows.py`` does for audio: in samples at ``cfg.sample_rate``
    (``L = round(duration_s * sample_rate)``), then divided back into seconds, so the video windows of
    a clip equal its soundtrack's windows bit for bit. A clip shorter than one sample still gets one
    window ``[0, duration_s]``.
    """
    sr = cfg.sample_rate
    length = int(round(float(duration_s) * sr))
    spans = window_spans(length, cfg.window_samples, cfg.hop_samples)
    if not spans:
        return [(0.0, float(duration_s))]
    return [(begin / sr, end / sr) for begin, end in spans]


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open ``path`` and describe it; ``MediaDecodeError`` (one line) when it cannot be used."""
    return _open(Path(path), size=None)[0]


def iter_frame_windows(
    path: str | os.PathLike[str],
    cfg: WindowConfig,
    fps: float = DEFAULT_FPS,
    size: int | None = 224,
    duration_s: float | None = None,
    fit: str = "crop",
) -> Iterator[FrameWindow]:
    """Yield the frames of each window of ``path``, decoding one window at a time.

    Args:
        cfg: the windowing of the soundtrack (``window_s``, ``hop_s``, and ``sample_rate``, at which
            window bounds are quantised exactly as the audio's).
        fps: frames sampled per second of video.
        size: side of the square output frames; None keeps the displayed size.
        duration_s: the duration windows are cut from; default the video's. Pass the soundtrack's
            length to get exactly the audio's windows when the two streams differ slightly.
        fit: ``crop`` (centre crop, CLIP) or ``squash`` (whole frame to ``size x size``, CAVP).

    Yields:
        ``FrameWindow`` with ``frames`` of shape ``(F, size, size, 3) uint8``.

    Raises:
        MediaDecodeError: unreadable, truncated or frameless (at the call, before any frame is decoded),
            or failing mid-stream (while iterating); one line.
    """
    sampler = open_frames(path, fps=fps, size=size, fit=fit)
    d = sampler.info.duration_s if duration_s is None else float(duration_s)
    return (sampler.window(start, end) for start, end in window_bounds(d, cfg))


class FrameSampler:
    """An opened video whose frames are fetched one window at a time, for any ``[start_s, end_s]``.

    ``info`` describes the video. ``window(start_s, end_s)`` decodes only that window's frames (see the
    module docstring for the sampling rule), so a soundtrack's windows get exactly their own seconds' frames.
    """

    def __init__(self, path: Path, info: VideoInfo, reader: Any, times: FrameTimes, plan: DecodePlan,
                 fps: float) -> None:
        self.path, self.info, self.fps = path, info, fps
        self._reader, self._starts, self._indices, self._plan = reader, times.starts, times.indices, plan

    def window(self, start_s: float, end_s: float) -> FrameWindow:
        """The frames of ``[start_s, end_s]``: ``(F, size, size, 3) uint8``; one-line ``MediaDecodeError``."""
        times = sample_times(start_s, end_s, self.fps)
        timed = np.clip(np.searchsorted(self._starts, times, side="right") - 1, 0, len(self._starts) - 1)
        idx = self._indices[timed]  # decord's index of each timed frame
        uniq, inverse = np.unique(idx, return_inverse=True)
        parts = []
        for at in range(0, len(uniq), _DECODE_CHUNK):  # native-size frames (squash) are large: a few at a time
            try:
                batch = self._reader.get_batch(uniq[at : at + _DECODE_CHUNK].tolist()).asnumpy()
            except Exception as exc:  # decord raises DECORDError/RuntimeError/IndexError
                raise MediaDecodeError(
                    f"{self.path}: decoding failed near {start_s:.1f} s ({_first_line(exc)})") from None
            parts.append(finish_frames(batch, self._plan))
            del batch
        frames = np.concatenate(parts)[inverse]
        return FrameWindow(start_s, end_s, frames, times, idx.astype(np.int64))


def open_frames(path: str | os.PathLike[str], fps: float = DEFAULT_FPS, size: int | None = 224,
                fit: str = "crop") -> FrameSampler | FfmpegFrameSampler:
    """Open ``path`` for frame sampling at ``fps`` into ``size x size`` frames (None: displayed size);
    ``fit="squash"`` scales the whole frame to ``size x size`` (aspect not kept) instead of centre-cropping.

    Raises MediaDecodeError (one line) when the file is unreadable, truncated or frameless, before any frame
    is decoded.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    p = Path(path)
    info, reader, times, plan = _open(p, size, squash=fit == "squash")
    if times.untimed:  # decord's index is no longer the picture's place in time (media/frame_times)
        return FfmpegFrameSampler(p, info, plan, fps, info.fps or _UNTIMED_FPS)
    return FrameSampler(p, info, reader, times, plan, fps)


def _open(path: Path, size: int | None, squash: bool = False) -> tuple[VideoInfo, Any, FrameTimes, DecodePlan]:
    """ffprobe, then decord: (info, VideoReader, the timed frames' start times from 0, decode plan)."""
    streams = probe_streams(path)
    if streams.width <= 0 or streams.height <= 0:
        raise MediaDecodeError(f"{path}: video stream has no picture size")
    quarter = streams.rotation in (90, 270)
    disp_w, disp_h = (streams.height, streams.width) if quarter else (streams.width, streams.height)
    plan = plan_decode(disp_w, disp_h, quarter, size, squash)
    reader = _video_reader(path, plan)
    n = len(reader)
    if n == 0:
        raise MediaDecodeError(f"{path}: video stream has no frames")
    stamps = np.asarray(reader.get_frame_timestamp(list(range(n))), dtype=np.float64).reshape(n, 2)
    times = frame_times(stamps)  # frames without a timestamp set apart
    duration = times.end_s
    if times.untimed:  # decord cannot say where its frames end: its frame count at the stream's rate (an MPEG-PS
        # stream's declared duration is a bitrate estimate: 2.52 s for 3 s of pictures), else the container's
        duration = n / streams.fps if streams.fps else (streams.video_duration_s or n / _UNTIMED_FPS)
    else:
        _check_truncation(path, streams, times.last_end_s)
    fps = streams.fps or (n / duration if duration > 0 else 0.0)
    info = VideoInfo(duration, fps, n, disp_w, disp_h, streams.has_audio, streams.rotation)
    return info, reader, times, plan


def _video_reader(path: Path, plan: DecodePlan) -> Any:
    """A decord ``VideoReader`` decoding at the plan's size; decord's own errors become one line."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    try:
        return decord.VideoReader(os.fspath(path), ctx=decord.cpu(0), width=plan.decode_w, height=plan.decode_h)
    except Exception as exc:
        reason = _first_line(exc)
        if "av_read_frame failed" in reason or "Invalid data" in reason:  # AVERROR_INVALIDDATA mid-stream
            raise MediaDecodeError(f"{path}: truncated or damaged file: invalid data in the video stream") from None
        raise MediaDecodeError(f"{path}: cannot open the video stream ({reason})") from None


def _check_truncation(path: Path, streams: StreamsInfo, decoded_end_s: float) -> None:
    """Raise when the decodable frames stop well before the video stream's declared duration."""
    declared = streams.video_duration_s
    if declared is None:
        return
    missing = declared - decoded_end_s
    if missing > max(_TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRACTION * declared):
        raise MediaDecodeError(
            f"{path}: truncated file: video frames stop at {decoded_end_s:.2f} s of {declared:.2f} s"
        )


def _first_line(exc: BaseException) -> str:
    """The informative part of a decord/ffmpeg error: its last non-empty line, without source locations."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]
    if ": " in text and ".cc:" in text:
        text = text.rsplit(": ", 1)[1]
    return text[:200]
