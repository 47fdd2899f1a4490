"""A window of a file's sound cut out as WAV: what ``dgsearch serve``'s "save window" sends and
``dgsearch query --save`` writes.

ffmpeg decodes ``[start_s, end_s)`` of the file's first audio stream, seeking on the input (which decodes and
drops up to the exact sample: its default ``-accurate_seek``; tested sample-exact against WAV and FLAC sources),
under the decoders' time limit (``media/process``), at the file's own sample rate and channels, in the source's
resolution where libsndfile can say what it is (:func:`wav_codec`). The WAV is written beside its target under
a temporary name and renamed into place, so a target is never half-written. A WAV of more than 4 GiB behind a
32-bit header (``media/wav_oversized.py``: ffmpeg reads its header's wrapped size) is cut from its samples read
exactly, in its own rate, channels and resolution. A chained Ogg (``media/ogg_links.py``:
ffmpeg cannot seek past its first link, a cut there came out empty) is cut from the index's own decode of it:
mono, :data:`CHAINED_RATE`, 24-bit, whatever its links' rates and channels.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from diffgap_search.atomic_files import NAME_MAX, replacing
from diffgap_search.errors import MediaDecodeError
from diffgap_search.media import process
from diffgap_search.media.discover import display_path, utf8_name
from diffgap_search.media.ogg_links import is_chained_ogg
from diffgap_search.media.wav_oversized import open_oversized_wav

# libsndfile subtypes -> ffmpeg's WAV codec of the same resolution; anything else (24-bit, lossy, unknown) 24-bit
_CODECS = {"PCM_S8": "pcm_s16le", "PCM_U8": "pcm_s16le", "PCM_16": "pcm_s16le", "ALAW": "pcm_s16le",
           "ULAW": "pcm_s16le", "FLOAT": "pcm_f32le", "DOUBLE": "pcm_f32le"}
DEFAULT_CODEC = "pcm_s24le"
MAX_WINDOW_S = 600.0  # ten minutes: 170 MB of 48 kHz stereo 24-bit; longer, take the whole file
CHAINED_RATE = 48_000


def span_seconds(start_s: float, end_s: float) -> str:
    """``"10-20.5s"``: a span's seconds to the millisecond, no trailing 0 (how cut files and folders name it)."""
    def seconds(x: float) -> str:
        return f"{x:.3f}".rstrip("0").rstrip(".")
    return f"{seconds(start_s)}-{seconds(end_s)}s"


def window_name(path: Path, start_s: float, end_s: float, prefix: str = "") -> str:
    """``"long take 10-20s.wav"`` (after ``prefix``, such as ``--save``'s rank): the file's stem and the span's
    seconds (:func:`span_seconds`); bytes of the name that are not UTF-8 become U+FFFD. A stem too long for the
    whole to fit a file name (:data:`NAME_MAX` bytes: sample libraries name files by their description) is cut
    at a character and ends with "…"."""
    stem, tail = utf8_name(path.stem), f" {span_seconds(start_s, end_s)}.wav"
    if len(f"{prefix}{stem}{tail}".encode()) <= NAME_MAX:
        return f"{prefix}{stem}{tail}"
    room = NAME_MAX - len(f"{prefix}…{tail}".encode())
    return f"{prefix}{stem.encode()[:max(0, room)].decode('utf-8', 'ignore')}…{tail}"


def wav_codec(path: Path) -> str:
    """ffmpeg's WAV codec for a cut of ``path``: 16-bit for 8/16-bit sources, 32-bit float for float ones,
    24-bit otherwise (24/32-bit PCM, lossy and ffmpeg-only formats)."""
    import soundfile as sf

    try:
        subtype = sf.info(os.fspath(path)).subtype
    except (RuntimeError, OSError, sf.LibsndfileError):
        return DEFAULT_CODEC
    return _CODECS.get(subtype, DEFAULT_CODEC)


def cut_window(path: Path, start_s: float, end_s: float, target: Path | None = None) -> Path:
    """``[start_s, end_s)`` of ``path``'s first audio stream as a WAV at ``target`` (replaced whole), or in a
    new temporary file the caller deletes when ``target`` is None; returns where it is. MediaDecodeError where
    ffmpeg is missing or cannot decode it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaDecodeError(f"{display_path(path)}: needs ffmpeg, which is not installed, to cut a window")
    if target is None:
        fd, name = tempfile.mkstemp(prefix="dgsearch-window-", suffix=".wav")
        os.close(fd)
        out = Path(name)
        try:
            _run_cut(exe, path, start_s, end_s, out)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return out
    with replacing(target) as tmp:
        _run_cut(exe, path, start_s, end_s, tmp)
    return target


def _run_cut(exe: str, path: Path, start_s: float, end_s: float, out: Path) -> None:
    oversized = open_oversized_wav(path)  # ffmpeg believes its header: a cut past 4 GiB came out empty
    if oversized is not None:
        import soundfile as sf

        with oversized:
            oversized.seek(min(oversized.frames, int(start_s * oversized.samplerate)))
            frames = oversized.read(max(0, int(round((end_s - start_s) * oversized.samplerate))), dtype="float32")
            subtype = oversized.subtype if oversized.subtype in ("PCM_16", "PCM_24", "FLOAT") else "PCM_24"
            sf.write(out, frames, oversized.samplerate, subtype, format="WAV")
        return
    if is_chained_ogg(path):
        import soundfile as sf

        from diffgap_search.media.audio import load_span

        sf.write(out, load_span(path, CHAINED_RATE, start_s, end_s), CHAINED_RATE, "PCM_24", format="WAV")
        return
    cmd: list[str | bytes] = [exe, "-nostdin", "-v", "error", "-y", "-ss", f"{start_s:.6f}", "-t",
                              f"{end_s - start_s:.6f}", "-i", b"file:" + os.fsencode(path), "-map", "0:a:0", "-vn",
                              "-sn", "-dn", "-c:a", wav_codec(path), "-f", "wav", b"file:" + os.fsencode(out)]
    done = process.run_limited(cmd, path, process.time_limit(end_s), "ffmpeg")  # a file ffmpeg cannot seek: from 0
    if done.returncode != 0:
        raise MediaDecodeError(f"{display_path(path)}: cannot cut a window ({process.failure(done)})")
