"""Extensions that two kinds of file share, told apart by their first bytes.

An MPEG transport stream (a DVB or IPTV recording, ``.ts``; AVCHD camcorders' and Blu-ray's ``.mts`` /
``.m2ts``) shares its extension with files that are not media at all: ``.ts`` is as often a TypeScript
source, and ``.mts`` is also a Minetest schematic (``MTSM``...; 28 of them in Debian's minetest-data). Taken
by name alone, such a file is "a video" that cannot be decoded: a failed file on every run, and an index
without a video model asks for one. So for :data:`AMBIGUOUS_EXTENSIONS` the walk also reads the first
:data:`SNIFF_BYTES` of the file and keeps it only where they are transport-stream packets: the sync byte 0x47
every 188 bytes (broadcast), 192 (AVCHD/Blu-ray: a 4-byte timestamp before each packet) or 204 (with
Reed-Solomon parity), at some offset within the first packet, :data:`MIN_PACKETS` times in a row (or in every
packet of a shorter file, at least three) — ffmpeg's own probe, ``mpegts_probe``, counts the same. A file that
cannot be opened is kept, so indexing reports why it cannot be read, as for any media file.
"""

from __future__ import annotations

import os
from pathlib import Path

AMBIGUOUS_EXTENSIONS: frozenset[str] = frozenset({".ts", ".mts", ".m2ts"})
PACKET_SIZES = (188, 192, 204)
MIN_PACKETS = 5
SNIFF_BYTES = 204 * (MIN_PACKETS + 1)


def is_transport_stream(data: bytes) -> bool:
    """Whether ``data`` (a file's first bytes) holds transport-stream packets (see the module doc)."""
    for size in PACKET_SIZES:
        for offset in range(min(size, len(data))):
            starts = range(offset, len(data), size)
            if len(starts) < min(MIN_PACKETS, max(3, len(data) // size)):
                break
            if all(data[i] == 0x47 for i in starts[:MIN_PACKETS]):
                return True
    return False


def looks_like_media(path: Path | str) -> bool:
    """Whether a file whose extension is in :data:`AMBIGUOUS_EXTENSIONS` is a transport stream (True where it
    cannot be read: indexing will say why)."""
    try:
        with open(os.fspath(path), "rb") as f:
            data = f.read(SNIFF_BYTES)
    except OSError:
        return True
    return is_transport_stream(data)
