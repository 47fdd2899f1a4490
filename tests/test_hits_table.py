"""How `dgsearch query` lays its hits out in the terminal: paths below the working directory shown relative to it
(as rg and fd print theirs), columns only for what the hits hold, and a bare --index NAME that misses an index
sitting in ./NAME says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import wide


dg = wide(200)


def rows(stdout: str) -> list[list[str]]:
    """The table's body, one list of cells per row (rich draws the header, a rule, then ``│``-separated rows)."""
    return [[cell.strip() for cell in line.split("│")] for line in stdout.splitlines()[2:]]


def test_paths_below_the_working_directory_are_shown_relative_to_it(
        cli_index: Path, clips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = [h["path"] for h in json.loads(dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index,
                                               "--json").stdout)["hits"]]
    assert all(Path(p).is_absolute() for p in stored) and len(stored) == 5

    monkeypatch.chdir(tmp_path)
    table = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index)
    assert table.exit_code == 0, table.output
    assert [r[2] for r in rows(table.stdout)] == [str(Path(p).relative_to(tmp_path)) for p in stored]
    assert rows(table.stdout)[0][2:] == ["clips/dog_bark.wav", "0:00.0", "0:03.0", "a dog barks"]
    # --paths (for pipes) and --json keep the stored, absolute path
    assert dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index,
              "--paths").stdout.splitlines() == stored

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    table = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index)
    assert [r[2] for r in rows(table.stdout)] == stored


def test_the_caption_column_appears_only_when_a_hit_has_a_caption(cli_index: Path, clips_dir: Path) -> None:
    header = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index).stdout.splitlines()[0]
    assert [c.strip() for c in header.split("┃")] == ["#", "score", "file", "from", "to", "caption"]
    # chirp.ogg has no caption: alone (--glob), its table has no empty caption column
    alone = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index, "--glob", "chirp.ogg")
    assert alone.exit_code == 0, alone.output
    assert [c.strip() for c in alone.stdout.splitlines()[0].split("┃")] == ["#", "score", "file", "from", "to"]
    assert len(rows(alone.stdout)) == 1 and rows(alone.stdout)[0][2].endswith("clips/birds/chirp.ogg")


def test_a_bare_index_name_that_misses_an_index_in_the_working_directory_says_where_it_is(
        cli_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # ./ix holds the index; --index ix means indexes/ix
    r = dg("info", "--index", "ix")
    assert r.exit_code == 4
    assert r.stderr.strip() == ("dgsearch: error: no index at indexes/ix: run `dgsearch index FOLDER --index"
                                " indexes/ix` first (the folder ./ix holds an index: pass --index ./ix)")
    assert dg("info", "--index", "./ix").exit_code == 0
    r = dg("info", "--index", "other")  # no folder ./other either: no hint
    assert r.stderr.strip() == ("dgsearch: error: no index at indexes/other: run `dgsearch index FOLDER --index"
                                " indexes/other` first")


def test_failed_files_and_dupes_are_listed_relative_to_the_working_directory(
        clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    (clips_dir / "bad.wav").write_text("this is text")
    samples, rate = sf.read(clips_dir / "dog_bark.wav", dtype="float32")
    sf.write(clips_dir / "dog_bark_copy.flac", samples, rate)  # the same sound, re-encoded: a near-duplicate
    monkeypatch.chdir(tmp_path)
    r = dg("index", "clips", "--index", "./ix", "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 0, r.output
    failed = r.stdout.splitlines()[-2:]
    assert failed[0] == "1 file could not be indexed:"
    assert failed[1].startswith("  clips/bad.wav: ")
    assert dg("info", "--index", "./ix", "--errors").stdout.startswith("clips/bad.wav: ")
    dupes = dg("dupes", "--index", "./ix").stdout.splitlines()
    assert "  clips/dog_bark.wav" in dupes and "  clips/dog_bark_copy.flac" in dupes
    stored = json.loads(dg("dupes", "--index", "./ix", "--json").stdout)["groups"]
    assert str(tmp_path / "clips" / "dog_bark.wav") in [f["path"] for g in stored for f in g["files"]]


def test_a_hit_whose_file_is_gone_is_marked_and_a_note_says_what_to_do(
        cli_index: Path, clips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files moved or deleted since indexing are still in the index until the next `dgsearch index`: the table
    says which hits are gone (a real stat of each hit's path), JSON keeps its shape."""
    (clips_dir / "birds").rename(tmp_path / "birds moved")
    monkeypatch.chdir(tmp_path)
    table = dg("query", "--audio", tmp_path / "birds moved" / "chirp.ogg", "--index", cli_index)
    assert table.exit_code == 0, table.output
    shown = {r[2] for r in rows(table.stdout)}
    assert shown == {"clips/dog_bark.wav", "clips/rain.flac", "clips/long/siren.wav", "clips/birds/chirp.ogg (missing)",
                     "clips/birds/Yabc123.mp3 (missing)"}
    assert table.stderr.splitlines()[-1] == ("note: 2 of these files are no longer where they were indexed (moved or"
                                             " deleted): run `dgsearch index FOLDER` again to update the index")
    one = dg("query", "--audio", tmp_path / "birds moved" / "chirp.ogg", "--index", cli_index, "--glob", "chirp.ogg")
    assert one.stderr.splitlines()[-1].startswith("note: 1 of these files is no longer where it was indexed")
    (clips_dir / "long").rename(tmp_path / "long moved")  # siren.wav: 25 s, three windows, one file
    windows = dg("query", "--audio", tmp_path / "birds moved" / "chirp.ogg", "--index", cli_index, "--segments",
                 "--glob", "siren.wav")
    assert [r[2] for r in rows(windows.stdout)] == ["clips/long/siren.wav (missing)"] * 3
    assert windows.stderr.splitlines()[-1].startswith("note: 1 of these files is no longer where it was indexed")
    doc = json.loads(dg("query", "--audio", tmp_path / "birds moved" / "chirp.ogg", "--index", cli_index,
                        "--json").stdout)
    assert "missing" not in json.dumps(doc) and len(doc["hits"]) == 5


def test_commands_suggested_in_errors_name_the_same_index_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--index ./ix`` is a folder; the ``--index ix`` an error used to suggest would mean ``indexes/ix``."""
    from diffgap_search.config import index_option, resolve_index_dir

    monkeypatch.chdir(tmp_path)
    for given in ("./ix", "ix", "indexes/ix", str(tmp_path / "ix"), "../ix", "a/b"):
        folder = resolve_index_dir(given)
        assert resolve_index_dir(index_option(folder)) == folder
    assert index_option(resolve_index_dir("./ix")) == "./ix"
    r = dg("info", "--index", "./nope")
    assert r.stderr.strip() == "dgsearch: error: no index at nope: run `dgsearch index FOLDER --index ./nope` first"
