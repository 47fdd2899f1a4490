"""load_audio / iter_audio_blocks: every format, resampling, downmix, NaN handling, hostile files, streaming."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fixtures_media import write_audio, write_tone

from diffgap_search.config import WindowConfig
from diffgap_search.errors import MediaDecodeError
from diffgap_search.media import audio as audio_mod
from diffgap_search.media import audio_conditioning
from diffgap_search.media.audio import iter_audio_blocks, load_audio
from diffgap_search.media.windows import iter_windows, window_audio

SR = 48_000
LOSSY_PAD = 7_200  # 0.15 s at 48 kHz: AAC priming is 1024 samples (0.128 s at 8 kHz)


def peak_hz(x: np.ndarray, sr: int = SR) -> float:
    mid = x[len(x) // 4 : 3 * len(x) // 4]
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    return float(np.argmax(spectrum) * sr / len(mid))


@pytest.mark.parametrize(
    ("name", "sr", "tolerance"),
    [
        ("tone.wav", 16_000, 1),
        ("tone.flac", 44_100, 1),
        ("tone.ogg", 22_050, 1),
        ("tone.oga", 16_000, 1),
        ("tone.opus", 48_000, 1),
        # lossy codecs pad: mp3 (libsndfile/mpg123) and aac priming add up to ~1-2 codec frames
        ("tone.mp3", 22_050, LOSSY_PAD),
        ("tone.m4a", 44_100, LOSSY_PAD),
    ],
)
def test_formats_decode_to_mono_48k(tmp_path: Path, name: str, sr: int, tolerance: int) -> None:
    path = write_tone(tmp_path / name, 1_000.0, 1.0, sr=sr, channels=2)
    x = load_audio(path, SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - SR) <= tolerance
    assert abs(peak_hz(x) - 1_000.0) < 5.0
    assert 0.4 < float(np.max(np.abs(x))) <= 1.0


@pytest.mark.parametrize(("seconds", "sr"), [(1.0, 8_000), (0.5, 192_000), (1.37, 44_100), (2.0, 11_025)])
def test_resampled_length(tmp_path: Path, seconds: float, sr: int) -> None:
    path = write_tone(tmp_path / "t.wav", 300.0, seconds, sr=sr)
    n_in = sf.info(str(path)).frames
    x = load_audio(path, SR)
    assert abs(len(x) - round(n_in / sr * SR)) <= 1
    assert abs(peak_hz(x) - 300.0) < 5.0


def test_same_rate_is_bit_exact(tmp_path: Path) -> None:
    src = np.random.default_rng(0).uniform(-0.9, 0.9, 4_800).astype(np.float32)
    path = write_audio(tmp_path / "f.wav", src, SR, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, SR), src)


def test_downmix_is_channel_mean_and_nonfinite_become_zero(tmp_path: Path) -> None:
    frames = np.zeros((6, 3), dtype=np.float32)
    frames[:, 0] = [0.3, np.nan, np.inf, 0.9, 0.9, -3.0]
    frames[:, 1] = [0.6, 0.6, 0.6, 0.9, -np.inf, -3.0]
    frames[:, 2] = [0.0, 0.0, 0.0, 1.5, 0.0, -3.0]
    path = write_audio(tmp_path / "odd.wav", frames, SR, subtype="FLOAT")
    x = load_audio(path, SR)
    # mean over channels (NaN/inf in a frame make the frame non-finite -> 0), then clip to [-1, 1]
    np.testing.assert_array_equal(x, np.array([0.3, 0.0, 0.0, 1.0, 0.0, -1.0], dtype=np.float32))


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_downmix_equals_numpys_float64_mean_bit_for_bit(channels: int) -> None:
    frames = (np.random.default_rng(channels).standard_normal((48_000, channels)) * 0.4).astype(np.float32)
    frames[::997] *= 1e-30  # tiny samples beside loud ones
    want = frames.mean(axis=1, dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(audio_conditioning.downmix(frames), want)
    assert audio_conditioning.downmix(frames) is not frames  # a new array: the conditioner clips it in place


def test_hostile_nan_file_is_finite_and_bounded(hostile_files: dict[str, Path]) -> None:
    x = load_audio(hostile_files["nan"], SR)
    assert np.all(np.isfinite(x)) and float(np.max(np.abs(x))) <= 1.0
    assert abs(len(x) - SR) <= 1


def test_eight_channels_mean(hostile_files: dict[str, Path]) -> None:
    x = load_audio(hostile_files["eight_channels"], SR)
    assert abs(len(x) - SR) <= 1
    np.testing.assert_allclose(x[1_000:-1_000], 0.45, atol=1e-3)  # mean of 0.1 .. 0.8


def test_one_sample_file(hostile_files: dict[str, Path]) -> None:
    x = load_audio(hostile_files["one_sample"], SR)
    np.testing.assert_array_equal(x, np.array([0.5], dtype=np.float32))
    windows = window_audio(x, WindowConfig())
    assert len(windows) == 1 and windows.ends.tolist() == [1 / SR]
    np.testing.assert_array_equal(windows.samples[0], np.full(480_000, 0.5, dtype=np.float32))


def test_rates_8k_and_192k(hostile_files: dict[str, Path]) -> None:
    assert abs(len(load_audio(hostile_files["rate_8k"], SR)) - 48_000) <= 1
    assert abs(len(load_audio(hostile_files["rate_192k"], SR)) - 24_000) <= 1


def test_truncated_data_decodes_what_is_there(hostile_files: dict[str, Path]) -> None:
    x = load_audio(hostile_files["truncated_data"], SR)
    assert abs(len(x) - 24_000) <= 1  # 4000 of 8000 samples at 8 kHz


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file (0 bytes)"),
        ("random", "not decodable audio (Invalid data found when processing input)"),
        ("text", "a text file, not audio (Invalid data found when processing input)"),
        ("truncated_header", "not decodable audio (Invalid data found when processing input)"),
        ("zero_frames", "no audio samples decoded"),
        ("no_audio_stream", "no audio stream"),
    ],
)
def test_hostile_files_raise_one_line_reasons(hostile_files: dict[str, Path], name: str, reason: str) -> None:
    if name not in hostile_files:
        pytest.skip("needs ffmpeg")
    path = hostile_files[name]
    with pytest.raises(MediaDecodeError) as info:
        load_audio(path, SR)
    assert str(info.value) == f"{path}: {reason}"
    assert info.value.reason == reason  # type: ignore[attr-defined]
    assert info.value.path == path  # type: ignore[attr-defined]
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError, match=r"nope\.wav: file not found$"):
        load_audio(tmp_path / "nope.wav", SR)
    with pytest.raises(MediaDecodeError, match="not a regular file"):
        load_audio(tmp_path, SR)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tone(tmp_path / "locked.wav", 440.0, 0.1, sr=8_000)

    def deny(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(audio_mod, "open", deny, raising=False)
    with pytest.raises(MediaDecodeError, match=r"locked\.wav: permission denied$"):
        load_audio(path, SR)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_for_real(tmp_path: Path) -> None:
    path = write_tone(tmp_path / "locked.wav", 440.0, 0.1, sr=8_000)
    path.chmod(0)
    with pytest.raises(MediaDecodeError, match="permission denied"):
        load_audio(path, SR)


def test_missing_ffmpeg_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.m4a"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    monkeypatch.setattr(audio_mod.shutil, "which", lambda _name: None)
    with pytest.raises(MediaDecodeError) as info:
        load_audio(path, SR)
    reason = "needs ffmpeg, which is not installed: install ffmpeg to decode .m4a"
    assert info.value.reason == reason  # type: ignore[attr-defined]


def test_odd_file_names_decode(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"odd \xe9 'name'\n.wav")
    src = write_tone(tmp_path / "src.wav", 440.0, 0.2, sr=8_000)
    os.rename(src, raw)
    assert abs(len(load_audio(Path(os.fsdecode(raw)), SR)) - 9_600) <= 1
    m4a = write_tone(tmp_path / "src.m4a", 440.0, 0.2, sr=8_000)
    raw_m4a = os.path.join(os.fsencode(tmp_path), b"-odd \xe9:name.m4a")
    os.rename(m4a, raw_m4a)
    assert len(load_audio(Path(os.fsdecode(raw_m4a)), SR)) > 9_000


@pytest.mark.parametrize("suffix", [".wav", ".m4a"])
def test_blocks_concatenate_to_load_audio_and_window_alike(tmp_path: Path, suffix: str) -> None:
    path = write_tone(tmp_path / f"t{suffix}", 500.0, 7.3, sr=22_050)
    whole = load_audio(path, SR)
    blocks = list(iter_audio_blocks(path, SR, block_seconds=1.0))
    assert len(blocks) >= 7 and all(b.dtype == np.float32 and b.ndim == 1 and b.size for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    cfg = WindowConfig(window_s=2.0, hop_s=1.5)
    expected = window_audio(whole, cfg)
    streamed = list(iter_windows(iter_audio_blocks(path, SR, block_seconds=0.7), cfg))
    assert len(streamed) == len(expected)
    for (samples, start, end), row, s, e in zip(streamed, expected.samples, expected.starts, expected.ends):
        np.testing.assert_array_equal(samples, row)
        assert (start, end) == (s, e)


@pytest.mark.parametrize("suffix", [".wav", ".m4a"])
def test_long_file_streams_in_bounded_memory(tmp_path: Path, suffix: str) -> None:
    seconds = 120.0  # 23 MB as float32 at 48 kHz; streamed in 1 s blocks
    path = write_tone(tmp_path / f"long{suffix}", 440.0, seconds, sr=8_000)
    total = 0
    tracemalloc.start()
    try:
        for block in iter_audio_blocks(path, SR, block_seconds=1.0):
            total += len(block)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(total - seconds * SR) <= (1 if suffix == ".wav" else LOSSY_PAD)
    assert peak < 3_000_000


def test_stopping_early_releases_ffmpeg(tmp_path: Path) -> None:
    path = write_tone(tmp_path / "t.m4a", 440.0, 5.0, sr=8_000)
    gen = iter_audio_blocks(path, SR, block_seconds=0.5)
    assert next(gen).size > 0
    gen.close()  # kills and reaps the subprocess; no exception, no zombie
