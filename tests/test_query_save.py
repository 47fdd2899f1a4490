"""``dgsearch query --save DIR`` (and ``similar``): each hit's window cut out into a folder as WAV.

Against the tiny-CLAP index of the clip tree (``cli_index``): the names, the order, the samples (equal to the
source's over the window), ``saved`` in JSON, a hit whose file is gone skipped with its reason, and a folder
that cannot be made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from cli_runner import wide

dg = wide(400)  # rich wraps stderr to the terminal: these paths are long


def test_each_hits_window_is_saved_in_rank_order_with_its_own_samples(cli_index: Path, clips_dir: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "picked"
    r = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index, "-k", 3, "--save", out, "--jsonl")
    assert r.exit_code == 0, r.output
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    names = [f"{rank:02d} {Path(h['path']).stem} {h['start_s']:.3f}".rstrip("0").rstrip(".") + "-"
             + f"{h['end_s']:.3f}".rstrip("0").rstrip(".") + "s.wav" for rank, h in enumerate(hits, 1)]
    assert sorted(p.name for p in out.iterdir()) == names and names[0] == "01 dog_bark 0-3s.wav"
    assert [h["saved"] for h in hits] == [str(out / n) for n in names]
    source, rate = sf.read(clips_dir / "dog_bark.wav", dtype="int16")
    cut, cut_rate = sf.read(out / names[0], dtype="int16")
    assert cut_rate == rate == 16_000 and np.array_equal(cut, source)
    assert r.stderr.splitlines()[-1] == f"saved 3 windows to {out}"


def test_a_hit_whose_file_is_gone_is_skipped_with_its_reason(cli_index: Path, clips_dir: Path,
                                                           tmp_path: Path) -> None:
    (clips_dir / "rain.flac").unlink()
    out = tmp_path / "picked"
    r = dg("similar", clips_dir / "dog_bark.wav", "--index", cli_index, "-k", 10, "--save", out, "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    gone = [h for h in hits if h["path"].endswith("rain.flac")]
    assert len(hits) == 4 and len(gone) == 1 and gone[0]["saved"] is None
    assert len(list(out.iterdir())) == 3
    assert f"  not saved: {clips_dir / 'rain.flac'}: no longer there (moved or deleted since it was indexed)" in (
        r.stderr.splitlines())


def test_a_folder_that_cannot_be_made_is_exit_12(cli_index: Path, clips_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("in the way")
    r = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index, "--save", blocker / "picked")
    assert r.exit_code == 12
    assert r.stderr == f"dgsearch: error: cannot write to {blocker / 'picked'}: Not a directory\n"
    onto = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", cli_index, "--save", blocker)
    assert onto.exit_code == 12
    assert onto.stderr == f"dgsearch: error: cannot save into {blocker}: it is a file, not a folder\n"


def test_a_file_named_by_a_long_description_is_saved_under_a_shortened_name(tmp_path: Path, clips_dir: Path,
                                                                           tiny_clap_dir: Path) -> None:
    """Sample libraries name files by their description; "01 " + a 245-byte stem + " 0-3s.wav" is past the 255
    bytes a file name may hold (the save failed with "File name too long", and so did its temporary name): the
    stem is cut at a character (never inside "é"), "…" marks the cut, and the window is saved."""
    library = tmp_path / "library"
    library.mkdir()
    stem = ("Forêt été — oiseaux, vent, feuilles, ruisseau lointain, matin de printemps " * 4)[:230]
    assert len(stem.encode()) > 240
    (library / f"{stem}.wav").write_bytes((clips_dir / "dog_bark.wav").read_bytes())
    ix = tmp_path / "ix"
    assert dg("index", library, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    out = tmp_path / "picked"
    r = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", ix, "--save", out, "--json")
    assert r.exit_code == 0, r.output
    (saved,) = out.iterdir()
    name = saved.name
    assert len(name.encode()) <= 255
    assert name.startswith(f"01 {stem[:100]}") and name.endswith("… 0-3s.wav")
    kept = name.removeprefix("01 ").removesuffix("… 0-3s.wav")
    assert stem.startswith(kept) and len(f"01 {stem[:len(kept) + 1]}… 0-3s.wav".encode()) > 255  # as long as fits
    assert json.loads(r.stdout)["hits"][0]["saved"] == str(saved)
    cut, _ = sf.read(saved, dtype="int16")
    source, _ = sf.read(clips_dir / "dog_bark.wav", dtype="int16")
    assert np.array_equal(cut, source)
