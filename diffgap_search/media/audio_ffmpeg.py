"""Decode with an ``ffmpeg`` subprocess: what libsndfile cannot read (m4a, aac, wma, WavPack, mka, video
containers, codecs libsndfile lacks) or could not read to its end (``media/audio.py`` decides).

ffmpeg writes 32-bit float WAV at the source's own rate and channel count to a pipe, read in chunks, so a long
file never sits whole in memory; its blocks go through the same :class:`Conditioner` as libsndfile's. For
``.wav``/``.flac``/``.ogg``-family names the caller names the container (``forced_format``: ``-f``), so random
bytes named ``.wav`` are refused instead of being probed as MPEG noise. A watchdog kills an ffmpeg that stops
producing output (``media/process.py``: the header within 60 s, each block of ``b`` seconds within ``60 + b``
s): the file fails with ``"decoder timed out after N s (ffmpeg)"``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media import process
from diffgap_search.media.audio_conditioning import Conditioner, decode_error, observe

Span = tuple[float, float | None]  # (start, length) in seconds; length None: to the end


def ffmpeg_blocks(
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
    detail = process.last_message(text) or f"ffmpeg exited with status {proc.returncode}"
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
    observe(path, rate, channels)
    cond = Conditioner(rate, sample_rate)
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
