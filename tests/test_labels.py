"""The user's own labels (`dgsearch label`, `dgsearch labels`, `--label`) on a real library: CC0 recordings of
Debian's sonic-pi-samples indexed with the real aisfx weights through the CLI.

A label is the user's: re-indexing keeps it, a rename carries it, a changed file keeps it at its path, a file
that leaves the index takes it along; keyword search reads it; `--label` keeps exactly the labelled files in
every ranking; bad labels and unknown paths exit with the documented codes and write nothing; it is written
while another process holds the writer lock (a running `dgsearch index --watch`).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from lock_holder import writer_lock_held
from real_sounds import require_real_sounds
from typer.testing import CliRunner

from cli_runner import dg
from diffgap_search.cli.app import app

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")

STEMS = ("bd_boom", "bd_haus", "sn_dolf", "drum_snare_hard", "tabla_na", "tabla_na_o", "ambi_choir")


def _library(root: Path) -> Path:
    """Seven real recordings: two kicks and two snares in ``drums/``, two tabla strokes and a choir drone."""
    sounds = {s.stem: s for s in require_real_sounds()}
    lib = root / "lib"
    (lib / "drums").mkdir(parents=True)
    for stem in STEMS:
        folder = lib / "drums" if stem.startswith(("bd_", "sn_", "drum_")) else lib
        shutil.copy(sounds[stem].path, folder / f"{stem}.flac")
    return lib


def _index(lib: Path, ix: Path) -> None:
    r = dg("index", lib, "--index", ix, "--model", "aisfx", "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["failed"] == []


@pytest.fixture(scope="module")
def shared_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One labelled index the read-only tests share: kicks labelled "Kick", the drums folder "Drums"."""
    root = tmp_path_factory.mktemp("labels")
    lib = _library(root)
    ix = root / "ix"
    _index(lib, ix)
    assert dg("label", "Kick", lib / "drums" / "bd_boom.flac", lib / "drums" / "bd_haus.flac", "-i", ix).exit_code == 0
    assert dg("label", "Drums", lib / "drums", "-i", ix).exit_code == 0
    return lib, ix


def _labels(ix: Path) -> dict[str, int]:
    r = dg("labels", "--index", ix, "--json")
    assert r.exit_code == 0, r.output
    return {row["label"]: row["files"] for row in json.loads(r.stdout)["labels"]}


def _labelled(ix: Path, name: str) -> list[str]:
    r = dg("labels", name, "--index", ix, "--json")
    assert r.exit_code == 0, r.output
    return [Path(f["path"]).name for f in json.loads(r.stdout)["files"]]


def _names(r: Result) -> list[str]:
    assert r.exit_code == 0, r.output
    return [Path(h["path"]).name for h in json.loads(r.stdout)["hits"]]


def test_labels_follow_their_files_through_renames_changes_and_removal(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    ix = tmp_path / "ix"
    _index(lib, ix)
    drums = lib / "drums"
    r = dg("label", "Keep", drums / "bd_boom.flac", drums / "sn_dolf.flac", lib / "tabla_na.flac", "-i", ix)
    assert (r.exit_code, r.stdout) == (0, "labelled 3 files 'Keep'\n")

    (drums / "bd_boom.flac").rename(drums / "kick_deep.flac")                        # renamed
    shutil.copy(drums / "drum_snare_hard.flac", drums / "sn_dolf.flac")              # changed content, same path
    (lib / "tabla_na.flac").unlink()                                                 # gone
    r = dg("index", lib, "--index", ix, "--model", "aisfx", "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["renamed"], report["changed"], report["deleted"]) == (1, 1, 1)

    assert _labelled(ix, "keep") == ["kick_deep.flac", "sn_dolf.flac"]
    assert _labels(ix) == {"Keep": 2}
    conn = sqlite3.connect(ix / "catalog.sqlite")
    try:  # the removed file's label left with it; nothing else is kept for it
        keys = sorted(os.fsdecode(k) for (k,) in conn.execute("SELECT path_key FROM labels"))
    finally:
        conn.close()
    assert keys == [str(drums / "kick_deep.flac"), str(drums / "sn_dolf.flac")]
    # keyword search reads labels: the renamed and the changed file, nothing else
    assert sorted(_names(dg("query", "keep", "--mode", "keyword", "--index", ix, "--json"))) == [
        "kick_deep.flac", "sn_dolf.flac"]


def test_a_label_filter_keeps_exactly_the_labelled_files_in_every_ranking(shared_index: tuple[Path, Path]) -> None:
    lib, ix = shared_index
    query = lib / "tabla_na_o.flac"
    for args in (["--audio", query], ["--audio", query, "--segments"], ["kick", "--mode", "keyword"]):
        hits = _names(dg("query", *args, "--label", "KICK", "-k", "50", "--index", ix, "--json"))
        assert sorted(hits) == ["bd_boom.flac", "bd_haus.flac"], args
    similar = _names(dg("similar", lib / "drums" / "bd_boom.flac", "--label", "drums", "-k", "50", "--index", ix,
                        "--json"))
    assert sorted(similar) == ["bd_haus.flac", "drum_snare_hard.flac", "sn_dolf.flac"]  # its own file left out
    unlabelled = _names(dg("query", "--audio", query, "--label", "nobody wrote this", "--index", ix, "--json"))
    assert unlabelled == []
    # every hit carries its file's labels, in the order they were put on
    doc = json.loads(dg("query", "--audio", query, "-k", "50", "--index", ix, "--json").stdout)
    assert {Path(h["path"]).name: h["labels"] for h in doc["hits"]} == {
        "bd_boom.flac": ["Kick", "Drums"], "bd_haus.flac": ["Kick", "Drums"], "sn_dolf.flac": ["Drums"],
        "drum_snare_hard.flac": ["Drums"], "tabla_na.flac": [], "tabla_na_o.flac": [], "ambi_choir.flac": []}


def test_one_label_whatever_its_case_and_spacing(shared_index: tuple[Path, Path]) -> None:
    lib, ix = shared_index
    assert dg("label", "Straße  Tabla", lib / "tabla_na.flac", "-i", ix).stdout == "labelled 1 file 'Straße Tabla'\n"
    r = dg("label", " STRASSE tabla ", lib / "tabla_na.flac", lib / "tabla_na_o.flac", "-i", ix, "--json")
    assert json.loads(r.stdout) == {"label": "Straße Tabla", "files": 2, "changed": 1, "removed": False}
    assert _labels(ix) == {"Drums": 4, "Kick": 2, "Straße Tabla": 2}
    r = dg("label", "strasse tabla", "--remove", "--all", "-i", ix)
    assert (r.exit_code, r.stdout) == (0, "took 'Straße Tabla' off 2 files\n")
    assert _labels(ix) == {"Drums": 4, "Kick": 2}


@pytest.mark.parametrize(("args", "code", "message"), [
    (["", "{lib}/tabla_na.flac"], 2, "a label needs a name: it cannot be empty or only spaces"),
    (["a\x07b", "{lib}/tabla_na.flac"], 2, "a label cannot hold control characters: 'a\\x07b'"),
    (["x" * 101, "{lib}/tabla_na.flac"], 2, "a label is at most 100 characters; 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... has 101"),
    (["Fav"], 2, "name the files to label: their paths, their folders, or '-' to read paths from stdin"),
    (["Fav", "--all"], 2, "--all goes with --remove: `dgsearch label NAME --remove --all` takes NAME off every file"),
    (["Fav", "{lib}/tabla_na.flac", "{lib}/elsewhere.wav", "{lib}/nothing"], 3,
     "not in index {ix}: {lib}/elsewhere.wav; {lib}/nothing (name files that `dgsearch index` indexed, or their"
     " folders); nothing was labelled"),
])
def test_bad_labels_and_unknown_paths_exit_with_their_codes_and_write_nothing(
        shared_index: tuple[Path, Path], args: list[str], code: int, message: str) -> None:
    lib, ix = shared_index
    r = dg("label", *[a.format(lib=lib) for a in args], "--index", ix)
    assert (r.exit_code, r.stderr) == (code, f"dgsearch: error: {message.format(lib=lib, ix=ix)}\n")
    assert _labels(ix) == {"Drums": 4, "Kick": 2}


def test_paths_piped_from_a_query_are_labelled_exactly_any_name(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    odd = lib / "tabla\nstroke.flac"  # a newline in a name: only NUL-separated paths carry it
    (lib / "tabla_na.flac").rename(odd)
    ix = tmp_path / "ix"
    _index(lib, ix)
    exe = Path(sys.executable).with_name("dgsearch")
    env = {**os.environ, "DGSEARCH_INDEX": str(ix)}
    pipe = subprocess.run(f"'{exe}' query tabla --mode keyword -0 | '{exe}' label 'Tabla picks' - --null",
                          shell=True, env=env, capture_output=True, timeout=120)
    assert (pipe.returncode, pipe.stdout) == (0, b"labelled 2 files 'Tabla picks'\n"), pipe.stderr
    listed = subprocess.run([str(exe), "labels", "tabla picks", "--print0"], env=env, capture_output=True, timeout=60)
    assert sorted(listed.stdout.split(b"\0")[:-1]) == sorted([os.fsencode(odd), os.fsencode(lib / "tabla_na_o.flac")])
    # newline-separated input splits that name in two: refused, nothing written
    r = CliRunner().invoke(app, ["label", "Other", "-"], input=os.fsencode(f"{odd}\n"), env={"DGSEARCH_INDEX": str(ix)})
    assert r.exit_code == 3 and "nothing was labelled" in r.stderr
    assert _labels(ix) == {"Tabla picks": 2}


def test_labels_are_written_while_another_process_holds_the_writer_lock(shared_index: tuple[Path, Path]) -> None:
    lib, ix = shared_index
    with writer_lock_held(ix):
        busy = dg("index", lib, "--index", ix, "--model", "aisfx", "--workers", "0")
        assert busy.exit_code == 8  # the lock is real: a second writer is refused
        r = dg("label", "Choir", lib / "ambi_choir.flac", "-i", ix)
        assert (r.exit_code, r.stdout) == (0, "labelled 1 file 'Choir'\n")
        assert _labelled(ix, "choir") == ["ambi_choir.flac"]
    assert dg("label", "Choir", "--remove", "--all", "-i", ix).exit_code == 0
