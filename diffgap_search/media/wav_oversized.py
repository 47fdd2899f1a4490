"""A WAV file longer than its header can say: more than 4 GiB of samples behind a RIFF header's 32-bit sizes.

A plain WAV counts its bytes in 32 bits. A recorder or program that kept writing past 4 GiB without switching to
RF64 (a long field recording: 8 channels at 96 kHz, 24-bit, pass 4 GiB in 31 minutes; a broadcast logger) leaves
a data size that wrapped around (the true size minus 4 GiB) or the placeholder ``0xFFFFFFFF``. Measured on such a
file of 6 h 13 min: libsndfile 1.2.2 and ffprobe 5.1 both read 10 s of it (the wrapped size), and ffmpeg reads on
only with ``-ignore_length``, through every byte before the part asked for (3 min for the last 8 s). The rule here:
where the bytes after the ``data`` chunk's header are 4 GiB or more, no 32-bit size can count them, so the
samples run to the end of the file; the file is then opened as headerless PCM (libsndfile's RAW, with the
``fmt `` chunk's rate, channels and sample format) over those bytes, which it reads and seeks exactly. Below 4 GiB
the header's size holds (chunks after the data are ordinary).

Not done: ``dgsearch serve`` sends such a file to the browser as it is, and the browser plays what its header
says (the first 10 s, or 4 GiB); transcoding hours of audio on a click (minutes) was not taken instead.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import IO

import soundfile as sf

from diffgap_search.media.byte_range import ByteRange

FOUR_GIB = 1 << 32
# (format tag, bits per sample) -> libsndfile subtype of headerless little-endian PCM
_SUBTYPES = {(1, 8): "PCM_U8", (1, 16): "PCM_16", (1, 24): "PCM_24", (1, 32): "PCM_32", (3, 32): "FLOAT",
             (3, 64): "DOUBLE"}
_EXTENSIBLE = 0xFFFE


def open_oversized_wav(path: Path) -> sf.SoundFile | None:
    """``path`` opened as the headerless PCM of its data to the end of the file where it is a RIFF/WAVE file
    whose data holds 4 GiB or more (module docstring); None for any other file (the caller opens it as usual)."""
    try:
        size = os.path.getsize(path)
        if size < FOUR_GIB:
            return None
        with open(path, "rb") as fh:
            layout = _layout(fh, size)
    except OSError:
        return None
    if layout is None:
        return None
    data_at, rate, channels, subtype = layout
    return sf.SoundFile(ByteRange(path, data_at, size), mode="r", samplerate=rate, channels=channels,
                        subtype=subtype, endian="LITTLE", format="RAW")


def _layout(fh: IO[bytes], size: int) -> tuple[int, int, int, str] | None:
    """``(data offset, rate, channels, subtype)`` of a RIFF/WAVE file whose data runs 4 GiB or more, else None."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None  # RF64 and Wave64 count in 64 bits: libsndfile reads them whole
    pos, fmt = 12, None
    while pos + 8 <= size:
        fh.seek(pos)
        chunk = fh.read(8)
        if len(chunk) < 8:
            return None
        cid, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            fmt = fh.read(min(length, 40))
        elif cid == b"data":
            data_at = pos + 8
            if fmt is None or size - data_at < FOUR_GIB:
                return None
            return _format(fmt, data_at)
        pos += 8 + length + (length & 1)
    return None


def _format(fmt: bytes, data_at: int) -> tuple[int, int, int, str] | None:
    if len(fmt) < 16:
        return None
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the SubFormat GUID's first two bytes: 1 PCM, 3 float
    subtype = _SUBTYPES.get((tag, bits))
    if subtype is None or channels < 1 or rate < 1:
        return None
    return data_at, rate, channels, subtype
