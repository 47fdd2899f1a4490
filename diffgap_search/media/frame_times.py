"""Frame presentation times as decord reports them, with the frames that have none set apart.

decord's ``get_frame_timestamp`` gives each frame ``[start, end]`` in seconds from its presentation timestamp.
A frame the demuxer gives no timestamp (``AV_NOPTS_VALUE``, the most negative int64) comes back as that value
times the stream's time base: ``-3.7e17`` s for an AVI at 25 fps, ``-1.0e14`` s for MPEG-PS at 90 kHz. Real
files do this: an AVI whose MPEG-4 video has B-frames (the packed B-frames of DivX/Xvid encodes, decades of
archived video) leaves about one frame in three without one, an MPEG program stream (``.mpg``) its first GOP's
frames. decord sorts frames by timestamp, so those frames come first, at indices whose place in time is
unknown. Taken as they are, the video's "duration" was 3.7e17 s and cutting it into windows exhausted memory.

So: a timestamp is usable when it is finite and within ``MAX_PTS_S`` of zero (a broadcast transport stream's
33-bit 90 kHz clock wraps at 26.5 h; NOPTS scaled by any real time base is above 1e9 s). The timed frames give
the video's duration and decord's samples; a video with any untimed frame is sampled by ffmpeg instead
(``media/ffmpeg_frames``: decord's index no longer says which picture is which there), and is timed by its frame
count at the stream's rate (``media/video``), so a video none of whose frames is timed has no timed frames here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_PTS_S = 1e7  # 116 days


@dataclass(frozen=True)
class FrameTimes:
    """``starts``: ``(K,) float64`` seconds from the first timed frame, ascending; ``indices``: ``(K,) int64``
    the decord frame index of each; ``end_s``: the end of the last timed frame, from the same origin;
    ``last_end_s``: that end on the stream's own clock (what the container's declared duration compares with);
    ``untimed``: how many frames had no usable timestamp (0: decord's index is the frame's place in time)."""

    starts: np.ndarray
    indices: np.ndarray
    end_s: float
    last_end_s: float
    untimed: int = 0


def frame_times(stamps: np.ndarray) -> FrameTimes:
    """The timed frames of ``stamps`` (``(N, 2) float64``, decord's ``[start, end]`` per frame, N >= 1)."""
    stamps = np.asarray(stamps, dtype=np.float64).reshape(-1, 2)
    timed = np.isfinite(stamps).all(axis=1) & (np.abs(stamps) < MAX_PTS_S).all(axis=1)
    if not timed.any():
        return FrameTimes(np.zeros(0), np.zeros(0, np.int64), 0.0, 0.0, untimed=len(stamps))
    indices = np.flatnonzero(timed)
    order = np.argsort(stamps[indices, 0], kind="stable")
    indices = indices[order]
    kept = stamps[indices]
    origin = kept[0, 0]
    starts = kept[:, 0] - origin
    last_end = float(max(kept[-1, 1], kept[-1, 0]))
    return FrameTimes(starts, indices.astype(np.int64), last_end - origin, last_end, untimed=len(stamps) - len(indices))
