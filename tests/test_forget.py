"""`dgsearch forget PATH...` on a real library: CC0 recordings of Debian's sonic-pi-samples indexed with the real
aisfx weights through the CLI, one of its two folders then deleted for good (a retired drive).

The forgotten files leave the catalog (failed ones too) with their windows, vectors and labels, the FAISS file is
published again with exactly the windows left, searches return only what is left; a dry run writes nothing; a path
that names nothing indexed fails the whole command; a real process holding the writer lock makes it exit 8.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from lock_holder import writer_lock_held
from real_sounds import require_real_sounds

from cli_runner import dg

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")


@pytest.fixture()
def two_drives(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``drive_a`` (three kicks and a file that cannot be decoded) and ``drive_b`` (two tabla strokes and a choir),
    indexed into one index; a kick labelled "Kick" and a tabla stroke "Keep"."""
    sounds = {s.stem: s for s in require_real_sounds()}
    a, b = tmp_path / "drive_a" / "sfx", tmp_path / "drive_b" / "sfx"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    for stem in ("bd_boom", "bd_haus", "bd_fat"):
        shutil.copy(sounds[stem].path, a / f"{stem}.flac")
    (a / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    for stem in ("tabla_na", "tabla_na_o", "ambi_choir"):
        shutil.copy(sounds[stem].path, b / f"{stem}.flac")
    ix = tmp_path / "ix"
    for lib in (a, b):
        r = dg("index", lib, "--index", ix, "--model", "aisfx", "--workers", "0", "--json")
        assert r.exit_code == 0, r.output
    assert dg("label", "Kick", a / "bd_boom.flac", "-i", ix).exit_code == 0
    assert dg("label", "Keep", b / "tabla_na.flac", "-i", ix).exit_code == 0
    return a, b, ix


def _catalog(ix: Path) -> tuple[list[str], int, int, dict]:
    """(every file's path, windows, label rows, the published audio FAISS record)."""
    with sqlite3.connect(ix / "catalog.sqlite") as db:
        paths = [p for (p,) in db.execute("SELECT path FROM files ORDER BY path")]
        windows = db.execute("SELECT count(*) FROM segments").fetchone()[0]
        labels = db.execute("SELECT count(*) FROM labels").fetchone()[0]
        record = json.loads(db.execute("SELECT value FROM meta WHERE key = 'faiss.audio'").fetchone()[0])
    return paths, windows, labels, record


def _hits(ix: Path, audio: Path) -> list[str]:
    r = dg("query", "--audio", audio, "-i", ix, "-k", "10", "--json")
    assert r.exit_code == 0, r.output
    return sorted(Path(h["path"]).name for h in json.loads(r.stdout)["hits"])


def test_a_folder_gone_for_good_is_forgotten(two_drives: tuple[Path, Path, Path]) -> None:
    a, b, ix = two_drives
    probe = ix.parent / "probe.flac"
    shutil.copy(a / "bd_boom.flac", probe)
    paths, windows, labels, record = _catalog(ix)
    assert len(paths) == 7 and labels == 2 and record["count"] == windows == 6
    assert _hits(ix, probe) == ["ambi_choir.flac", "bd_boom.flac", "bd_fat.flac", "bd_haus.flac", "tabla_na.flac",
                                "tabla_na_o.flac"]
    shutil.rmtree(a.parent)  # the drive is gone: its folder cannot be indexed any more
    for extra in ((), ("--dry-run",)):
        r = dg("index", a, "-i", ix, *extra)
        assert r.exit_code == 3, r.output
        assert (f"no such file or folder: {a}; the index holds 4 files from there: if it moved, `dgsearch index NEW"
                f" --moved-from {a}` follows them; gone for good, `dgsearch forget {a}` takes them out"
                ) in " ".join(r.stderr.split())
    r = dg("index", a / "bd_boom.flac", "-i", ix)
    assert "the index holds 1 file from there: if it moved, `dgsearch index NEW --moved-from" in " ".join(r.stderr.split())
    r = dg("index", a.parent / "never", "-i", ix)
    assert r.exit_code == 3 and r.stderr.strip().endswith(f"no such file or folder: {a.parent / 'never'}"), r.output

    r = dg("forget", a, "-i", ix, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "index": str(ix), "dry_run": True, "files": 4, "failed": 1, "windows": 3, "still_on_disk": 0, "spaces": [],
        "paths": [str(a / n) for n in ("bd_boom.flac", "bd_fat.flac", "bd_haus.flac", "broken.wav")]}
    assert _catalog(ix) == (paths, windows, labels, record)  # a dry run writes nothing

    r = dg("forget", a, "-i", ix, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["files"], out["failed"], out["windows"], out["spaces"]) == (4, 1, 3, ["audio"])
    paths, windows, labels, record = _catalog(ix)
    assert paths == [str(b / n) for n in ("ambi_choir.flac", "tabla_na.flac", "tabla_na_o.flac")]
    assert (windows, labels, record["count"]) == (3, 1, 3)  # the FAISS file published again with what is left
    assert _hits(ix, probe) == ["ambi_choir.flac", "tabla_na.flac", "tabla_na_o.flac"]
    r = dg("labels", "-i", ix, "--json")
    assert [(row["label"], row["files"]) for row in json.loads(r.stdout)["labels"]] == [("Keep", 1)]

    r = dg("forget", a, "-i", ix)  # once more: nothing of it is left
    assert r.exit_code == 3, r.output
    assert (f"not in index {ix}: {a} (name files or folders that `dgsearch index` indexed); nothing was"
            " forgotten") in " ".join(r.stderr.split())


def test_all_or_nothing_and_files_still_on_disk(two_drives: tuple[Path, Path, Path]) -> None:
    a, b, ix = two_drives
    before = _catalog(ix)
    r = dg("forget", b / "tabla_na.flac", a / "missing.flac", a.parent / "elsewhere", "-i", ix)
    assert r.exit_code == 3, r.output
    assert f"not in index {ix}: {a / 'missing.flac'}; {a.parent / 'elsewhere'} (name" in " ".join(r.stderr.split())
    assert _catalog(ix) == before

    r = subprocess.run([sys.executable, "-c", "from diffgap_search.cli.app import main; main()", "forget", "-",
                        "--null", "-i", str(ix)], input=bytes(b / "tabla_na.flac") + b"\0" + bytes(b / "ambi_choir.flac")
                       + b"\0", capture_output=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == f"forgot 2 files (2 windows): index {ix} no longer holds them\n"
    assert ("note: 2 of them are still on disk: the next `dgsearch index` of a folder holding them takes them in"
            " again (a .dgsearchignore keeps them out)") in " ".join(r.stderr.decode().split())
    assert [Path(p).name for p in _catalog(ix)[0]] == ["bd_boom.flac", "bd_fat.flac", "bd_haus.flac", "broken.wav",
                                                        "tabla_na_o.flac"]
    r = dg("index", b, "-i", ix, "--model", "aisfx", "--workers", "0", "--json")  # still on disk: they come back
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["new"] == 2


def test_forget_waits_for_no_writer(two_drives: tuple[Path, Path, Path]) -> None:
    a, _, ix = two_drives
    before = _catalog(ix)
    with writer_lock_held(ix):
        r = dg("forget", a, "-i", ix)
        assert r.exit_code == 8, r.output
        assert _catalog(ix) == before
        r = dg("forget", a, "-i", ix, "--dry-run")  # a dry run takes no lock
        assert r.exit_code == 0, r.output
    r = dg("forget", ix.parent / "nowhere", "-i", ix.parent / "no-index")
    assert r.exit_code == 4, r.output
    assert not (ix.parent / "no-index").exists()


def test_info_missing_names_what_is_gone_and_forget_takes_it(two_drives: tuple[Path, Path, Path]) -> None:
    a, b, ix = two_drives
    r = dg("info", "-i", ix, "--missing")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"every indexed file is on disk (7 files in {ix})\n"
    shutil.rmtree(a.parent)  # a drive gone, and one file deleted from the other
    (b / "tabla_na.flac").unlink()
    r = dg("info", "-i", ix, "--missing", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"index": str(ix), "files": 7, "missing": 5, "gone": [
        {"gone": str(a.parent), "folder": True, "files": 4,
         "paths": [str(a / n) for n in ("bd_boom.flac", "bd_fat.flac", "bd_haus.flac", "broken.wav")]},
        {"gone": str(b / "tabla_na.flac"), "folder": False, "files": 1, "paths": [str(b / "tabla_na.flac")]}]}
    r = dg("info", "-i", ix, "--missing", "--jsonl")
    assert [json.loads(line) for line in r.stdout.splitlines()][-2:] == [
        {"path": str(a / "broken.wav"), "gone": str(a.parent)}, {"path": str(b / "tabla_na.flac"), "gone": str(b / "tabla_na.flac")}]
    r = dg("info", "-i", ix, "--missing")
    assert r.exit_code == 0, r.output
    assert [" ".join(line.split()) for line in r.stdout.splitlines()] == [
        "5 of the 7 indexed files are no longer on disk:",
        f"{a.parent}/ (gone, with 4 files): `dgsearch forget {a.parent}`; moved: `dgsearch index NEW --moved-from"
        f" {a.parent}`",
        f"{b / 'tabla_na.flac'} (deleted): the next `dgsearch index` of its library folder takes it out"]
    assert dg("forget", a.parent, "-i", ix).exit_code == 0  # the command it names
    assert dg("index", b, "-i", ix, "--model", "aisfx", "--workers", "0").exit_code == 0
    r = dg("info", "-i", ix, "--missing")
    assert r.stdout == f"every indexed file is on disk (2 files in {ix})\n"
    r = dg("info", "-i", ix, "--missing", "--errors")
    assert r.exit_code == 2 and "--errors and --missing list different files: give one" in r.stderr
