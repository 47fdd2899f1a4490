"""Decode: any audio file (or a video's soundtrack) to mono float32 at the encoder's sample rate, streamed.

Two decoders, one conditioning path:

- soundfile (libsndfile) reads wav (and Broadcast WAVE, RF64, Wave64), flac, ogg/oga/opus, mp3 and mp2, AIFF/AIFC,
  CAF and Sun au, and anything else it recognises by content;
- an ``ffmpeg`` subprocess reads the rest (m4a, aac, wma, WavPack, mka, video containers, codecs libsndfile lacks;
  ``_FFMPEG_ONLY`` names go to it directly). It writes
  32-bit float WAV at the source's own rate and channel count to a pipe, read in chunks, so a long file
  never sits whole in memory. For ``.wav``/``.flac``/``.ogg``-family names ffmpeg is told the container
  (``-f``), so random bytes named ``.wav`` are refused instead of being probed as MPEG noise. A watchdog
  kills an ffmpeg that stops producing output (``media/process.py``: the header within 60 s, each block of
  ``b`` seconds within ``60 + b`` s): the file fails with ``"decoder timed out after N s (ffmpeg)"``.

Every block then goes through the same steps, whatever decoded it: downmix by the *mean* over channels
(ffmpeg's ``-ac 1`` is not a mean, so it is not used); NaN/±inf samples replaced by 0 and samples clipped
to [-1, 1] (float files can hold anything; CLAP is trained on [-1, 1] audio); resampling with a streaming
soxr ``HQ`` resampler (deterministic; identical whether the caller streams or loads whole); a final clip
to [-1, 1] (resampling can overshoot by a hair).

Failures raise ``MediaDecodeError`` with a one-line message ``"<path>: <reason>"``; the instance also
carries ``.path`` (the Path) and ``.reason`` (the reason alone) for the catalog's ``error`` column.
A file truncated inside its sample data decodes to the samples that are there, and a file damaged inside it
(an MP3's broken frame) to the samples around the damage: where libsndfile fails after opening the file,
ffmpeg decodes it again and its blocks go on from libsndfile's last sample (``_decoded_blocks``). A file
truncated inside its header is an error.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_mod
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf
import soxr

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media import process
from diffgap_search.media.discover import VIDEO_EXTENSIONS, display_path
from diffgap_search.media.native_stderr import mpg123_quiet

# Names libsndfile cannot read: go straight to ffmpeg (saves libsndfile's probing and its mpg123 chatter).
_FFMPEG_ONLY = frozenset({".m4a", ".aac", ".wma", ".wv", ".mka"}) | VIDEO_EXTENSIONS
# Names whose container is certain: ffmpeg is told it rather than left to probe the bytes.
_FFMPEG_FORMAT = {".wav": "wav", ".flac": "flac", ".ogg": "ogg", ".oga": "ogg", ".opus": "ogg"}
_RESAMPLE_QUALITY = "HQ"
_READ_FAILED = "decoding failed: "  # libsndfile opened the file and then failed inside its data


# The source stream's (sample rate, channels) as the decoder found them, per path decoded in this process:
# what ``dgsearch query --sample-rate/--channels`` filter on (``stream_facts``), read where the file is
# decoded anyway. Only the last few paths are kept.
_STREAM_FACTS: dict[str, tuple[int, int]] = {}


def _observe(path: Path, sample_rate: int, channels: int) -> None:
    if len(_STREAM_FACTS) > 64:
        _STREAM_FACTS.clear()
    _STREAM_FACTS[os.fspath(path)] = (int(sample_rate), int(channels))


def stream_facts(path: Path) -> tuple[int, int] | None:
    """``(sample_rate, channels)`` of ``path``'s audio stream as its decoder in this process last found them
    (None if it was not decoded here)."""
    return _STREAM_FACTS.get(os.fspath(Path(os.path.abspath(os.fspath(path)))))


def decode_error(path: Path, reason: str) -> MediaDecodeError:
    """A ``MediaDecodeError`` for ``path`` with a one-line message, carrying ``.path`` and ``.reason``."""
    reason = " ".join(reason.split()) or "cannot decode"
    err = MediaDecodeError(f"{display_path(path)}: {reason}")
    err.path = path  # type: ignore[attr-defined]
    err.reason = reason  # type: ignore[attr-defined]
    return err


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The whole file as mono ``(T,) float32`` in [-1, 1] at ``sample_rate``; ``T >= 1`` or it raises."""
    blocks = list(iter_audio_blocks(path, sample_rate))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def load_span(path: Path, sample_rate: int, start_s: float, end_s: float) -> np.ndarray:
    """Mono ``(t,) float32`` at ``sample_rate``: the file's sound from ``start_s`` to ``end_s`` (less where the file
    ends first), read from there (libsndfile seeks, ffmpeg is given ``-ss``) rather than decoded from the start:
    a span of an hour-long recording costs its own seconds. The resampler starts afresh at ``start_s``, so the
    samples may differ from the whole file's by its filter's edge (a few ms), and ffmpeg lands on the container's
    timestamps (Matroska's are milliseconds: measured 9 samples early at 44.1 kHz); libsndfile's formats (wav,
    flac, ogg) give the whole file's samples exactly. Raises ``MediaDecodeError``, also for a span with no
    sound in it."""
    blocks = list(iter_audio_blocks(path, sample_rate, start_s=start_s, length_s=end_s - start_s))
    return np.concatenate(blocks)[: max(1, int(round((end_s - start_s) * sample_rate)))]


def iter_audio_blocks(path: Path, sample_rate: int, block_seconds: float = 10.0, *, start_s: float = 0.0,
                      length_s: float | None = None) -> Iterator[np.ndarray]:
    """Stream the file as consecutive mono ``(t,) float32`` blocks at ``sample_rate``, each non-empty.

    Blocks hold about ``block_seconds`` of audio (exact sizes vary with the resampler). Their concatenation
    equals ``load_audio(path, sample_rate)``. Raises ``MediaDecodeError`` (possibly after some blocks, for a
    file that breaks mid-stream, and at the end when no sample at all was decoded). ``start_s``/``length_s``:
    only that span, read from ``start_s`` (:func:`load_span`).
    """
    if sample_rate <= 0 or not block_seconds > 0:
        raise ValueError("sample_rate and block_seconds must be > 0")
    if start_s < 0 or (length_s is not None and not length_s > 0):
        raise ValueError("start_s must be >= 0 and length_s > 0")
    path = Path(os.path.abspath(os.fspath(path)))
    _check_file(path)
    produced = 0
    for block in _decoded_blocks(path, sample_rate, block_seconds, (start_s, length_s)):
        produced += block.shape[0]
        yield block
    if produced == 0:
        raise decode_error(path, "no audio samples decoded")


def _check_file(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise decode_error(path, "file not found") from None
    except OSError as exc:
        raise decode_error(path, f"cannot read file: {exc.strerror or exc}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        raise decode_error(path, "not a regular file")
    if st.st_size == 0:
        raise decode_error(path, "empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise decode_error(path, "permission denied") from None
    except OSError as exc:
        raise decode_error(path, f"cannot read file: {exc.strerror or exc}") from None


Span = tuple[float, float | None]  # (start, length) in seconds; length None: to the end


def _decoded_blocks(path: Path, sample_rate: int, block_seconds: float, span: Span) -> Iterator[np.ndarray]:
    """The file's conditioned blocks: libsndfile's where it opens the file, else ffmpeg's. Where libsndfile fails
    inside the data (an MP3's damaged frame: mpg123 gives up resyncing; a FLAC cut short: "lost sync"), ffmpeg
    decodes the file again, skipping the damage as a player does, and its blocks go on from libsndfile's last
    sample (the two agree to ~1e-6 before it: 4e-7 measured on an MP3). Where the header counts no frames (a WAV
    whose recorder stopped before writing its sizes), ffmpeg reads the data to its end. Without ffmpeg, as
    libsndfile found it."""
    suffix = path.suffix.lower()
    forced = _FFMPEG_FORMAT.get(suffix)
    sf_reason, produced = None, 0
    if suffix not in _FFMPEG_ONLY:
        try:
            with mpg123_quiet():  # libsndfile may try MPEG on any file it does not recognise
                handle = sf.SoundFile(os.fsencode(path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            sf_reason = _libsndfile_reason(exc)
        else:
            try:
                with handle:
                    for block in _soundfile_blocks(path, handle, sample_rate, block_seconds, span):
                        produced += block.shape[0]
                        yield block
            except MediaDecodeError as exc:
                sf_reason = getattr(exc, "reason", "")
                if not sf_reason.startswith(_READ_FAILED) or shutil.which("ffmpeg") is None:
                    raise
            if sf_reason is None:  # read to its end
                if produced == 0 and handle.frames == 0 and shutil.which("ffmpeg") is not None:
                    with suppress(MediaDecodeError):  # what ffmpeg finds, or nothing (iter_audio_blocks says so)
                        yield from _ffmpeg_blocks(path, sample_rate, block_seconds, forced, None, span)
                return
    blocks = _ffmpeg_blocks(path, sample_rate, block_seconds, forced, sf_reason, span)
    yield from _after(blocks, produced) if produced else blocks


def _after(blocks: Iterator[np.ndarray], skip: int) -> Iterator[np.ndarray]:
    """``blocks`` without their first ``skip`` samples (the part another decoder already gave)."""
    for block in blocks:
        if skip < block.shape[0]:
            yield block[skip:]
        skip = max(0, skip - block.shape[0])


def _libsndfile_reason(exc: Exception) -> str:
    text = getattr(exc, "error_string", None) or str(exc)
    return str(text).split(": ", 1)[-1] if str(text).startswith("Error opening") else str(text)


def _mono(frames: np.ndarray) -> np.ndarray:
    """``(t,) float32``, a new array: the mean of ``frames (t, channels)``'s channels summed in float64, as
    ``frames.mean(axis=1, dtype=float64)`` gives it (a float64 sum of a few float32 samples is exact in any
    order), in a quarter of its time for stereo (NumPy reduces a short axis element by element)."""
    channels = frames.shape[1]
    if channels == 1:
        return np.array(frames[:, 0], dtype=np.float32)
    acc = frames[:, 0].astype(np.float64)
    for c in range(1, channels):
        acc += frames[:, c]
    acc /= channels
    return acc.astype(np.float32)


class _Conditioner:
    """Frames ``(t, channels)`` at ``in_rate`` -> clean mono float32 at ``out_rate``, streaming."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float32", quality=_RESAMPLE_QUALITY
        )

    def push(self, frames: np.ndarray, last: bool = False) -> np.ndarray:
        mono = _mono(frames)
        if not np.isfinite(mono).all():  # one pass; nan_to_num's three (isnan, isposinf, isneginf) only when needed
            mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0, copy=False)
        np.clip(mono, -1.0, 1.0, out=mono)
        if self._stream is None:
            return mono
        out = np.asarray(self._stream.resample_chunk(mono, last=last), dtype=np.float32)
        return np.clip(out, -1.0, 1.0, out=out if out.flags.writeable else None)

    def finish(self) -> np.ndarray:
        return self.push(np.zeros((0, 1), dtype=np.float32), last=True)


def _soundfile_blocks(path: Path, handle: sf.SoundFile, sample_rate: int, block_seconds: float,
                      span: Span = (0.0, None)) -> Iterator[np.ndarray]:
    if handle.samplerate <= 0 or handle.channels <= 0:
        raise decode_error(path, "no audio stream")
    _observe(path, handle.samplerate, handle.channels)
    cond = _Conditioner(handle.samplerate, sample_rate)
    quiet = mpg123_quiet if handle.format == "MP3" else nullcontext  # MPEG layers I-III: libmpg123 decodes them
    frames_per_read = max(1, int(block_seconds * handle.samplerate))
    left = None if span[1] is None else int(np.ceil(span[1] * handle.samplerate))
    first = int(span[0] * handle.samplerate)
    try:
        with quiet():
            if first and handle.seekable():
                handle.seek(min(first, handle.frames))
            elif first:  # a stream libsndfile cannot seek in: read past the frames before the span
                while first > 0 and handle.read(min(first, frames_per_read), dtype="float32",
                                                always_2d=True).shape[0]:
                    first -= frames_per_read
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise decode_error(path, f"{_READ_FAILED}{_libsndfile_reason(exc)}") from None
    while left is None or left > 0:
        try:
            with quiet():
                frames = handle.read(frames_per_read if left is None else min(left, frames_per_read),
                                     dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise decode_error(path, f"{_READ_FAILED}{_libsndfile_reason(exc)}") from None
        if frames.shape[0] == 0:
            break
        if left is not None:
            left -= frames.shape[0]
        out = cond.push(frames)
        if out.size:
            yield out
    tail = cond.finish()
    if tail.size:
        yield tail


def _ffmpeg_blocks(
    path: Path, sample_rate: int, block_seconds: float, forced_format: str | None, sf_reason: str | None,
    span: Span = (0.0, None),
) -> Iterator[np.ndarray]:
    exe = shutil.which("ffmpeg")
    if exe is None:
        hint = f" (soundfile: {sf_reason})" if sf_reason else ""
        what = path.suffix or "this file"
        raise decode_error(path, f"needs ffmpeg, which is not installed: install ffmpeg to decode {what}{hint}")
    cmd: list[str | bytes] = [exe, "-nostdin", "-v", "error"]
    if forced_format:
        cmd += ["-f", forced_format]
    if span[0] > 0:
        cmd += ["-ss", f"{span[0]:.6f}"]  # an input option: ffmpeg seeks, then decodes from the exact second
    if span[1] is not None:
        cmd += ["-t", f"{span[1]:.6f}"]
    cmd += ["-i", b"file:" + os.fsencode(path), "-map", "0:a:0", "-vn", "-sn", "-dn"]
    cmd += ["-c:a", "pcm_f32le", "-f", "wav", "-"]
    with tempfile.TemporaryFile() as errfile, process.watched(cmd, errfile) as (proc, watchdog):
        assert proc.stdout is not None
        yield from _read_wav_pipe(path, _TimedReader(path, proc.stdout, watchdog), sample_rate, block_seconds,
                                  proc, errfile)


class _TimedReader:
    """Reads of ffmpeg's stdout, each within its time limit (``media/process.py``); past it ffmpeg is
    killed and the read raises ``MediaDecodeError("... decoder timed out after N s (ffmpeg)")``."""

    def __init__(self, path: Path, stream: IO[bytes], watchdog: process.Watchdog) -> None:
        self.path, self._stream, self._watchdog = path, stream, watchdog

    def read(self, n: int, media_seconds: float | None = None) -> bytes:
        """Up to ``n`` bytes (fewer only at the end), holding ``media_seconds`` of audio when known."""
        with self._watchdog.waiting(process.time_limit(media_seconds)):
            data = self._stream.read(n) or b""
        self.check()
        return data

    def check(self) -> None:
        if self._watchdog.fired is not None:
            raise decode_error(self.path, process.timed_out(self._watchdog.fired, "ffmpeg"))

    def wait_exit(self, proc: subprocess.Popen[bytes]) -> int:
        """ffmpeg's exit status once its output ended (a process that hangs on past it is killed)."""
        with self._watchdog.waiting(process.time_limit(None)):
            code = proc.wait()
        self.check()
        return code


def _ffmpeg_failure(path: Path, proc: subprocess.Popen[bytes], errfile: IO[bytes]) -> MediaDecodeError:
    proc.wait()
    errfile.seek(0)
    text = errfile.read(4096).decode("utf-8", "replace")
    if "matches no streams" in text or "does not contain any stream" in text:
        return decode_error(path, "no audio stream")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = lines[-1] if lines else f"ffmpeg exited with status {proc.returncode}"
    if detail.startswith("file:"):  # "file:/x/y.wav: Invalid data found ..." -> drop the repeated path
        detail = detail.split(": ", 1)[-1]
    if _looks_like_text(path):
        return decode_error(path, f"a text file, not audio ({detail})")
    return decode_error(path, f"not decodable audio ({detail})")


def _looks_like_text(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def _read_wav_pipe(
    path: Path,
    stream: _TimedReader,
    sample_rate: int,
    block_seconds: float,
    proc: subprocess.Popen[bytes],
    errfile: IO[bytes],
) -> Iterator[np.ndarray]:
    """Parse ffmpeg's streamed float WAV (sizes in it are placeholders) and yield conditioned blocks."""
    head = stream.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise _ffmpeg_failure(path, proc, errfile)
    channels = rate = 0
    while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
            raise _ffmpeg_failure(path, proc, errfile)
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":
            break
        body = stream.read(size + (size & 1))
        if cid == b"fmt " and len(body) >= 8:
            channels, rate = struct.unpack("<HI", body[2:8])
    if channels <= 0 or rate <= 0:
        raise decode_error(path, "no audio stream")
    _observe(path, rate, channels)
    cond = _Conditioner(rate, sample_rate)
    frame_bytes = 4 * channels
    want = frame_bytes * max(1, int(block_seconds * rate))
    pending = b""
    while True:
        data = stream.read(want, block_seconds)
        if not data:
            break
        data = pending + data
        usable = len(data) - len(data) % frame_bytes
        pending = data[usable:]
        if usable:
            frames = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, channels)
            out = cond.push(frames)
            if out.size:
                yield out
    if stream.wait_exit(proc) != 0:
        raise _ffmpeg_failure(path, proc, errfile)
    tail = cond.finish()
    if tail.size:
        yield tail
