"""What a decoded video is and what one window of its frames holds, and when its samples are taken: shared by
the decord sampler (``media/video.py``) and the ffmpeg one (``media/ffmpeg_frames.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, as decoded.

    ``duration_s``: from the first frame's timestamp to the end of the last decodable frame (a video with frames
    decord cannot time, ``media/frame_times``: its frame count at the stream's rate).
    ``fps``: the container's average frame rate (``n_frames / duration_s`` when it has none).
    ``n_frames``: decodable frames. ``width``/``height``: the displayed size, after rotation.
    ``rotation``: the rotation metadata in degrees (0, 90, 180 or 270), already applied to frames.
    """

    duration_s: float
    fps: float
    n_frames: int
    width: int
    height: int
    has_audio: bool
    rotation: int


@dataclass(frozen=True)
class FrameWindow:
    """The frames of one window.

    ``frames``: ``(F, H, W, 3) uint8`` RGB (``H = W = size`` unless ``size=None``).
    ``times_s``: ``(F,) float64`` sample times in seconds. ``frame_indices``: ``(F,) int64`` decodable
    source frame sampled at each time.
    """

    start_s: float
    end_s: float
    frames: np.ndarray
    times_s: np.ndarray
    frame_indices: np.ndarray



def sample_times(start_s: float, end_s: float, fps: float) -> np.ndarray:
    """``(F,) float64`` slot-centre times ``start + (k + 0.5) / fps`` inside ``[start, end)``; at least one."""
    n = max(1, math.ceil(round((end_s - start_s) * fps - 0.5, 6)))
    return start_s + (np.arange(n, dtype=np.float64) + 0.5) / fps
