"""A recording damaged inside its data is decoded around the damage, as a player does, not failed whole; one whose
header was never finished is decoded whole.

libsndfile opens a damaged MP3 and then fails every read from the damaged frame on (mpg123 gives up resyncing:
"Unspecified internal error"), and a FLAC cut short inside a frame fails with "lost sync"; ffmpeg decodes both
(it skips the damaged frames, and a truncated file's frames that are whole). ``media/audio.py`` hands such a file
to ffmpeg and goes on from the sample libsndfile's blocks stopped at. The recordings are real (Debian's CC0
sonic-pi samples), the damage is what a bad copy or an interrupted download leaves.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_runner import dg
from fixtures_media import FFMPEG, needs_ffmpeg
from real_sounds import SAMPLES_DIR, require_real_sounds

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media.audio import iter_audio_blocks, load_audio

RATE = 48_000
TABLA = SAMPLES_DIR / "loop_tabla.flac"  # 10.7 s, 44.1 kHz stereo, CC0


@pytest.fixture
def damaged(tmp_path: Path) -> dict[str, Path]:
    """``intact.mp3`` (the tabla loop as a 128 kbit/s MP3), ``damaged.mp3`` (the same with 2,000 bytes zeroed in
    its middle) and ``truncated.flac`` (the tabla FLAC's first half of its bytes)."""
    require_real_sounds()
    intact = tmp_path / "intact.mp3"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", TABLA, "-b:a", "128k", intact], check=True)
    data = bytearray(intact.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = bytes(2000)
    (tmp_path / "damaged.mp3").write_bytes(bytes(data))
    flac = TABLA.read_bytes()
    (tmp_path / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    return {"intact": intact, "damaged": tmp_path / "damaged.mp3", "truncated": tmp_path / "truncated.flac"}


@needs_ffmpeg
def test_a_damaged_mp3_decodes_around_its_damage(damaged: dict[str, Path]) -> None:
    intact, audio = load_audio(damaged["intact"], RATE), load_audio(damaged["damaged"], RATE)
    assert len(intact) / RATE == pytest.approx(10.67, abs=0.05)
    assert 10.0 < len(audio) / RATE <= len(intact) / RATE  # the damaged frames are skipped, the rest is there
    first = 4 * RATE  # before the damage (the middle of the bytes: about 5.3 s in) the two agree
    assert np.abs(audio[:first] - intact[:first]).max() < 1e-4


@needs_ffmpeg
def test_the_stream_goes_on_from_where_libsndfile_stopped(damaged: dict[str, Path]) -> None:
    """In 0.5 s blocks libsndfile gives the first ~5 s before it fails; ffmpeg's blocks then go on from that
    sample: the stream equals ffmpeg's whole decode (one 10 s read fails at once: every sample is ffmpeg's)."""
    whole = load_audio(damaged["damaged"], RATE)
    blocks = list(iter_audio_blocks(damaged["damaged"], RATE, 0.5))
    assert len(blocks) > 10
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-4


@needs_ffmpeg
def test_a_truncated_flac_decodes_to_the_frames_that_are_there(damaged: dict[str, Path]) -> None:
    full = load_audio(TABLA, RATE)
    part = load_audio(damaged["truncated"], RATE)
    assert 4.0 < len(part) / RATE < 6.0
    body = len(part) - RATE // 100  # the resampler's last 10 ms differ where the stream ends
    assert np.abs(part[:body] - full[:body]).max() < 1e-5  # lossless: the same samples


@needs_ffmpeg
def test_decoding_it_writes_nothing_on_stderr(damaged: dict[str, Path]) -> None:
    """libmpg123's "Note: Trying to resync..." and "error: Giving up resync" lines stay off the terminal (they
    landed in the middle of the index run's progress bar for a file then indexed anyway)."""
    code = ("import sys; from pathlib import Path; from diffgap_search.media.audio import load_audio;"
            f" print(len(load_audio(Path({str(damaged['damaged'])!r}), {RATE})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert (r.stderr, int(r.stdout) > 10 * RATE) == ("", True)


@needs_ffmpeg
def test_a_wav_whose_recorder_never_wrote_its_sizes_decodes_whole(tmp_path: Path) -> None:
    """A recorder that stops mid-take (battery, crash) leaves the RIFF and data sizes at 0: libsndfile reads no
    frame of such a file, ffmpeg reads its data to the end. A WAV that really holds no samples still fails."""
    require_real_sounds()
    intact = tmp_path / "take.wav"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", TABLA, "-c:a", "pcm_s16le", intact], check=True)
    data = bytearray(intact.read_bytes())
    at = data.index(b"data")
    data[4:8] = data[at + 4 : at + 8] = bytes(4)
    unfinished = tmp_path / "unfinished.wav"
    unfinished.write_bytes(bytes(data))
    assert np.array_equal(load_audio(unfinished, RATE), load_audio(intact, RATE))
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes(bytes(data[: at + 8]))
    with pytest.raises(MediaDecodeError) as err:
        load_audio(header_only, RATE)
    assert err.value.reason == "no audio samples decoded"  # type: ignore[attr-defined]


def test_without_ffmpeg_libsndfile_s_reason_stands(damaged: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(MediaDecodeError) as err:
        load_audio(damaged["damaged"], RATE)
    assert err.value.reason == "decoding failed: Unspecified internal error."  # type: ignore[attr-defined]


@needs_ffmpeg
def test_an_index_run_keeps_the_damaged_files(damaged: dict[str, Path], tmp_path: Path, tiny_clap_dir: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for name in ("damaged", "truncated"):
        shutil.copy(damaged[name], library / damaged[name].name)
    r = dg("index", library, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--workers", "1", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["embedded_files"], report["failed"], report["windows_embedded"]) == (2, [], 3)


def test_a_decoder_s_reason_is_its_last_line_that_says_something() -> None:
    """ffmpeg's log ends a run of one repeated error with "Last message repeated N times": a file whose AAC
    stream (in a WAV: ffmpeg muxes it, and cannot read it back) failed with that line as its reason."""
    from diffgap_search.media.process import last_message

    stderr = ("[aac @ 0x5561] channel element 3.9 is not allocated\n"
              "Error while decoding stream #0:0: Invalid data found when processing input\n"
              "    Last message repeated 1 times\n"
              "[aac @ 0x5561] Last message repeated 12 times\n")
    assert last_message(stderr) == "Error while decoding stream #0:0: Invalid data found when processing input"
    assert last_message("  Last message repeated 2 times\n\n") is None


@needs_ffmpeg
def test_a_stream_ffmpeg_cannot_decode_fails_with_its_error(tmp_path: Path) -> None:
    aac_in_wav = tmp_path / "aac_in.wav"  # from the CC0 bell of examples/clips: ffmpeg's stderr ends "Last message ..."
    bell = Path(__file__).resolve().parents[1] / "examples" / "clips" / "bell.ogg"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", bell, "-c:a", "aac", "-f", "wav", aac_in_wav], check=True)
    with pytest.raises(MediaDecodeError) as err:
        load_audio(aac_in_wav, RATE)
    reason = err.value.reason  # type: ignore[attr-defined]
    assert reason.startswith("not decodable audio (") and "Last message repeated" not in reason, reason
