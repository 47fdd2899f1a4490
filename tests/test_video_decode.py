"""Video decoding: window alignment to the frame, the soundtrack, geometry, rotation, VFR, bad inputs, memory."""

from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from fixtures_video import FFMPEG, GREY_FPS, VFR_STARTS, grey_index, make_testsrc

from diffgap_search.config import WindowConfig
from diffgap_search.errors import MediaDecodeError
from diffgap_search.media.audio import load_audio
from diffgap_search.media.video import (
    iter_frame_windows,
    probe_video,
    sample_times,
    window_bounds,
)
from diffgap_search.media.windows import window_audio


def _ffmpeg_first_frame(path: Path, w: int, h: int) -> np.ndarray:
    """Frame 0 as ffmpeg shows it (rotation applied), ``(h, w, 3) uint8``."""
    cmd = [FFMPEG, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


# --- windows and sample times -------------------------------------------------------------------


@pytest.mark.parametrize("duration", [0.3, 1.0, 2.5, 3.0, 7.77, 10.0, 10.01, 31.4])
@pytest.mark.parametrize(("window", "hop"), [(1.0, 1.0), (1.0, 0.5), (10.0, 10.0), (10.0, 2.5), (3.0, 2.0)])
def test_window_bounds_equal_the_audio_windows(duration: float, window: float, hop: float) -> None:
    cfg = WindowConfig(window_s=window, hop_s=hop, sample_rate=1000)
    audio = window_audio(np.zeros(int(round(duration * 1000)), np.float32), cfg)
    bounds = window_bounds(duration, cfg)
    assert [b[0] for b in bounds] == audio.starts.tolist()
    assert [b[1] for b in bounds] == audio.ends.tolist()


def test_sample_times_are_slot_centres_inside_the_window() -> None:
    assert np.allclose(sample_times(0.0, 10.0, 4.0), (np.arange(40) + 0.5) / 4)
    assert np.allclose(sample_times(5.0, 8.3, 4.0), 5.0 + (np.arange(13) + 0.5) / 4)
    assert np.allclose(sample_times(2.0, 2.05, 4.0), [2.125])  # shorter than half a slot: one sample
    assert np.allclose(sample_times(0.0, 2.5, 4.0), (np.arange(10) + 0.5) / 4)


# --- alignment to the frame ---------------------------------------------------------------------


@pytest.mark.parametrize(("window", "hop", "fps"), [(1.0, 0.5, 4.0), (1.0, 1.0, 4.0), (10.0, 10.0, 3.0), (1.0, 1.0, 20.0)])
def test_each_window_samples_exactly_the_frame_on_screen(grey_video: Path, window: float, hop: float, fps: float) -> None:
    cfg = WindowConfig(window_s=window, hop_s=hop)
    info = probe_video(grey_video)
    assert (info.n_frames, info.fps, info.width, info.height) == (25, 10.0, 32, 24)
    assert info.duration_s == pytest.approx(2.5, abs=1e-6)
    windows = list(iter_frame_windows(grey_video, cfg, fps=fps, size=None))
    assert [(w.start_s, w.end_s) for w in windows] == window_bounds(info.duration_s, cfg)
    for w in windows:
        times = w.start_s + (np.arange(w.frames.shape[0]) + 0.5) / fps
        assert np.allclose(w.times_s, times)
        assert np.all(w.times_s < w.end_s)
        expected = np.minimum(np.floor(times * GREY_FPS + 1e-9).astype(int), 24)
        assert grey_index(w.frames).tolist() == expected.tolist()
        assert w.frame_indices.tolist() == expected.tolist()
        assert w.frames.shape[1:] == (24, 32, 3) and w.frames.dtype == np.uint8


def test_window_layout_for_a_known_clip(grey_video: Path) -> None:
    windows = list(iter_frame_windows(grey_video, WindowConfig(window_s=1.0, hop_s=1.0), fps=4.0, size=16))
    assert [(w.start_s, w.end_s) for w in windows] == [(0.0, 1.0), (1.0, 2.0), (1.5, 2.5)]  # ends at the end
    assert [grey_index(w.frames).tolist() for w in windows] == [[1, 3, 6, 8], [11, 13, 16, 18], [16, 18, 21, 23]]
    assert windows[0].frames.shape == (4, 16, 16, 3)


def test_duration_override_cuts_the_soundtracks_windows(grey_video: Path) -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=1.0)
    windows = list(iter_frame_windows(grey_video, cfg, fps=4.0, size=8, duration_s=3.2))
    assert [(w.start_s, w.end_s) for w in windows] == window_bounds(3.2, cfg)
    assert (windows[-1].start_s, windows[-1].end_s) == (2.2, 3.2)
    assert grey_index(windows[-1].frames).tolist() == [23, 24, 24, 24]  # past the last frame: the last frame


def test_variable_frame_rate_is_sampled_by_time(vfr_video: Path) -> None:
    windows = list(iter_frame_windows(vfr_video, WindowConfig(), fps=4.0, size=None))
    assert len(windows) == 1
    w = windows[0]
    expected = np.searchsorted(np.asarray(VFR_STARTS), w.times_s, side="right") - 1
    assert grey_index(w.frames).tolist() == expected.tolist()
    # by index at the average rate it would differ: at t = 2.125 s the screen shows frame 12, not ~9
    assert expected[8] == 12


# --- geometry and rotation ----------------------------------------------------------------------


def test_odd_size_keeps_aspect_and_crops_the_centre(odd_size_video: Path) -> None:
    info = probe_video(odd_size_video)
    assert (info.width, info.height, info.rotation) == (175, 97, 0)
    cfg = WindowConfig(window_s=1.0, hop_s=1.0)
    native = next(iter(iter_frame_windows(odd_size_video, cfg, size=None))).frames
    assert native.shape == (4, 97, 175, 3)
    for size in (32, 224):
        frames = next(iter(iter_frame_windows(odd_size_video, cfg, size=size))).frames
        assert frames.shape == (4, size, size, 3) and frames.flags.c_contiguous


@pytest.mark.parametrize("degrees", [180, 270])
def test_other_rotations_match_ffmpeg(tmp_path: Path, marker_video: Path, degrees: int) -> None:
    rotated = tmp_path / f"rot{degrees}.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-i", str(marker_video), "-c", "copy", "-metadata:s:v",
                    f"rotate={degrees}", str(rotated)], check=True)  # fmt: skip
    info = probe_video(rotated)
    w, h = (info.width, info.height)
    assert (w, h) == ((64, 48) if degrees == 180 else (48, 64))
    frames = next(iter(iter_frame_windows(rotated, WindowConfig(), fps=4.0, size=None))).frames
    assert frames.shape[1:] == (h, w, 3)
    reference = _ffmpeg_first_frame(rotated, w, h).astype(int)
    assert np.abs(frames[0].astype(int) - reference).mean() < 8


def test_rotation_metadata_is_applied(rotated_video: Path) -> None:
    info = probe_video(rotated_video)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    frames = next(iter(iter_frame_windows(rotated_video, WindowConfig(), fps=4.0, size=None))).frames
    assert frames.shape[1:] == (64, 48, 3)
    reference = _ffmpeg_first_frame(rotated_video, 48, 64).astype(int)
    assert np.abs(frames[0].astype(int) - reference).mean() < 8
    square = next(iter(iter_frame_windows(rotated_video, WindowConfig(), fps=4.0, size=32))).frames
    assert square.shape == (4, 32, 32, 3)


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".webm", ".mov", ".avi"])
def test_every_container_decodes_with_its_soundtrack(tmp_path: Path, ext: str) -> None:
    path = make_testsrc(tmp_path / f"clip{ext}", seconds=1.0)
    windows = list(iter_frame_windows(path, WindowConfig(), fps=4.0, size=32))
    assert len(windows) == 1 and windows[0].frames.shape == (4, 32, 32, 3)
    audio = load_audio(path, 16_000)
    assert audio is not None and abs(audio.shape[0] - 16_000) <= 1100


# --- soundtrack ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [16_000, 48_000])
def test_soundtrack_is_mono_float32_of_the_right_length(video_with_sound: Path, sr: int) -> None:
    audio = load_audio(video_with_sound, sr)
    assert audio is not None and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - round(3.0 * sr)) <= sr // 100
    spectrum = np.abs(np.fft.rfft(audio[: sr]))
    assert np.argmax(spectrum) * sr / sr == pytest.approx(440, abs=2)  # 1 s window: bins are 1 Hz


def test_aac_soundtrack_length_within_codec_padding(video_aac: Path) -> None:
    audio = load_audio(video_aac, 16_000)
    assert audio is not None and abs(audio.shape[0] - 48_000) <= 2048


def test_silent_video_has_no_soundtrack(video_silent: Path) -> None:
    assert probe_video(video_silent).has_audio is False
    with pytest.raises(MediaDecodeError) as err:
        load_audio(video_silent, 16_000)
    assert str(err.value) == f"{video_silent}: no audio stream"


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("empty_mp4", "empty file (0 bytes)"),
        ("garbage_mp4", "not a media file (unrecognised data)"),
        ("truncated_mp4", "truncated or damaged file: MP4/MOV index (moov atom) missing"),
        ("audio_only_mp4", "no video stream (audio-only file)"),
    ],
)
def test_bad_input_gives_one_line_reason(request: pytest.FixtureRequest, fixture: str, reason: str) -> None:
    path: Path = request.getfixturevalue(fixture)
    for call in (lambda: probe_video(path), lambda: list(iter_frame_windows(path, WindowConfig()))):
        with pytest.raises(MediaDecodeError) as err:
            call()
        assert str(err.value) == f"{path}: {reason}"


def test_truncated_faststart_file_is_detected(truncated_faststart_mp4: Path) -> None:
    with pytest.raises(MediaDecodeError) as err:
        probe_video(truncated_faststart_mp4)
    pattern = rf"{re.escape(str(truncated_faststart_mp4))}: truncated file: video frames stop at \d+\.\d\d s of 10\.00 s"
    assert re.fullmatch(pattern, str(err.value))


def test_file_cut_mid_packet_is_reported_truncated(damaged_faststart_mp4: Path) -> None:
    with pytest.raises(MediaDecodeError) as err:
        list(iter_frame_windows(damaged_faststart_mp4, WindowConfig()))
    assert str(err.value).startswith(f"{damaged_faststart_mp4}: truncated")
    assert "\n" not in str(err.value)


def test_missing_file_and_soundtrack_errors(tmp_path: Path, garbage_mp4: Path) -> None:
    with pytest.raises(MediaDecodeError, match="no such file$"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(MediaDecodeError) as err:
        load_audio(garbage_mp4, 16_000)
    assert str(err.value) == f"{garbage_mp4}: not decodable audio (Invalid data found when processing input)"
    with pytest.raises(ValueError):
        iter_frame_windows(garbage_mp4, WindowConfig(), fps=0)
    with pytest.raises(MediaDecodeError):
        iter_frame_windows(garbage_mp4, WindowConfig())  # raised at the call, not at the first next()


# --- memory and laziness ------------------------------------------------------------------------


def test_long_video_streams_with_bounded_memory(long_video: Path) -> None:
    cfg = WindowConfig(window_s=10.0, hop_s=10.0)
    window_bytes = 40 * 64 * 64 * 3
    tracemalloc.start()
    try:
        count = 0
        for w in iter_frame_windows(long_video, cfg, fps=4.0, size=64):
            assert w.frames.shape == (40, 64, 64, 3)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 60
    assert peak < 4 * window_bytes  # the whole video would be 60 windows


def test_media_video_imports_no_heavy_modules() -> None:
    code = "import sys, diffgap_search.media.video; print(sorted({'decord','torch','transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
