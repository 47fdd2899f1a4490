"""A later ``dgsearch index`` into an index keeps how it was built: window, hop and ``--no-frames``.

The first run names its options; an update names the folder and the index alone, as a cron job or a second
drive's run does. Before, only the models were kept: an index built with ``--window 2`` refused every later
run without ``--window 2`` (exit 6), and one built with ``--no-frames`` loaded CLIP for the next video (exit 5
without the hub). Real aisfx weights, Sonic Pi's CC0 recordings and the example video (its soundtrack only).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cli_runner import dg
from diffgap_search.indexing.models import ModelChoice, run_configs, run_window
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import recorded_frames

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")

CLIPS = Path(__file__).resolve().parents[1] / "examples" / "clips"


def indexed(*args: object) -> dict:
    r = dg("index", *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def windows(ix: Path, name: str) -> list[tuple[float, float]]:
    with sqlite3.connect(ix / "catalog.sqlite") as db:
        return [(round(a, 3), round(b, 3)) for a, b in db.execute(
            "SELECT s.start_s, s.end_s FROM segments s JOIN files f ON f.id = s.file_id WHERE f.path LIKE ?"
            " ORDER BY s.start_s", (f"%/{name}",))]


def test_a_run_that_names_no_window_keeps_the_index_s(tmp_path: Path) -> None:
    lib, ix = tmp_path / "lib", tmp_path / "ix"
    lib.mkdir()
    shutil.copy(CLIPS / "snare.ogg", lib)
    indexed(lib, "--index", ix, "--model", "aisfx", "--window", "2", "--hop", "1")
    shutil.copy(CLIPS / "bell.ogg", lib)  # 6.719 s
    report = indexed(lib, "--index", ix)
    assert report["new"] == 1
    assert windows(ix, "bell.ogg") == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0), (4.0, 6.0), (4.719, 6.719)]
    other = dg("index", lib, "--index", ix, "--window", "5")
    assert other.exit_code == 6
    assert " ".join(other.stderr.split()) == (
        f"dgsearch: error: index {ix} was built with 2 s windows, hop 1 s at 44100 Hz, not 5 s / 5 s: leave out"
        " --window and --hop (a run keeps the index's own), or use another --index")
    assert dg("index", lib, "--index", ix, "--hop", "2").exit_code == 6  # the index's window, another hop
    assert run_window(ix, None, None).window_s == 2.0 and run_window(ix, None, None).hop_s == 1.0
    assert (run_window(tmp_path / "new", None, None).window_s, run_window(tmp_path / "new", 3.0, None).hop_s) == (10.0, 3.0)


def test_a_run_that_names_no_frames_option_keeps_no_frames(tmp_path: Path) -> None:
    lib, ix = tmp_path / "lib", tmp_path / "ix"
    lib.mkdir()
    shutil.copy(CLIPS / "bell_testcard.mp4", lib)
    indexed(lib, "--index", ix, "--model", "aisfx", "--no-frames")
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(lib / "bell_testcard.mp4"), "-c", "copy", str(lib / "remux.mkv")],
                   check=True)  # the same sound and pictures in another container: a new file to embed
    report = indexed(lib, "--index", ix)  # no CLIP here: it would exit 5 had it tried to load it
    assert (report["new"], report["windows_embedded"]) == (1, 1)
    with Catalog.open(ix) as cat:
        assert recorded_frames(cat) is False
        assert cat.stats()["vectors"] == {"audio": 2}
    assert run_configs(ix, ModelChoice())[1].frames is False
    info = json.loads(dg("info", "--index", ix, "--json").stdout)
    assert info["summary"]["video model"] == "- (videos by their soundtracks only: --no-frames)"
    assert run_configs(ix, ModelChoice(frames=True))[1].frames is True  # asked for: not the index's
    assert run_configs(ix, ModelChoice(video_model="cavp"))[1].frames is True  # a video model named: its frames
    assert run_configs(tmp_path / "new", ModelChoice())[1].frames is True


def test_an_index_from_before_the_choice_was_recorded_infers_it(tmp_path: Path) -> None:
    """Videos without a video model were indexed as soundtracks only: --no-frames; an index without videos has
    not chosen (the default, frames, applies). The record taken out as an older run would have left it."""
    for name, inferred in (("bell_testcard.mp4", False), ("crow.ogg", None)):
        lib, ix = tmp_path / name / "lib", tmp_path / name / "ix"
        lib.mkdir(parents=True)
        shutil.copy(CLIPS / name, lib)
        indexed(lib, "--index", ix, "--model", "aisfx", "--no-frames")
        with sqlite3.connect(ix / "catalog.sqlite") as db:
            db.execute("DELETE FROM meta WHERE key = 'frames'")
        with Catalog.open(ix) as cat:
            assert recorded_frames(cat) is inferred
        assert run_configs(ix, ModelChoice())[1].frames is (inferred is not False)
