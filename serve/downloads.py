"""Taking a found sound away from ``dgsearch serve``: the file itself, or one window of it as WAV.

- :func:`attachment_name` is the name a browser saves under: the file's own name, with bytes that are not
  UTF-8 shown as U+FFFD (a header cannot carry them; Starlette writes any name that is not plain ASCII as
  RFC 6266's ``filename*=utf-8''...``, quotes and line breaks included, so no name can break the header).
- :func:`window_wav` cuts ``[start_s, end_s)`` of the file's first audio stream into a temporary WAV, the
  caller sends it and deletes it. ffmpeg decodes it (seeking on the input, which decodes and drops up to the
  exact sample: its default ``-accurate_seek``), under the decoders' time limit (``media/process``), at the
  file's own sample rate and channels, in the source's resolution where libsndfile can say what it is
  (:func:`wav_codec`). A span is at most :data:`MAX_WINDOW_S` long and lies inside the file.

The file is one the catalog named (``media.catalog_file``): nothing here sees a request's path.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

from diffgap_search.errors import MediaDecodeError, UsageError
from diffgap_search.media import process
from diffgap_search.media.discover import display_path
from diffgap_search.store.rows import FileRow

MAX_WINDOW_S = 600.0  # ten minutes: 170 MB of 48 kHz stereo 24-bit; longer, save the whole file
# libsndfile subtypes -> ffmpeg's WAV codec of the same resolution; anything else (24-bit, lossy, unknown) 24-bit
_CODECS = {"PCM_S8": "pcm_s16le", "PCM_U8": "pcm_s16le", "PCM_16": "pcm_s16le", "ALAW": "pcm_s16le",
           "ULAW": "pcm_s16le", "FLOAT": "pcm_f32le", "DOUBLE": "pcm_f32le"}
DEFAULT_CODEC = "pcm_s24le"


def attachment_name(name: str) -> str:
    """``name`` (a file name, perhaps surrogate-escaped) as text a Content-Disposition header can carry."""
    return os.fsencode(name).decode("utf-8", "replace")


def window_name(path: Path, start_s: float, end_s: float) -> str:
    """``"long take 10-20s.wav"``: the file's stem and the span's seconds (to the millisecond, no trailing 0)."""
    def seconds(x: float) -> str:
        return f"{x:.3f}".rstrip("0").rstrip(".")
    return attachment_name(f"{path.stem} {seconds(start_s)}-{seconds(end_s)}s.wav")


def checked_span(row: FileRow, start_s: float, end_s: float) -> tuple[float, float]:
    """``(start_s, end_s)`` with ``end_s`` clipped to the file's duration; UsageError (exit 2, HTTP 400) for a
    span that is not finite, empty, outside the file or longer than :data:`MAX_WINDOW_S`."""
    duration = row.duration_s
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s <= start_s:
        raise UsageError(f"a window needs 0 <= start < end, in seconds (got start={start_s}, end={end_s})")
    if duration is not None:
        if start_s >= duration:
            raise UsageError(f"start={start_s} s is past the end of file {row.id} ({duration:.3f} s)")
        end_s = min(end_s, duration)
    if end_s - start_s > MAX_WINDOW_S:
        raise UsageError(f"a window is at most {MAX_WINDOW_S:g} s long (asked for {end_s - start_s:g} s):"
                         " save the whole file instead")
    return start_s, end_s


def wav_codec(path: Path) -> str:
    """ffmpeg's WAV codec for a cut of ``path``: 16-bit for 8/16-bit sources, 32-bit float for float ones,
    24-bit otherwise (24/32-bit PCM, lossy and ffmpeg-only formats)."""
    import soundfile as sf

    try:
        subtype = sf.info(os.fspath(path)).subtype
    except (RuntimeError, OSError, sf.LibsndfileError):
        return DEFAULT_CODEC
    return _CODECS.get(subtype, DEFAULT_CODEC)


def window_wav(path: Path, start_s: float, end_s: float) -> Path:
    """``[start_s, end_s)`` of ``path``'s first audio stream as a WAV in a new temporary file (the caller
    deletes it); MediaDecodeError where ffmpeg is missing or cannot decode it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaDecodeError(f"{display_path(path)}: needs ffmpeg, which is not installed, to cut a window from this file")
    fd, name = tempfile.mkstemp(prefix="dgsearch-window-", suffix=".wav")
    os.close(fd)
    target = Path(name)
    cmd: list[str | bytes] = [exe, "-nostdin", "-v", "error", "-y", "-ss", f"{start_s:.6f}", "-t",
                              f"{end_s - start_s:.6f}", "-i", b"file:" + os.fsencode(path), "-map", "0:a:0", "-vn",
                              "-sn", "-dn", "-c:a", wav_codec(path), "-f", "wav", b"file:" + os.fsencode(target)]
    try:
        done = process.run_limited(cmd, path, process.time_limit(end_s), "ffmpeg")  # no seek: from 0
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise MediaDecodeError(f"{display_path(path)}: cannot cut a window ({detail[-1] if detail else done.returncode})")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target
