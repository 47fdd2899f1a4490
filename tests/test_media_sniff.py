"""``.ts``, ``.mts`` and ``.m2ts`` are video only where the file holds MPEG transport-stream packets.

Found for real: after ``.mts`` (AVCHD) became a video extension, re-indexing Debian's minetest-data asked for a
video model (exit 5 offline) because of its 28 Minetest schematics (``bush.mts``: "MTSM..."), and with
``--no-frames`` they would have been 28 failed files on every run. ``.ts`` had been left out because of
TypeScript. Now both kinds of name are sniffed (``media/sniff.py``) against streams ffmpeg's own muxer wrote
(188-byte broadcast packets, and the 192-byte packets it writes for ``.m2ts``), a real schematic and source text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli_runner import dg
from fixtures_video import ffmpeg

from diffgap_search.media.listing import list_library
from diffgap_search.media.sniff import SNIFF_BYTES, is_transport_stream, looks_like_media

# minetest_game's mods/default/schematics/bush.mts, whole (99 bytes; Debian's minetest-data, CC BY-SA 3.0)
BUSH_MTS = (b"MTSM\x00\x04\x00\x03\x00\x03\x00\x03\x7f\x7f\x7f\x00\x03\x00\x03air\x00\x13default:bush_leaves\x00"
            b"\x11default:bush_stemx\x9cc`\x00\x03F$\x08\x13a\xc2\x10AV\x13_\x1fo\x1fo\x0fd\xd4\xff\xaf\x07\xb2"
            b"\x91Ep\x01\x00.\x01\x07\x82")
TYPESCRIPT = "\n".join(f"export const gain{i}: number = {i} * 0.5; // GGGG G" for i in range(60)).encode()
PICTURE = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:duration=2"]


def packets(size: int, count: int, offset: int = 0) -> bytes:
    """``count`` packets of ``size`` bytes, each starting with the sync byte 0x47, after ``offset`` bytes."""
    body = bytes(range(1, size)).replace(b"G", b"g")[: size - 1]
    return b"\x00" * offset + (b"G" + body) * count


@pytest.mark.parametrize(("data", "expected"), [
    (packets(188, 7), True), (packets(192, 7, offset=4), True), (packets(204, 7), True),
    (packets(188, 7, offset=100), True),  # a capture cut inside its first packet
    (packets(188, 3), True), (packets(188, 2), False),  # three packets at least
    (BUSH_MTS, False), (TYPESCRIPT, False), (b"", False), (b"G" * 10, False),
])
def test_transport_streams_are_told_by_their_packets(data: bytes, expected: bool) -> None:
    assert is_transport_stream(data[:SNIFF_BYTES]) is expected


def test_a_file_that_cannot_be_read_is_kept_for_indexing_to_report(tmp_path: Path) -> None:
    assert looks_like_media(tmp_path / "gone.ts") is True


def test_only_the_streams_are_found_and_indexed(tmp_path: Path, tiny_clap_dir: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    ffmpeg(*PICTURE, "-shortest", "-c:v", "mpeg2video", "-c:a", "mp2", str(library / "recording.ts"))
    ffmpeg(*PICTURE, "-shortest", "-c:v", "mpeg2video", "-c:a", "ac3", str(library / "camcorder.mts"))
    ffmpeg(*PICTURE, "-shortest", "-c:v", "mpeg2video", "-c:a", "ac3", str(library / "bluray.m2ts"))
    assert (library / "bluray.m2ts").read_bytes()[4] == 0x47  # ffmpeg's .m2ts: 4-byte stamps, 192-byte packets
    (library / "bush.mts").write_bytes(BUSH_MTS)
    (library / "mixer.ts").write_bytes(TYPESCRIPT)
    (library / "mixer.txt").write_text("not a caption of anything\n", encoding="utf-8")
    assert [f.path.name for f in list_library(library).media] == ["bluray.m2ts", "camcorder.mts", "recording.ts"]

    r = dg("index", library, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--no-frames", "--workers", "0",
           "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["found"], report["embedded_files"], report["failed"]) == (3, 3, [])
    info = json.loads(dg("info", "--index", tmp_path / "ix", "--json").stdout)["summary"]
    assert (info["files"], info["video files"], info["failed files"]) == (3, 3, 0)
    assert os.path.getsize(library / "bush.mts") == 99
