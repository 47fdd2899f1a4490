"""Frames of a video whose frames decord cannot place in time, decoded by ffmpeg one window at a time.

decord sorts a video's frames by presentation timestamp; frames the demuxer gives none (``media/frame_times``:
the packed B-frames of DivX/Xvid AVIs, an MPEG program stream's first frames, or most of them) sort first, at
indices whose time is unknown, and decord's index then no longer says which picture is which (measured: an
MPEG-4 AVI with B-frames sampled 6 frames late, an ``.mpg`` at random). ffmpeg reorders such frames and
times them from the stream itself, so for these files it decodes instead:

    ffmpeg -ss START -i FILE -t SPAN -map 0:v:0 -vf "fps=R,select='eq(n,j1)+eq(n,j2)+...',scale=W:H"
           -fps_mode passthrough -f rawvideo -pix_fmt rgb24 -

``fps=R`` (the stream's frame rate) puts the window's pictures on a grid of ``1/R`` s from ``START``; the sample
at time ``t`` (``video.sample_times``) is grid frame ``j = floor((t - START) * R)``, the picture on screen at
``t`` to within a frame or two, as ffmpeg itself times these streams (grey-coded 60 s encodes at 25 fps: an AVI
with packed B-frames one frame early after a seek in 400 of 440 samples, an MPEG-PS within 2 frames in 90 %, the
rest 3-8 early; ``-copyts`` was no better, the fps filter's ``round`` made no difference); ``select``
keeps only those, so a window holds its samples in memory, not its every frame. Frames are scaled to the
decode plan's target size (rotation applied by ffmpeg, as decord applies it), then cropped or squashed as
decord's are (``video_geometry.finish_frames``), eight at a time as they stream from the pipe. A sample past the
last picture repeats the last. Each wait for ffmpeg's output has the decoders' time limit (``media/process``); a
failure is one ``MediaDecodeError`` line.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media import process
from diffgap_search.media.video_geometry import DecodePlan, finish_frames
from diffgap_search.media.video_types import FrameWindow, VideoInfo, sample_times

_CHUNK = 8  # pictures read and finished at a time (as decord's sampler decodes 8 at a time)


class FfmpegFrameSampler:
    """``FrameSampler``'s interface (``path``, ``info``, ``fps``, ``window``) over ffmpeg; ``grid_fps``: the
    stream's frame rate (> 0)."""

    def __init__(self, path: Path, info: VideoInfo, plan: DecodePlan, fps: float, grid_fps: float) -> None:
        self.path, self.info, self.fps = path, info, fps
        self._plan, self._grid = plan, float(grid_fps)
        scaled = plan.decode_w > 0 and plan.decode_h > 0
        self._size = (plan.target_h, plan.target_w) if scaled else (info.height, info.width)
        self._scale = f",scale={plan.target_w}:{plan.target_h}" if scaled else ""

    def window(self, start_s: float, end_s: float) -> FrameWindow:
        """The frames of ``[start_s, end_s]``: ``(F, size, size, 3) uint8``; one-line ``MediaDecodeError``."""
        times = sample_times(start_s, end_s, self.fps)
        slots = np.floor((times - start_s) * self._grid + 1e-9).astype(np.int64)
        uniq, inverse = np.unique(slots, return_inverse=True)
        finished = self._decode(start_s, uniq)
        picked = finished[np.minimum(np.arange(len(uniq)), len(finished) - 1)]
        first = int(math.floor(start_s * self._grid + 1e-9))
        return FrameWindow(start_s, end_s, picked[inverse], times, (first + slots).astype(np.int64))

    def _decode(self, start_s: float, slots: np.ndarray) -> np.ndarray:
        """Grid frames ``slots`` (ascending) after ``start_s``, finished to the plan's output: ``(<= len(slots),
        *out_shape, 3) uint8``, at least one. Read ``_CHUNK`` pictures at a time, so native-size ones (CAVP's
        squash decodes 1080p at 6 MB a picture) never sit in memory a window's worth at once."""
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise MediaDecodeError(f"{self.path}: needs ffmpeg to decode this video's frames, which is not installed")
        span = (int(slots[-1]) + 1) / self._grid
        select = "+".join(f"eq(n\\,{int(j)})" for j in slots)
        seek: list[str | bytes] = ["-ss", f"{start_s:.6f}"] if start_s > 0 else []  # -ss 0: 3 frames late on an AVI
        cmd: list[str | bytes] = [
            exe, "-nostdin", "-v", "error", *seek, "-i", b"file:" + os.fsencode(self.path),
            "-t", f"{span:.6f}", "-map", "0:v:0", "-an", "-sn", "-dn",
            "-vf", f"fps={self._grid:.6f},select='{select}'{self._scale}",
            "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ]
        h, w = self._size
        size = h * w * 3
        parts: list[np.ndarray] = []
        with tempfile.TemporaryFile() as errfile:
            with process.watched(cmd, errfile) as (proc, watchdog):
                assert proc.stdout is not None
                for _ in range(0, len(slots), _CHUNK):
                    with watchdog.waiting(process.time_limit(span)):
                        raw = proc.stdout.read(size * _CHUNK) or b""
                    if watchdog.fired is not None:
                        raise MediaDecodeError(f"{self.path}: {process.timed_out(watchdog.fired, 'ffmpeg')}")
                    n = len(raw) // size
                    if n:
                        parts.append(finish_frames(np.frombuffer(raw, np.uint8)[: n * size].reshape(n, h, w, 3),
                                                   self._plan))
                    if len(raw) < size * _CHUNK:
                        break
                with watchdog.waiting(process.time_limit(None)):
                    while proc.stdout.read(size):  # more pictures than asked for cannot block ffmpeg's exit
                        pass
                    code = proc.wait()
            if code != 0 or not parts:
                errfile.seek(0)
                lines = [ln for ln in errfile.read(4096).decode("utf-8", "replace").splitlines() if ln.strip()]
                why = lines[-1].strip() if lines else f"ffmpeg exited with status {code}, no frame"
                raise MediaDecodeError(f"{self.path}: decoding failed near {start_s:.1f} s ({why})")
        return np.concatenate(parts)
