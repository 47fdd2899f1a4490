"""Weak captions: file names (and tags) cleaned into training captions, so a library without caption sidecars
trains its own DiffGAP bridge (``dgsearch train --captions names``), and ``dgsearch eval`` scores them apart.

The library is real: CC0 recordings of Debian's sonic-pi-samples copied under the kind of names sound
libraries use (UCS-style category prefixes, takes, versions, sample rates), with no sidecar at all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import dg

from real_sounds import REAL_SOUNDS, require_real_sounds

from diffgap_search.encoders.loading import load_encoder
from diffgap_search.media.weak_captions import name_words, weak_captions
from diffgap_search.bridge.pairs import index_pairs, is_test_group
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder_config

N_FILES = 40


@pytest.mark.parametrize(("name", "caption"), [
    ("DOORWood_Slam Heavy_03.wav", "door wood slam heavy"),  # UCS category + subcategory, take number
    ("door-creak_v2_48k_24bit.flac", "door creak"),  # version, sample rate, bit depth
    ("FootstepsGravel take 3.wav", "footsteps gravel"),  # camelCase, "take N"
    ("Explosion_44.1k_Big_tk2.wav", "explosion big"),
    ("Door01.wav", "door"),  # digits glued to a word
    ("WIND_Howl_96kHz_32f_stereo.wav", "wind howl"),
    ("glass__break...mp3", "glass break"),  # repeated separators
    ("FÜßE_Schritte-Kies (2).ogg", "füße schritte kies"),  # non-ASCII words, brackets
    ("birdSong.v3.wav", "bird song"),
    ("take.wav", "take"),  # "take" without a number is a word
])
def test_a_file_name_becomes_a_caption(name: str, caption: str) -> None:
    assert weak_captions(name) == [caption]


def test_names_without_words_give_no_caption_and_tags_add_captions() -> None:
    assert weak_captions("03.wav") == [] and weak_captions("48k_24bit_v2.wav") == [] and name_words("") == []
    assert weak_captions("/lib/Doors/Wood/slam_01.wav", ["Door slam, heavy; wooden", "DOOR_Wood", "Doors-Wood-Slam"],
                         folder_levels=2) == ["doors wood slam", "door slam heavy wooden", "door wood"]
    assert weak_captions("/lib/Doors/Wood/slam_01.wav", ["  ", "01"]) == ["slam"]


# -- a real library with telling names and no sidecars ----------------------------------------------------
def _telling_name(i: int, stem: str, kind: str) -> str:
    """``KICKBd Haus_03_48k.flac``: a UCS-like category from the kind, the stem's words, a take, a rate."""
    words = " ".join(w.capitalize() for w in stem.split("_"))
    return f"{kind.upper()}{words.replace(' ', '', 1)}_{i:02d}_48k.flac"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """``(folder, {file name: its expected weak caption})``: 40 real recordings, no sidecar."""
    require_real_sounds()
    root = tmp_path_factory.mktemp("named") / "library"
    root.mkdir()
    expected = {}
    for i, sound in enumerate(REAL_SOUNDS[:N_FILES]):
        name = _telling_name(i, sound.stem, sound.kind)
        shutil.copy(sound.path, root / name)
        expected[name] = " ".join([sound.kind, *name_words(sound.stem)])  # name_words itself: pinned above
    return root, expected


@pytest.fixture(scope="module")
def named_index(library: tuple[Path, dict[str, str]], tiny_clap_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    ix = tmp_path_factory.mktemp("named-ix") / "ix"
    r = dg("index", library[0], "--index", ix, "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 0, r.output
    return ix


def test_index_pairs_pair_every_window_with_its_name(named_index: Path, library: tuple[Path, dict[str, str]]) -> None:
    _, expected = library
    with Catalog.open(named_index) as cat:
        encoder = load_encoder(stored_encoder_config(cat, device="cpu"), progress=False)
        files = cat.files(status="ok")
        n_windows = int(cat.count_vectors("audio"))
        sidecars = index_pairs(cat, encoder, ["text"], captions="sidecars")
        names = index_pairs(cat, encoder, ["text"], captions="names")
        tagged = index_pairs(cat, encoder, ["text"], captions="all",
                             tags_of=lambda f: ["Sonic Pi sample"] if f.path.endswith("_00_48k.flac") else [])
    assert len(files) == N_FILES and n_windows == N_FILES  # every one of these recordings is shorter than 10 s
    assert len(sidecars) == 0 and "text" not in sidecars.arrays
    # one caption per file: these real files' tags are comments ("Processed by SoX", freesound links) and
    # track numbers, which are not captions (pairs.WEAK_CAPTION_TAGS)
    assert len(names) == n_windows and names.caption_counts() == {"sidecar": 0, "name": n_windows}
    assert names.weak_mask().all()
    want = encoder.embed_text([expected[Path(f.path).name] for f in files])
    by_group = {f.sha256: want[i] for i, f in enumerate(files)}
    got = np.stack([by_group[g] for g in names.groups])
    np.testing.assert_allclose(names.arrays["text"], got, atol=1e-6)  # each window paired with its own name
    assert len(tagged) == n_windows + 1 and tagged.caption_counts() == {"sidecar": 0, "name": n_windows + 1}


def test_a_library_without_sidecars_trains_its_own_bridge_from_names(named_index: Path) -> None:
    nothing = dg("train", "--index", named_index, "--captions", "sidecars", "--pairs", "text")
    assert nothing.exit_code == 2
    assert nothing.stderr.strip() == (f"dgsearch: error: no file in index {named_index} has a caption sidecar: train"
                                      " on the file names with --captions names")
    bad = dg("train", "--index", named_index, "--captions", "titles")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == ("dgsearch: error: --captions must be auto, sidecars, names, all, per-file;"
                                  " got 'titles'")
    r = dg("train", "--index", named_index, "--captions", "names", "--epochs", "2", "--batch-size", "16", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    held = out["held_out_pairs"]["audio-text"]
    assert out["captions"] == "names" and held >= 2
    assert out["caption_pairs"] == {"sidecar": 0, "name": out["train_pairs"]["audio-text"]}
    assert out["train_pairs"]["audio-text"] + held == N_FILES
    auto = dg("train", "--index", named_index, "--epochs", "1", "--batch-size", "16", "--json")
    assert auto.exit_code == 0 and json.loads(auto.stdout)["captions"] == "names"  # no sidecar anywhere: names
    ev = dg("eval", "--index", named_index, "--json")
    assert ev.exit_code == 0, ev.output
    res = json.loads(ev.stdout)
    assert res["results"] == {} and res["n_test"] == {}  # no real caption to score
    weak = res["weak_captions"]
    assert weak["n_test"]["audio-text"] == {"audio": held, "text": held}
    assert set(weak["results"]) == {"text->audio", "audio->text"}
    rows = [json.loads(line) for line in dg("eval", "--index", named_index, "--jsonl").stdout.splitlines()]
    assert {(row["captions"], row["direction"]) for row in rows} == {("weak", "text->audio"), ("weak", "audio->text")}
    assert "text->audio (weak captions)" in dg("eval", "--index", named_index).stdout


def test_a_captioned_library_keeps_its_captions_and_eval_scores_names_apart(
        library: tuple[Path, dict[str, str]], tiny_clap_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "captioned"
    shutil.copytree(library[0], root)
    for i, name in enumerate(sorted(p.name for p in root.iterdir())):
        if i % 2 == 0:  # half the files have a sidecar: auto must still mean sidecars
            (root / name).with_suffix(".txt").write_text(f"a recording number {i}\n")
    ix = tmp_path / "ix"
    assert dg("index", root, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    auto = dg("train", "--index", ix, "--epochs", "1", "--batch-size", "16", "--json")
    assert auto.exit_code == 0, auto.output
    out = json.loads(auto.stdout)
    assert out["captions"] == "sidecars" and out["caption_pairs"]["name"] == 0
    assert "note: only" not in auto.stderr  # half the files captioned: nothing to say
    both = dg("train", "--index", ix, "--captions", "all", "--epochs", "1", "--batch-size", "16", "--json")
    out_all = json.loads(both.stdout)
    assert out_all["caption_pairs"] == {"sidecar": out["caption_pairs"]["sidecar"],
                                        "name": out_all["train_pairs"]["audio-text"] - out["caption_pairs"]["sidecar"]}
    assert out_all["caption_pairs"]["name"] >= out_all["caption_pairs"]["sidecar"]  # every file has a name
    res = json.loads(dg("eval", "--index", ix, "--json").stdout)
    real, weak = res["n_test"]["audio-text"], res["weak_captions"]["n_test"]["audio-text"]
    assert weak["audio"] >= real["audio"] >= 2 and weak["text"] == weak["audio"]  # one name per held-out clip


def test_auto_trains_each_file_on_its_own_captions_where_few_have_any(
        library: tuple[Path, dict[str, str]], tiny_clap_dir: Path, tmp_path: Path) -> None:
    """A library whose sidecars cover few files (Debian's sound packages: 135 of 10,140) trains, under ``auto``,
    every file on its sidecar captions where it has any and on its name elsewhere (``per-file``), not on the
    few captioned files alone."""
    root = tmp_path / "few"
    shutil.copytree(library[0], root)
    names = sorted(p.name for p in root.iterdir())
    for i, name in enumerate(names[:10]):
        (root / name).with_suffix(".txt").write_text(f"a recording {i}\nrecording number {i}\nsound {i}\n")
    ix = tmp_path / "ix"
    assert dg("index", root, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    with Catalog.open(ix) as cat:
        encoder = load_encoder(stored_encoder_config(cat, device="cpu"), progress=False)
        files = cat.files(status="ok")
        per_file = index_pairs(cat, encoder, ["text"], captions="per-file")
        sidecars = index_pairs(cat, encoder, ["text"], captions="sidecars")
    captioned = {f.sha256 for f in files if Path(f.path).name in names[:10]}
    # every recording here is one window: 3 sidecar pairs per captioned file, 1 name pair per other file
    assert per_file.caption_counts() == {"sidecar": 30, "name": len(files) - 10}
    assert set(per_file.groups[~per_file.weak_mask()].tolist()) == captioned
    assert set(per_file.groups[per_file.weak_mask()].tolist()) == {f.sha256 for f in files} - captioned
    np.testing.assert_array_equal(per_file.take(~per_file.weak_mask()).arrays["text"], sidecars.arrays["text"])
    auto = dg("train", "--index", ix, "--epochs", "1", "--batch-size", "16", "--json")
    assert auto.exit_code == 0, auto.output
    out = json.loads(auto.stdout)
    held_out = {g for g in {f.sha256 for f in files} if is_test_group(g)}
    assert out["captions"] == "per-file" and "note:" not in auto.stderr
    assert out["caption_pairs"] == {"sidecar": 3 * len(captioned - held_out),
                                    "name": len(files) - 10 - len(held_out - captioned)}
