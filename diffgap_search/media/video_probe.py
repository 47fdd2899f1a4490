"""Probe a video file with ffprobe: its streams, duration, rotation, or a one-line reason it is unusable.

This runs before any decoder touches the file, so garbage never reaches decord (which floods stderr
with the file's bytes when it fails to open one, dmlc/decord#299) and every bad input gets a clear
``MediaDecodeError`` message. Decodable frame counts and timestamps come from decord later
(``video.py``); this module only reads container metadata.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media import process

_ENTRIES = (
    "stream=index,codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,duration"
    ":stream_tags=rotate,DURATION:stream_side_data=rotation:format=duration,format_name"
)


@dataclass(frozen=True)
class StreamsInfo:
    """Container metadata of a video file as ffprobe reports it (nothing decoded yet).

    ``width``/``height`` are the stored (coded) picture size, before rotation. ``rotation`` is the
    display rotation in degrees, normalised to one of 0, 90, 180, 270. ``video_duration_s`` is the video
    stream's own duration when the container records one, else None. ``format_duration_s`` is the
    whole file's, which can include a longer soundtrack.
    """

    width: int
    height: int
    rotation: int
    fps: float
    nb_frames: int | None
    video_duration_s: float | None
    format_duration_s: float | None
    has_audio: bool
    codec: str


def ffprobe_json(path: Path) -> dict[str, Any]:
    """Raw ``ffprobe -of json`` output for ``path``; ``MediaDecodeError`` when ffprobe cannot read it, or
    ``"decoder timed out after 60 s (ffprobe)"`` past ``process.PROBE_LIMIT_S`` (ffprobe is then killed)."""
    exe = shutil.which("ffprobe")
    if exe is None:
        raise MediaDecodeError(f"{path}: ffprobe not found on PATH (install ffmpeg)")
    cmd = [exe, "-v", "error", "-show_entries", _ENTRIES, "-of", "json", os.fspath(path)]
    proc = process.run_limited(cmd, path, process.PROBE_LIMIT_S, "ffprobe")
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        data = {}
    if proc.returncode != 0 or not data.get("streams"):
        raise MediaDecodeError(f"{path}: {_unreadable_reason(path, proc.stderr)}")
    return data


def probe_streams(path: str | os.PathLike[str]) -> StreamsInfo:
    """Read container metadata of a video file.

    Raises:
        MediaDecodeError: missing/empty/garbage/truncated-index file, or no video stream (one line).
    """
    p = Path(path)
    if not p.is_file():
        raise MediaDecodeError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise MediaDecodeError(f"{p}: empty file (0 bytes)")
    data = ffprobe_json(p)
    streams: list[dict[str, Any]] = data.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video"]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not video:
        what = "audio-only file" if has_audio else "no audio or video stream"
        raise MediaDecodeError(f"{p}: no video stream ({what})")
    v = video[0]
    fmt = data.get("format", {})
    return StreamsInfo(
        width=int(v.get("width") or 0),
        height=int(v.get("height") or 0),
        rotation=_rotation(v),
        fps=_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")) or 0.0,
        nb_frames=_int_or_none(v.get("nb_frames")),
        video_duration_s=_float_or_none(v.get("duration")) or _hms(v.get("tags", {}).get("DURATION")),
        format_duration_s=_float_or_none(fmt.get("duration")),
        has_audio=has_audio,
        codec=str(v.get("codec_name") or "?"),
    )


def _unreadable_reason(path: Path, stderr: bytes) -> str:
    """One line saying why ffprobe could not read ``path``: truncated MP4/MOV, or not media at all."""
    with path.open("rb") as fh:
        head = fh.read(12)
    text = stderr.decode("utf-8", "replace")
    if head[4:8] == b"ftyp" and "moov atom not found" in text:
        return "truncated or damaged file: MP4/MOV index (moov atom) missing"
    if head[4:8] == b"ftyp" or head[:4] in (b"\x1aE\xdf\xa3", b"RIFF"):
        return "truncated or damaged file: container cannot be parsed"
    return "not a media file (unrecognised data)"


def _rotation(stream: dict[str, Any]) -> int:
    """Display rotation in degrees, 0/90/180/270, from the display matrix side data or the old tag."""
    value: Any = None
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            value = side["rotation"]
    if value is None:
        value = stream.get("tags", {}).get("rotate")
    try:
        deg = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        deg = 0.0
    return int(round(deg / 90.0)) * 90 % 360


def _rate(text: Any) -> float | None:
    """``"30000/1001"`` -> 29.97; None for missing or ``0/0``."""
    if not text or not isinstance(text, str):
        return None
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out >= 0 else None


def _hms(value: Any) -> float | None:
    """Matroska's ``DURATION`` tag (``"00:00:03.000000000"``) in seconds."""
    if not isinstance(value, str) or value.count(":") != 2:
        return None
    h, m, s = value.split(":")
    try:
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None
