"""Every ffmpeg/ffprobe call has a time limit: a hung decoder (a real process standing in for ffmpeg or
ffprobe, first on PATH) is killed and its file fails with ``"decoder timed out after N s (ffmpeg)"``;
a slow consumer is not a hung decoder."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from process_watch import alive

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.errors import MediaDecodeError
from diffgap_search.indexing.decode import decode_file
from diffgap_search.media import process
from diffgap_search.media.audio import iter_audio_blocks

RATE = 8_000  # the fake ffmpeg's output: mono float32 at 8 kHz (32 000 bytes a second)

HANG = """#!/bin/sh
echo $$ > "$DGS_FAKE_PID.tmp" && mv "$DGS_FAKE_PID.tmp" "$DGS_FAKE_PID"  # atomic: a reader never sees it empty
exec sleep 600
"""

# Writes a streamed float WAV header, then SECONDS_BEFORE_STALL seconds of audio, then either stalls
# (STALL=1) or writes SECONDS_AFTER more and exits 0.
WAV_WRITER = f"""#!{sys.executable}
import os, struct, sys, time
open(os.environ["DGS_FAKE_PID"] + ".tmp", "w").write(str(os.getpid()))
os.replace(os.environ["DGS_FAKE_PID"] + ".tmp", os.environ["DGS_FAKE_PID"])
out = sys.stdout.buffer
fmt = struct.pack("<HHIIHH", 3, 1, {RATE}, {RATE} * 4, 4, 32)
out.write(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt)
out.write(b"data" + struct.pack("<I", 0xFFFFFFFF))
second = struct.pack("<f", 0.25) * {RATE}
for _ in range(int(os.environ["SECONDS_BEFORE"])):
    out.write(second)
out.flush()
if os.environ.get("STALL") == "1":
    time.sleep(600)
for _ in range(int(os.environ.get("SECONDS_AFTER", "0"))):
    out.write(second)
out.flush()
"""




@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on PATH for stand-in decoders; ``DGS_FAKE_PID`` names the file they write their pid to."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DGS_FAKE_PID", str(tmp_path / "fake.pid"))
    return folder


def install(folder: Path, name: str, script: str) -> None:
    (folder / name).write_text(script)
    (folder / name).chmod(0o755)


def fake_pid(fake_bin: Path) -> int:
    return int((fake_bin.parent / "fake.pid").read_text())


def m4a(tmp_path: Path) -> Path:
    """A file that goes straight to ffmpeg (its bytes are never read by the stand-in)."""
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\0" * 64)
    return path


def test_default_limits() -> None:
    assert (process.PROBE_LIMIT_S, process.BASE_LIMIT_S, process.PER_MEDIA_SECOND_S) == (60.0, 60.0, 1.0)
    assert process.time_limit(None) == 60.0 and process.time_limit(0.0) == 60.0
    assert process.time_limit(10.0) == 70.0 and process.time_limit(3600.0) == 3660.0


def test_an_ffmpeg_that_never_answers_is_killed(tmp_path: Path, fake_bin: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    install(fake_bin, "ffmpeg", HANG)
    monkeypatch.setattr(process, "BASE_LIMIT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(MediaDecodeError) as info:
        list(iter_audio_blocks(m4a(tmp_path), RATE))
    assert 1.0 <= time.monotonic() - started < 10.0
    assert info.value.reason == "decoder timed out after 1 s (ffmpeg)"  # type: ignore[attr-defined]
    assert not alive(fake_pid(fake_bin))
    # what an indexing run records for the file
    result = decode_file(m4a(tmp_path), "audio", WindowConfig(sample_rate=RATE), VideoConfig(), 32)
    assert result.error == "decoder timed out after 1 s (ffmpeg)"
    assert not alive(fake_pid(fake_bin))


def test_an_ffmpeg_that_stalls_mid_stream_is_killed(tmp_path: Path, fake_bin: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    install(fake_bin, "ffmpeg", WAV_WRITER)
    monkeypatch.setenv("SECONDS_BEFORE", "2")
    monkeypatch.setenv("STALL", "1")
    monkeypatch.setattr(process, "BASE_LIMIT_S", 1.0)
    monkeypatch.setattr(process, "PER_MEDIA_SECOND_S", 0.25)
    blocks: list[np.ndarray] = []
    with pytest.raises(MediaDecodeError) as info:
        blocks.extend(iter_audio_blocks(m4a(tmp_path), RATE, block_seconds=1.0))
    assert info.value.reason == "decoder timed out after 1.25 s (ffmpeg)"  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.concatenate(blocks), np.full(2 * RATE, 0.25, np.float32))
    assert not alive(fake_pid(fake_bin))


def test_a_slow_consumer_is_not_a_hung_decoder(tmp_path: Path, fake_bin: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer (the encoder, say) sleeps longer than the limit after each block while ffmpeg waits
    on a full pipe (3 s of audio is 96 kB, more than a pipe's buffer): only waits for output count."""
    install(fake_bin, "ffmpeg", WAV_WRITER)
    monkeypatch.setenv("SECONDS_BEFORE", "1")
    monkeypatch.setenv("SECONDS_AFTER", "2")
    monkeypatch.setattr(process, "BASE_LIMIT_S", 1.0)
    monkeypatch.setattr(process, "PER_MEDIA_SECOND_S", 0.1)
    total = 0
    for block in iter_audio_blocks(m4a(tmp_path), RATE, block_seconds=1.0):
        total += block.shape[0]
        time.sleep(1.3)  # longer than the 1.1 s limit of a block
    assert total == 3 * RATE


def test_an_ffprobe_that_never_answers_is_killed(tmp_path: Path, fake_bin: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    install(fake_bin, "ffprobe", HANG)
    monkeypatch.setattr(process, "PROBE_LIMIT_S", 1.0)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    result = decode_file(video, "video", WindowConfig(), VideoConfig(frames=False), 32)
    assert result.error == "decoder timed out after 1 s (ffprobe)"
    assert not alive(fake_pid(fake_bin))

