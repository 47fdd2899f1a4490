"""A video's soundtrack as mono float32 at the encoder's rate, through an ffmpeg subprocess.

ffmpeg (``-vn -f f32le -ac 1 -ar SR``) is used rather than decord's ``AudioReader``, whose multi-channel
decoding is known to corrupt the second channel (dmlc/decord#242) and which cannot say "no audio"
without failing. ffprobe tells first whether the file has an audio stream at all, and the file's
duration, which sets ffmpeg's time limit (``media/process.py``: 60 s plus one second per second).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media import process
from diffgap_search.media.video_probe import ffprobe_json


def load_soundtrack(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray | None:
    """The first audio stream of ``path``, downmixed to mono and resampled by ffmpeg.

    Returns:
        ``(S,) float32`` with ``S ≈ round(duration * sample_rate)``, or None when the file has no audio
        stream.

    Raises:
        MediaDecodeError: the file cannot be read, or its audio stream cannot be decoded, or ffmpeg ran past
            its time limit (``"decoder timed out after N s (ffmpeg)"``; it is killed); one line.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    p = Path(path)
    if not p.is_file():
        raise MediaDecodeError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise MediaDecodeError(f"{p}: empty file (0 bytes)")
    probe = ffprobe_json(p)
    streams = probe.get("streams", [])
    if not any(s.get("codec_type") == "audio" for s in streams):
        return None
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaDecodeError(f"{p}: ffmpeg not found on PATH")
    cmd = [exe, "-nostdin", "-v", "error", "-i", os.fspath(p), "-map", "0:a:0", "-vn",
           "-f", "f32le", "-ac", "1", "-ar", str(int(sample_rate)), "-"]  # fmt: skip
    proc = process.run_limited(cmd, p, process.time_limit(_duration(probe)), "ffmpeg")
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        reason = lines[-1].strip()[:200] if lines else f"ffmpeg exit code {proc.returncode}"
        raise MediaDecodeError(f"{p}: cannot decode the soundtrack ({reason})")
    usable = len(proc.stdout) - len(proc.stdout) % 4
    return np.frombuffer(proc.stdout[:usable], dtype="<f4").astype(np.float32, copy=True)


def _duration(probe: dict[str, object]) -> float | None:
    """The container's duration in seconds from ffprobe's JSON, when it states one."""
    fmt = probe.get("format")
    try:
        value = float(fmt.get("duration"))  # type: ignore[union-attr, arg-type]
    except (AttributeError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None
