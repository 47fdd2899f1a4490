"""Chained Ogg: a file that holds several Ogg streams one after the other, each a recording of its own.

An Ogg file is a sequence of pages, each opening with ``OggS``, a version byte (0), a flags byte (``0x02``:
the first page of a logical stream, "beginning of stream") and a table of segment sizes; a page's length is
27 bytes + its table + the sum of the table (RFC 3533). Streams played together (a video's Theora and Vorbis)
open with all their BOS pages first. A **chained** file (an Icecast/radio rip whose title changed, ``cat a.ogg
b.ogg``, a podcast assembled from parts) starts a new stream after the previous one ended: a BOS page after
pages that are not. Measured with Debian's libsndfile 1.2.2: it reads the first link only (1.75 s of a 3.3 s
file); ffmpeg 5.1 reads every link while their codec stays the same, fails at a link that changes it
(Vorbis then Opus: "failed to create or replace stream") and cannot seek past the first link (``-ss`` lands
on nothing). So the decoder (``media/audio.py``) gives libsndfile one link at a time, each through a
``media/byte_range.ByteRange`` view of its bytes: every link is decoded with its own rate, channels and codec.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

OGG_SUFFIXES = frozenset({".ogg", ".oga", ".opus"})  # audio-only Ogg names (a .ogv goes to ffmpeg as a video)
CAPTURE = b"OggS"
HEADER_BYTES = 27  # capture, version, flags, granule (8), serial (4), sequence (4), CRC (4), segment count
BOS = 0x02
_RESYNC_CHUNK = 1 << 16


def ogg_links(path: Path) -> list[tuple[int, int]]:
    """The byte ranges ``[(start, end), ...]`` of the file's links, in order: one range ``(0, size)`` for a file
    that is not chained (or not Ogg at all). A link starts at its first BOS page (the pages of streams grouped
    at its start belong to it); a damaged stretch (no ``OggS`` where a page should start) is skipped to the next
    ``OggS``, so it stays in the link it interrupts."""
    size = os.path.getsize(path)
    starts = [0]
    with open(path, "rb", buffering=1 << 16) as fh:
        pos, in_data = 0, False
        while pos + HEADER_BYTES <= size:
            fh.seek(pos)
            head = fh.read(HEADER_BYTES)
            if head[:4] != CAPTURE or head[4] != 0:
                pos = _next_capture(fh, pos + 1)
                if pos < 0:
                    break
                continue
            table = fh.read(head[26])
            if len(table) < head[26]:
                break
            if head[5] & BOS:
                if in_data:
                    starts.append(pos)
                    in_data = False
            else:
                in_data = True
            pos += HEADER_BYTES + len(table) + sum(table)
    return [(start, end) for start, end in zip(starts, [*starts[1:], size])]


def is_chained_ogg(path: Path) -> bool:
    """Whether ``path`` has an audio Ogg name (:data:`OGG_SUFFIXES`) and more than one link: what the cut of a
    window and the web page's playback, which hand a file to ffmpeg or a browser, decide by."""
    return path.suffix.lower() in OGG_SUFFIXES and len(ogg_links(path)) > 1


def _next_capture(fh: io.BufferedReader, pos: int) -> int:
    """The offset of the next ``OggS`` at or after ``pos``, or -1."""
    fh.seek(pos)
    carry = b""
    while True:
        chunk = fh.read(_RESYNC_CHUNK)
        if not chunk:
            return -1
        data = carry + chunk
        found = data.find(CAPTURE)
        if found >= 0:
            return pos - len(carry) + found
        carry = data[-(len(CAPTURE) - 1):]
        pos += len(chunk)
