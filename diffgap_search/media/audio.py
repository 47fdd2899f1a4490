"""Decode: any audio file (or a video's soundtrack) to mono float32 at the encoder's sample rate, streamed.

Two decoders, one conditioning path (``media/audio_conditioning.py``: mean downmix, NaN/±inf to 0, clip, a
streaming soxr ``HQ`` resampler, identical whether the caller streams or loads whole):

- soundfile (libsndfile) reads wav (and Broadcast WAVE, RF64, Wave64), flac, ogg/oga/opus, mp3 and mp2, AIFF/AIFC,
  CAF and Sun au, and anything else it recognises by content; a chained Ogg (``media/ogg_links.py``) link by
  link, each with its own rate, channels and codec;
- an ``ffmpeg`` subprocess (``media/audio_ffmpeg.py``) reads the rest (m4a, aac, wma, WavPack, mka, video
  containers, codecs libsndfile lacks; ``_FFMPEG_ONLY`` names go to it directly). For ``.wav``/``.flac``/
  ``.ogg``-family names ffmpeg is told the container (``-f``), so random bytes named ``.wav`` are refused
  instead of being probed as MPEG noise.

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
from collections.abc import Iterator
from contextlib import nullcontext, suppress
from pathlib import Path

import numpy as np
import soundfile as sf

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media.audio_conditioning import Conditioner, decode_error, observe
from diffgap_search.media.audio_ffmpeg import Span, ffmpeg_blocks
from diffgap_search.media.discover import VIDEO_EXTENSIONS
from diffgap_search.media.native_stderr import mpg123_quiet
from diffgap_search.media.byte_range import ByteRange
from diffgap_search.media.ogg_links import ogg_links
from diffgap_search.media.wav_oversized import open_oversized_wav

# Names libsndfile cannot read: go straight to ffmpeg (saves libsndfile's probing and its mpg123 chatter).
_FFMPEG_ONLY = frozenset({".m4a", ".aac", ".wma", ".wv", ".mka", ".ac3", ".eac3", ".dts", ".m4b", ".m4r", ".tta",
                          ".amr", ".spx", ".weba", ".ra"}) | VIDEO_EXTENSIONS
# Names whose container is certain: ffmpeg is told it rather than left to probe the bytes.
_FFMPEG_FORMAT = {".wav": "wav", ".flac": "flac", ".ogg": "ogg", ".oga": "ogg", ".opus": "ogg"}
_READ_FAILED = "decoding failed: "  # libsndfile opened the file and then failed inside its data


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
                handle = open_oversized_wav(path) or sf.SoundFile(os.fsencode(path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            sf_reason = _libsndfile_reason(exc)
        else:
            try:
                for block in _libsndfile_blocks(path, handle, sample_rate, block_seconds, span):
                    produced += block.shape[0]
                    yield block
            except MediaDecodeError as exc:
                sf_reason = getattr(exc, "reason", "")
                if not sf_reason.startswith(_READ_FAILED) or shutil.which("ffmpeg") is None:
                    raise
            if sf_reason is None:  # read to its end
                if produced == 0 and handle.frames == 0 and shutil.which("ffmpeg") is not None:
                    with suppress(MediaDecodeError):  # what ffmpeg finds, or nothing (iter_audio_blocks says so)
                        yield from ffmpeg_blocks(path, sample_rate, block_seconds, forced, None, span)
                return
    blocks = ffmpeg_blocks(path, sample_rate, block_seconds, forced, sf_reason, span)
    yield from _after(blocks, produced) if produced else blocks


def _libsndfile_blocks(path: Path, handle: sf.SoundFile, sample_rate: int, block_seconds: float,
                       span: Span) -> Iterator[np.ndarray]:
    """``handle``'s blocks (it is closed here); for a chained Ogg, every link's in turn, each opened on its own
    bytes (``span`` counted over the links' seconds end to end; the stream facts are the first link's)."""
    try:
        links = ogg_links(path) if handle.format == "OGG" else []
    except OSError:  # gone or unreadable since it was opened: read what the open handle gives
        links = []
    if len(links) < 2:
        with handle:
            yield from _soundfile_blocks(path, handle, sample_rate, block_seconds, span)
        return
    facts = (handle.samplerate, handle.channels)
    handle.close()
    start, length = span
    for begin, end in links:
        try:
            link = sf.SoundFile(ByteRange(path, begin, end))
        except OSError as exc:
            raise decode_error(path, f"cannot read file: {exc.strerror or exc}") from None
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise decode_error(path, f"{_READ_FAILED}link at byte {begin}: {_libsndfile_reason(exc)}") from None
        with link:
            seconds = link.frames / link.samplerate if link.samplerate > 0 else 0.0
            if start < seconds:
                yield from _soundfile_blocks(path, link, sample_rate, block_seconds, (start, length))
                observe(path, *facts)
                if length is not None and (length := length - (seconds - start)) <= 0:
                    return
            start = max(0.0, start - seconds)


def _after(blocks: Iterator[np.ndarray], skip: int) -> Iterator[np.ndarray]:
    """``blocks`` without their first ``skip`` samples (the part another decoder already gave)."""
    for block in blocks:
        if skip < block.shape[0]:
            yield block[skip:]
        skip = max(0, skip - block.shape[0])


def _libsndfile_reason(exc: Exception) -> str:
    text = getattr(exc, "error_string", None) or str(exc)
    return str(text).split(": ", 1)[-1] if str(text).startswith("Error opening") else str(text)


def _soundfile_blocks(path: Path, handle: sf.SoundFile, sample_rate: int, block_seconds: float,
                      span: Span = (0.0, None)) -> Iterator[np.ndarray]:
    if handle.samplerate <= 0 or handle.channels <= 0:
        raise decode_error(path, "no audio stream")
    observe(path, handle.samplerate, handle.channels)
    cond = Conditioner(handle.samplerate, sample_rate)
    quiet = mpg123_quiet if handle.format == "MP3" else nullcontext  # MPEG layers I-III: libmpg123 decodes them
    frames_per_read = max(1, int(block_seconds * handle.samplerate))
    left = None if span[1] is None else int(np.ceil(span[1] * handle.samplerate))
    first = int(span[0] * handle.samplerate + 1e-6)  # 0.5 s after a link's end is 0.49999999 s: not a frame early
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
