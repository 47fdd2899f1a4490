"""The dgsearch command line, through typer's CliRunner and through a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import dg

from diffgap_search.info import library_folder
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.lock import writer_lock


def test_index_then_query_then_info(cli_index: Path, clips_dir: Path, tiny_clap_dir: Path) -> None:
    again = dg("index", clips_dir, "--index", cli_index, "--workers", "0")
    assert again.exit_code == 0
    assert again.stdout.startswith(f"index {cli_index} is up to date: 5 files found, nothing to embed (5 unchanged")
    r = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["query_kind"] == "audio"
    assert [os.path.basename(h["path"]) for h in doc["hits"]][0] == "dog_bark.wav"
    assert (doc["hits"][0]["start_s"], doc["hits"][0]["end_s"], doc["hits"][0]["caption"]) == (0.0, 3.0, "a dog barks")
    assert len(doc["hits"]) == 5
    lines = dg("query", "a siren", "--index", cli_index, "--jsonl", "-k", "2").stdout.splitlines()
    assert len(lines) == 2 and {"path", "score", "start_s", "end_s", "caption"} <= set(json.loads(lines[0]))
    paths = dg("query", "a siren", "--index", cli_index, "--paths", "--glob", "*.wav").stdout.splitlines()
    assert sorted(os.path.basename(p) for p in paths) == ["dog_bark.wav", "siren.wav"]
    table = dg("query", "rain", "--index", cli_index, "-k", "3")
    assert table.exit_code == 0 and "score" in table.stdout and table.stdout.count(".flac") <= 1
    info = json.loads(dg("info", "--index", cli_index, "--json").stdout)
    assert (info["summary"]["files"], info["summary"]["segments"], info["summary"]["dim"]) == (5, 7, 32)
    assert info["summary"]["model"] == str(tiny_clap_dir)
    assert info["summary"]["library folder"] == str(clips_dir.resolve())  # the deepest folder holding every file


@pytest.mark.parametrize(("bounds", "folder"), [
    (None, "-"),
    (("/sfx/a/x.wav", "/sfx/b/y.wav"), "/sfx"),
    (("/sfx/ab/x.wav", "/sfx/ac/y.wav"), "/sfx"),  # a shared start of two names is not a folder
    (("/sfx/a/x.wav", "/sfx/a/x.wav"), "/sfx/a"),  # one file: its folder
    (("/sfx/a.wav", "/sfx/a.wav.d/x.wav"), "/sfx"),
    (("/a/x.wav", "/b/y.wav"), "/"),
])
def test_library_folder_from_the_first_and_last_paths(bounds: tuple[str, str] | None, folder: str) -> None:
    assert library_folder(bounds) == folder


def test_path_bounds_are_the_first_and_last_ok_files_in_byte_order(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "ix", create=True) as cat:
        assert cat.path_bounds() is None
        with cat.batch():
            for i, path in enumerate(["/lib/b/k.wav", "/lib/a/z.wav", "/lib/c/\u00e9t\u00e9.wav", "/lib/0/bad.wav"]):
                cat.put_file(path_key=os.fsencode(path), path=path, kind="audio", size=1, mtime_ns=i, sha256=f"{i:064x}",
                             duration_s=1.0, error="unreadable" if path.endswith("bad.wav") else None)
        assert cat.path_bounds() == ("/lib/a/z.wav", "/lib/c/\u00e9t\u00e9.wav")


def test_failed_files_are_listed_and_info_errors_shows_them(clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    (clips_dir / "bad.wav").write_text("this is text")
    r = dg("index", clips_dir, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 0
    # the bad file is one of the new ones: the summary says it failed, the list says why
    assert r.stdout.startswith("indexed 5 files (6 new, 0 changed, 1 failed): 7 windows")
    assert "\n1 file could not be indexed:\n" in r.stdout
    assert f"{clips_dir / 'bad.wav'}: a text file, not audio" in r.stdout
    errors = dg("info", "--index", tmp_path / "ix", "--errors")
    assert errors.stdout.startswith(f"{clips_dir / 'bad.wav'}: a text file, not audio")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["query", "dog", "--index", "{tmp}/none"], 4, "no index at {tmp}/none: run `dgsearch index FOLDER --index"),
        (["query", "  ", "--index", "{ix}"], 2, "the query is empty"),
        (["query", "--audio", "{tmp}/nope.wav", "--index", "{ix}"], 3, "query file not found: {tmp}/nope.wav"),
        (["query", "--video", "{tmp}/in.mp4", "--index", "{ix}"], 3, "query file not found: {tmp}/in.mp4"),
        (["query", "--audio", "{clips}", "--index", "{ix}"], 2, "--audio takes one file, and {clips} is a folder"),
        (["query", "--video", "{clips}/dog_bark.txt", "--index", "{ix}"], 10, "video -> audio search needs a DiffGAP"),
        (["query", "a", "--audio", "{tmp}/x.wav", "--index", "{ix}"], 2, "give exactly one query"),
        (["query", "a", "--kind", "midi", "--index", "{ix}"], 2, "--kind must be 'audio' or 'video', got 'midi'"),
        (["query", "dog", "--start", "3", "--index", "{ix}"], 2,
         "--start and --end cut a query file: give --audio FILE or --video FILE with them"),
        (["query", "--like", "1", "--end", "3", "--index", "{ix}"], 2, "--start and --end cut a query file"),
        (["query", "--audio", "{clips}/dog_bark.wav", "--start", "3", "--end", "2", "--index", "{ix}"], 2,
         "--end (2 s) must come after --start (3 s)"),
        (["query", "--audio", "{clips}/dog_bark.wav", "--start", "100", "--index", "{ix}"], 11,
         "{clips}/dog_bark.wav: the file ends before --start 100 s"),
        (["index", "{tmp}/absent", "--index", "{ix}"], 3, "no such file or folder: {tmp}/absent"),
        (["info", "--index", "{tmp}/none"], 4, "no index at {tmp}/none"),
        (["index", "{clips}", "--index", "{ix}", "--window", "5", "--workers", "0"], 6, "index {ix} was built with 10 s windows, hop 10 s at 48000 Hz, not 5 s / 5 s"),
        (["index", "{clips}", "--index", "{ix}", "--hop", "20"], 2, "hop must be between 0.05 s and the window (10 s), got 20"),
    ],
)
def test_errors_have_one_line_and_their_exit_code(cli_index: Path, clips_dir: Path, tmp_path: Path,
                                                  args: list[str], code: int, message: str) -> None:
    fill = {"tmp": str(tmp_path), "ix": str(cli_index), "clips": str(clips_dir)}
    r = dg(*[a.format(**fill) for a in args])
    assert r.exit_code == code, r.output
    assert r.stderr.startswith("dgsearch: error: " + message.format(**fill))
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output


def test_model_errors(clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path, cli_index: Path) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_clap_dir, broken)
    (broken / "model.safetensors").unlink()
    r = dg("index", clips_dir, "--index", tmp_path / "other", "--model", broken, "--workers", "0")
    assert r.exit_code == 5 and r.stderr.startswith("dgsearch: error: ") and "model.safetensors" in r.stderr
    from fixtures_models import make_tiny_clap

    other = make_tiny_clap(tmp_path / "other-weights", seed=3)
    r = dg("query", "dog", "--index", cli_index, "--model", other)
    assert r.exit_code == 6 and "has other weights" in r.stderr


def test_busy_and_corrupt_index(cli_index: Path, clips_dir: Path, tmp_path: Path) -> None:
    with writer_lock(cli_index):
        r = dg("index", clips_dir, "--index", cli_index)
    assert r.exit_code == 8 and "is busy: another dgsearch process" in r.stderr
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "catalog.sqlite").write_bytes(b"garbage" * 1000)
    r = dg("query", "x", "--index", bad)
    assert r.exit_code == 9 and "cannot be read as a catalog" in r.stderr


def test_nothing_indexed_exit_code(tmp_path: Path, tiny_clap_dir: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.mp3").write_bytes(b"\x00" * 100)
    r = dg("index", folder, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 7
    assert "none of the 1 files under" in r.stderr and "a.mp3" in r.stdout


@pytest.mark.slow  # default run under 10 min on 2 cores: the slow suite (CI runs it) covers it
def test_real_subprocess_index_and_query_by_example(clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    """The installed console script, with worker processes, progress on stderr and results on stdout."""
    exe = Path(sys.executable).with_name("dgsearch")
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    idx = tmp_path / "ix"
    r = subprocess.run([exe, "index", clips_dir, "--index", idx, "--model", tiny_clap_dir], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("indexed 5 files (5 new, 0 changed): 7 windows")
    assert "indexing" in r.stderr and "\x1b[" not in r.stdout
    q = subprocess.run([exe, "query", "--audio", clips_dir / "long" / "siren.wav", "--index", idx, "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert q.returncode == 0, q.stderr
    hits = json.loads(q.stdout)["hits"]
    assert os.path.basename(hits[0]["path"]) == "siren.wav" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    conn = sqlite3.connect(idx / "catalog.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
