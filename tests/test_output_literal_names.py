"""What the user's files and words put in a table is shown exactly: rich reads ``[...]`` as markup (``take [2]``
lost its ``[2]``) and ``:name:`` as an emoji code (``:dog:`` became a dog) in any string it is given.

Names like ``amen [loop].flac`` and ``take [2]`` are common in sample libraries; the hits table, the timeline, the
labels table, ``info`` and the index run's notes must show them as they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_runner import wide

dg = wide(200, NO_COLOR="1")
FOLDER = "lib [2024] :cd:"
NAME = "dog [take 2] :dog:.wav"
CAPTION = "a dog [barks] :dog: twice"
LABEL = "[wip] :star: keep"


def cells(stdout: str) -> list[list[str]]:
    """The table's rows (after its header and rule), each cell stripped."""
    return [[cell.strip() for cell in line.split("│")] for line in stdout.splitlines()[2:]]


@pytest.fixture
def bracketed(clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The clips in a folder named ``FOLDER``, ``dog_bark.wav`` renamed ``NAME`` with ``CAPTION`` beside it, indexed
    into ``ix`` (the working directory is ``tmp_path``); returns the renamed file."""
    folder = tmp_path / FOLDER
    shutil.move(clips_dir, folder)
    (folder / "dog_bark.wav").rename(folder / NAME)
    (folder / "dog_bark.txt").unlink()
    (folder / NAME).with_suffix(".txt").write_text(CAPTION + "\n")
    monkeypatch.chdir(tmp_path)
    r = dg("index", FOLDER, "--index", "ix", "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 0, r.output
    return folder / NAME


def test_the_hits_table_shows_a_bracketed_name_and_caption_as_they_are(bracketed: Path) -> None:
    r = dg("query", "--audio", bracketed, "--index", "ix", "-k", "2")
    assert r.exit_code == 0, r.output
    first = cells(r.stdout)[0]
    assert first[1:3] == ["1.000", f"{FOLDER}/{NAME}"]
    assert first[5] == CAPTION


def test_the_timeline_shows_the_name_as_it_is(bracketed: Path) -> None:
    r = dg("query", "--audio", bracketed, "--index", "ix", "-k", "1", "--timeline")
    assert r.exit_code == 0, r.output
    assert cells(r.stdout)[0][3] == f"{FOLDER}/{NAME}"


def test_labels_and_info_show_the_user_s_words_as_they_are(bracketed: Path) -> None:
    r = dg("label", LABEL, bracketed, "--index", "ix")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"labelled 1 file {LABEL!r}"
    r = dg("labels", "--index", "ix")
    assert cells(r.stdout) == [[LABEL, "1"]]
    lines = [line for line in dg("info", "--index", "ix").stdout.splitlines() if "│" in line]
    info = {key.strip(): value.strip() for key, value in (line.split("│", 1) for line in lines)}
    assert info["library folder"] == str(bracketed.parent)
