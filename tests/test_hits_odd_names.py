"""Hits whose file name is not UTF-8 (old Windows archives, Latin-1 zips) or holds a newline: shown readably,
opened exactly.

The catalog keeps a file's exact bytes (``path_key``) and a printable form (``path``: ``caf\\xe9.wav``). A hit
shows the printable form, but `--paths` prints the exact bytes (as find and fd do, so a pipe opens the file),
the table's "(missing)" mark looks at the exact file, and `--json` adds ``path_bytes`` (base64 of the bytes)
only to hits whose shown path is not their exact name; `--print0` ends each exact path with a NUL byte.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from cli_runner import wide

dg = wide(200)
NAME = b"caf\xe9 bark.wav"  # Latin-1 e-acute: not UTF-8


@pytest.fixture
def odd_index(clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> tuple[bytes, Path]:
    """``(exact bytes of the renamed dog_bark.wav, index)``: its caption sidecar renamed alike."""
    folder = os.fsencode(clips_dir)
    exact = os.path.join(folder, NAME)
    os.rename(clips_dir / "dog_bark.wav", exact)
    os.rename(clips_dir / "dog_bark.txt", os.path.join(folder, b"caf\xe9 bark.txt"))
    index_dir = tmp_path / "ix"
    r = dg("index", clips_dir, "--index", index_dir, "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 0, r.output
    return exact, index_dir


def rows(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")] for line in stdout.splitlines()[2:]]


def test_the_table_shows_the_escaped_name_and_does_not_call_the_file_missing(
        odd_index: tuple[bytes, Path], clips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exact, index_dir = odd_index
    monkeypatch.chdir(tmp_path)
    r = dg("query", "--audio", os.fsdecode(exact), "--index", index_dir)
    assert r.exit_code == 0, r.output
    assert rows(r.stdout)[0][1:5] == ["1.000", "clips/caf\\xe9 bark.wav", "0:00.0", "0:03.0"]
    assert "missing" not in r.stdout and "no longer where" not in r.stderr

    os.unlink(exact)  # now it is gone, and the mark says so
    r = dg("query", "--audio", clips_dir / "rain.flac", "--index", index_dir)
    gone = [row for row in rows(r.stdout) if "caf" in row[2]]
    assert [row[2] for row in gone] == ["clips/caf\\xe9 bark.wav (missing)"]
    assert "note: 1 of these files is no longer where it was indexed" in r.stderr


def test_paths_prints_the_exact_bytes_so_a_pipe_can_open_the_file(odd_index: tuple[bytes, Path]) -> None:
    exact, index_dir = odd_index
    r = dg("query", "--audio", os.fsdecode(exact), "--index", index_dir, "--paths")
    assert r.exit_code == 0, r.output
    lines = r.stdout_bytes.split(b"\n")
    assert lines[0] == exact and lines[-1] == b"" and len(lines) == 6
    assert all(os.path.isfile(line) for line in lines[:-1])


def test_json_adds_path_bytes_only_where_the_shown_path_is_not_the_name(odd_index: tuple[bytes, Path]) -> None:
    exact, index_dir = odd_index
    hits = json.loads(dg("query", "--audio", os.fsdecode(exact), "--index", index_dir, "--json").stdout)["hits"]
    assert hits[0]["path"] == os.fsdecode(os.path.dirname(exact)) + "/caf\\xe9 bark.wav"
    assert base64.b64decode(hits[0]["path_bytes"]) == exact
    assert hits[0]["caption"] == "a dog barks"  # its renamed sidecar was read
    assert [("path_bytes" in h) for h in hits] == [True, False, False, False, False]
    keyword = json.loads(dg("query", "dog", "--index", index_dir, "--mode", "keyword", "--jsonl").stdout.splitlines()[0])
    assert base64.b64decode(keyword["path_bytes"]) == exact


def test_similar_takes_the_exact_name_and_leaves_the_file_itself_out(odd_index: tuple[bytes, Path]) -> None:
    exact, index_dir = odd_index
    r = dg("similar", os.fsdecode(exact), "--index", index_dir, "--paths")
    assert r.exit_code == 0, r.output
    found = r.stdout_bytes.splitlines()
    assert len(found) == 4 and exact not in found


@pytest.mark.parametrize(("key", "field"), [
    (b"/a/dog.wav", {}),
    ("/a/Tür.wav".encode(), {}),  # UTF-8 is shown as it is
    (b"/a/caf\xe9.wav", {"path_bytes": base64.b64encode(b"/a/caf\xe9.wav").decode()}),
    (b"/a/line\nbreak.wav", {"path_bytes": base64.b64encode(b"/a/line\nbreak.wav").decode()}),  # shown as \n
])
def test_path_bytes_is_given_exactly_where_the_shown_path_differs_from_the_name(
        key: bytes, field: dict[str, str]) -> None:
    from diffgap_search.media.discover import display_path, exact_path_field

    assert exact_path_field(display_path(key), key) == field


def test_dupes_json_gives_the_exact_name_of_a_copy_whose_name_is_not_utf8(odd_index: tuple[bytes, Path]) -> None:
    exact, index_dir = odd_index
    copy = exact.replace(b"caf\xe9", b"caf\xe9 copy")
    with open(exact, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    assert dg("index", os.fsdecode(os.path.dirname(exact)), "--index", index_dir, "--workers", "0").exit_code == 0
    # the tiny random CLAP finds every clip alike: only byte-equal files reach 0.99999
    groups = json.loads(dg("dupes", "--index", index_dir, "--threshold", "0.99999", "--json").stdout)["groups"]
    assert [[base64.b64decode(f["path_bytes"]) for f in g["files"]] for g in groups] == [[exact, copy]]


def test_print0_ends_each_path_with_nul_so_xargs_0_opens_a_name_holding_a_newline(
        clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    exact = os.path.join(os.fsencode(clips_dir), b"dog\nbark.wav")  # legal on Linux: only / and NUL are not
    os.rename(clips_dir / "dog_bark.wav", exact)
    index_dir = tmp_path / "ix"
    assert dg("index", clips_dir, "--index", index_dir, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    r = dg("query", "--audio", os.fsdecode(exact), "--index", index_dir, "-0", "-k", "3")
    assert r.exit_code == 0, r.output
    paths = r.stdout_bytes.split(b"\0")
    assert paths[0] == exact and paths[-1] == b"" and len(paths) == 4 and all(b"\0" not in p for p in paths)
    sizes = subprocess.run(["xargs", "-0", "stat", "--format=%s"], input=r.stdout_bytes, capture_output=True,
                           check=True).stdout.split()
    assert [int(s) for s in sizes] == [os.path.getsize(p) for p in paths[:-1]]
    r = dg("query", "--audio", os.fsdecode(exact), "--index", index_dir, "--paths", "--print0")
    assert r.exit_code == 2 and "choose one of --json, --jsonl, --paths, --print0" in r.stderr
