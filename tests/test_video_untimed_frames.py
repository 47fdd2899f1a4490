"""Videos whose frames decord cannot place in time: DivX/Xvid-style AVIs (MPEG-4 with B-frames) and MPEG program
streams leave frames without a timestamp (``media/frame_times``); they are sampled by ffmpeg instead
(``media/ffmpeg_frames``), with the right duration, never the 3.7e17 s that made a window list exhaust memory.

The videos are real encodes by ffmpeg's own MPEG-4 and MPEG-2 encoders of grey-coded frames (frame i is grey
level 8·i), so every sampled picture says which source frame it is.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fixtures_video import GREY_FPS, ffmpeg, grey_index, make_grey_video
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import WindowConfig
from diffgap_search.media.ffmpeg_frames import FfmpegFrameSampler
from diffgap_search.media.frame_times import frame_times
from diffgap_search.media.video import iter_frame_windows, open_frames, probe_video, window_bounds

NOPTS_AVI = -3.6893488147419103e17  # AV_NOPTS_VALUE in a 1/25 s time base, as decord reports it
ENCODES = {"xvid.avi": ["-c:v", "mpeg4", "-bf", "2", "-q:v", "1"],
           "program.mpg": ["-c:v", "mpeg2video", "-bf", "2", "-q:v", "1"]}


@pytest.fixture(scope="module")
def untimed_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{name: path}``: the 25-frame, 10 fps grey video (2.5 s) encoded with B-frames as AVI and MPEG-PS."""
    folder = tmp_path_factory.mktemp("untimed")
    source = make_grey_video(folder / "source.mp4")
    out = {}
    for name, codec in ENCODES.items():
        ffmpeg("-i", str(source), *codec, "-an", str(folder / name))
        out[name] = folder / name
    return out


def test_frames_without_a_timestamp_are_set_apart() -> None:
    stamps = np.array([[NOPTS_AVI, NOPTS_AVI], [NOPTS_AVI, NOPTS_AVI], [0.08, 0.12], [0.12, 0.16], [0.2, 0.24]])
    times = frame_times(stamps)
    assert times.indices.tolist() == [2, 3, 4] and times.untimed == 2
    assert np.allclose(times.starts, [0.0, 0.04, 0.12]) and times.end_s == pytest.approx(0.16)
    assert times.last_end_s == pytest.approx(0.24)
    none = frame_times(np.full((4, 2), NOPTS_AVI))  # nothing timed (the video is then timed by its frame count)
    assert none.indices.tolist() == [] and none.starts.tolist() == []
    assert (none.end_s, none.last_end_s, none.untimed) == (0.0, 0.0, 4)
    timed = frame_times(np.array([[0.5, 0.6], [0.6, 0.7]]))  # an ordinary video: as decord says
    assert timed.indices.tolist() == [0, 1] and np.allclose(timed.starts, [0.0, 0.1]) and timed.untimed == 0


@pytest.mark.parametrize("name", sorted(ENCODES))
def test_an_untimed_video_is_sampled_by_ffmpeg_within_a_frame(untimed_videos: dict[str, Path], name: str) -> None:
    import decord

    path = untimed_videos[name]
    stamps = np.asarray(decord.VideoReader(str(path)).get_frame_timestamp(list(range(25))))
    assert (np.abs(stamps[:, 0]) > 1e9).sum() >= 5  # the premise: decord has frames it cannot time here
    info = probe_video(path)
    assert (info.n_frames, info.fps, info.duration_s) == (25, 10.0, pytest.approx(2.5))  # was 3.7e17 s / 1.0e14 s
    assert isinstance(open_frames(path, size=None), FfmpegFrameSampler)
    for cfg in (WindowConfig(window_s=1.0, hop_s=0.5), WindowConfig(window_s=1.0, hop_s=1.0)):
        windows = list(iter_frame_windows(path, cfg, fps=4.0, size=None))
        assert [(w.start_s, w.end_s) for w in windows] == window_bounds(2.5, cfg)
        got = np.concatenate([grey_index(w.frames) for w in windows])
        times = np.concatenate([w.times_s for w in windows])
        on_screen = np.minimum(np.floor(times * GREY_FPS + 1e-9).astype(int), 24)
        # measured: the program stream exact; the AVI one frame early in windows after a seek (ffmpeg's timing
        # of packed B-frames), two at one sample of its first window
        assert np.abs(got - on_screen).max() <= 2, (got - on_screen).tolist()
        assert windows[0].frames.shape == (4, 24, 32, 3) and windows[0].frames.dtype == np.uint8
    cropped = next(iter_frame_windows(path, WindowConfig(window_s=1.0, hop_s=1.0), fps=4.0, size=16))
    assert cropped.frames.shape == (4, 16, 16, 3)


def test_an_untimed_video_indexes_with_its_frames(untimed_videos: dict[str, Path], tmp_path: Path,
                                                  tiny_clap_dir: Path, tiny_clip_dir: Path) -> None:
    folder = tmp_path / "lib"
    folder.mkdir()
    for name, path in untimed_videos.items():
        (folder / name).write_bytes(path.read_bytes())
    ix = tmp_path / "ix"
    r = CliRunner().invoke(app, ["index", str(folder), "--index", str(ix), "--model", str(tiny_clap_dir),
                                 "--video-model", str(tiny_clip_dir), "--workers", "0", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["embedded_files"], report["failed"]) == (2, [])
    rows = sqlite3.connect(ix / "catalog.sqlite").execute(
        "SELECT f.path, s.start_s, s.end_s, group_concat(v.space) FROM segments s JOIN files f ON f.id = s.file_id"
        " JOIN vectors v ON v.segment_id = s.id GROUP BY s.id ORDER BY f.path").fetchall()
    assert [(Path(p).name, a, b, space) for p, a, b, space in rows] == [
        ("program.mpg", 0.0, pytest.approx(2.5), "video"), ("xvid.avi", 0.0, pytest.approx(2.5), "video")]


HANG = """#!/bin/sh
echo $$ > "$DGS_FAKE_PID.tmp" && mv "$DGS_FAKE_PID.tmp" "$DGS_FAKE_PID"
exec sleep 600
"""


def test_an_ffmpeg_that_never_answers_is_killed(untimed_videos: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    from process_watch import alive

    from diffgap_search.errors import MediaDecodeError
    from diffgap_search.media import process

    path = untimed_videos["xvid.avi"]
    sampler = open_frames(path, size=16)  # probed by the real ffprobe and decord
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ffmpeg").write_text(HANG)
    (fake / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DGS_FAKE_PID", str(tmp_path / "fake.pid"))
    monkeypatch.setattr(process, "BASE_LIMIT_S", 1.0)
    monkeypatch.setattr(process, "PER_MEDIA_SECOND_S", 0.0)
    started = time.monotonic()
    with pytest.raises(MediaDecodeError) as info:
        sampler.window(0.0, 1.0)
    assert 1.0 <= time.monotonic() - started < 10.0
    assert str(info.value) == f"{path}: decoder timed out after 1 s (ffmpeg)"
    assert not alive(int((tmp_path / "fake.pid").read_text()))
