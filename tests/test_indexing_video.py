"""Videos in an index: soundtracks searchable like audio, frames embedded per window, pairs kept."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from fixtures_video import make_testsrc
from typer.testing import CliRunner

from diffgap_search.cli.app import app

runner = CliRunner()


@pytest.fixture
def mixed_dir(clips_dir: Path) -> Path:
    """clips_dir plus a 12 s video with a soundtrack (2 windows) and a 3 s silent video."""
    make_testsrc(clips_dir / "scene.mkv", seconds=12.0, size="64x48", rate=5)
    make_testsrc(clips_dir / "silent.mp4", seconds=3.0, size="64x48", rate=5, audio=False)
    return clips_dir


def test_mixed_folder_indexes_soundtracks_and_frames(mixed_dir: Path, tmp_path: Path, tiny_clap_dir: Path,
                                                     tiny_clip_dir: Path) -> None:
    ix = tmp_path / "ix"
    r = runner.invoke(app, ["index", str(mixed_dir), "--index", str(ix), "--model", str(tiny_clap_dir),
                            "--video-model", str(tiny_clip_dir), "--workers", "0", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["embedded_files"], report["windows_embedded"], report["failed"]) == (7, 10, [])
    conn = sqlite3.connect(ix / "catalog.sqlite")
    spaces = conn.execute(
        "SELECT f.path, s.start_s, s.end_s, group_concat(v.space) FROM segments s JOIN files f ON f.id = s.file_id"
        " JOIN vectors v ON v.segment_id = s.id WHERE f.kind = 'video' GROUP BY s.id ORDER BY f.path, s.start_s"
    ).fetchall()
    conn.close()
    assert [(os.path.basename(p), a, b, ",".join(sorted(sp.split(",")))) for p, a, b, sp in spaces] == [
        ("scene.mkv", 0.0, 10.0, "audio,video"),
        ("scene.mkv", 2.0, 12.0, "audio,video"),  # the last window ends at the clip's end
        ("silent.mp4", 0.0, 3.0, "video"),
    ]
    info = json.loads(runner.invoke(app, ["info", "--index", str(ix), "--json"]).stdout)["summary"]
    assert (info["video files"], info["videos without soundtrack"], info["audio files"]) == (2, 1, 5)
    assert "video (3 vectors" in info["vector spaces"]
    # the soundtrack is searchable like audio, with its window's seconds; --kind video keeps only videos
    hits = json.loads(runner.invoke(app, ["query", "--audio", str(mixed_dir / "scene.mkv"), "--start", "2",
                                          "--index", str(ix), "--segments", "--json", "-k", "1"]).stdout)["hits"]
    assert (os.path.basename(hits[0]["path"]), hits[0]["start_s"], hits[0]["end_s"]) == ("scene.mkv", 2.0, 12.0)
    only = json.loads(runner.invoke(app, ["query", "a beep", "--kind", "video", "--index", str(ix), "--json"]).stdout)
    assert [os.path.basename(h["path"]) for h in only["hits"]] == ["scene.mkv"]
    # second run: nothing to embed, no model of either kind needed
    again = runner.invoke(app, ["index", str(mixed_dir), "--index", str(ix), "--workers", "0"])
    assert again.exit_code == 0 and "nothing to embed (7 unchanged" in again.stdout


def test_no_frames_indexes_soundtracks_only_and_silent_video_fails(mixed_dir: Path, tmp_path: Path,
                                                                   tiny_clap_dir: Path) -> None:
    r = runner.invoke(app, ["index", str(mixed_dir), "--index", str(tmp_path / "ix"), "--model", str(tiny_clap_dir),
                            "--no-frames", "--video-model", str(tmp_path / "no-such-model"), "--workers", "0",
                            "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["embedded_files"] == 6
    assert [(os.path.basename(f["path"]), f["error"]) for f in report["failed"]] == [
        ("silent.mp4", "a video without a soundtrack, and frames are off (--no-frames)")
    ]


def test_missing_video_model_fails_fast(mixed_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    r = runner.invoke(app, ["index", str(mixed_dir), "--index", str(tmp_path / "ix"), "--model", str(tiny_clap_dir),
                            "--video-model", str(tmp_path / "absent-model"), "--workers", "0"])
    assert r.exit_code == 5
    assert r.stderr.splitlines()[-1].startswith("dgsearch: error: ")
    assert not (tmp_path / "ix" / "audio.1.faiss").exists()
