"""An index built with ``--no-frames`` switched to ``--frames``: its older videos get their frame vectors.

The first run indexed videos by their soundtracks only; the run that asks for frames embeds them for the videos
it adds and, once, for the videos already indexed (their windows decoded again, nothing else re-embedded), so
every video answers ``--video`` queries alike. Later runs keep frames on and embed nothing more. A tiny CLAP
and a tiny CLIP vision model of the real classes, real ffmpeg-made videos of different lengths.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cli_runner import dg
from fixtures_media import tone, write_audio
from fixtures_video import make_testsrc, make_tiny_clip_vision


def vectors(ix: Path) -> dict[tuple[str, str], bytes]:
    """(file name, space) -> the window vectors' bytes in window order."""
    with sqlite3.connect(ix / "catalog.sqlite") as db:
        rows = db.execute("SELECT f.path, v.space, v.vector FROM vectors v JOIN segments s ON s.id = v.segment_id"
                          " JOIN files f ON f.id = s.file_id ORDER BY f.path, v.space, s.seq").fetchall()
    out: dict[tuple[str, str], bytes] = {}
    for path, space, vec in rows:
        key = (Path(path).name, space)
        out[key] = out.get(key, b"") + bytes(vec)
    return out


def run(*args: object) -> dict:
    r = dg("index", *args, "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_frames_switched_on_fill_the_older_videos(tmp_path: Path, tiny_clap_dir: Path) -> None:
    clip = make_tiny_clip_vision(tmp_path / "clip", seed=0, projection_dim=16)
    lib, ix = tmp_path / "lib", tmp_path / "ix"
    lib.mkdir()
    write_audio(lib / "tone.wav", tone(440.0, 1.0, 8_000), 8_000)
    make_testsrc(lib / "one.mkv", seconds=1.0, size="32x32", rate=4)
    make_testsrc(lib / "two.mkv", seconds=2.0, size="32x32", rate=4)
    run(lib, "--index", ix, "--model", tiny_clap_dir, "--no-frames")
    before = vectors(ix)
    assert sorted(before) == [("one.mkv", "audio"), ("tone.wav", "audio"), ("two.mkv", "audio")]

    make_testsrc(lib / "three.mkv", seconds=3.0, size="32x32", rate=4)
    report = run(lib, "--index", ix, "--frames", "--video-model", clip)
    assert report["new"] == 1
    assert report["windows_embedded"] == 1 + 2  # three.mkv's one window, then one window of each older video
    after = vectors(ix)
    assert sorted(after) == [("one.mkv", "audio"), ("one.mkv", "video"), ("three.mkv", "audio"),
                             ("three.mkv", "video"), ("tone.wav", "audio"), ("two.mkv", "audio"), ("two.mkv", "video")]
    assert all(after[key] == vec for key, vec in before.items())  # nothing else embedded again
    assert len(after[("one.mkv", "video")]) == len(after[("three.mkv", "video")]) == 16 * 4  # (1, 16) float32

    again = run(lib, "--index", ix)  # frames kept on; nothing left to fill
    assert (again["new"], again["windows_embedded"]) == (0, 0)
    make_testsrc(lib / "four.mkv", seconds=4.0, size="32x32", rate=4)
    run(lib, "--index", ix)
    assert ("four.mkv", "video") in vectors(ix)
    info = json.loads(dg("info", "--index", ix, "--json").stdout)
    assert info["summary"]["video model"].startswith(f"{clip}, weights sha256 ")
