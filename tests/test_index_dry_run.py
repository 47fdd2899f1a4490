"""``dgsearch index FOLDER --dry-run``: the files a run would index, re-index, follow and remove, listed before
anything is done; then the run itself does exactly that. Nothing is written, no model is loaded."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from cli_runner import wide
from fixtures_media import write_noise

dg = wide(240)


def snapshot(index_dir: Path) -> dict[str, str]:
    """Every file of the index folder, by name, with its content's digest and its mtime."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
            for p in sorted(index_dir.iterdir()) if p.is_file()}


def test_a_dry_run_lists_what_the_run_then_does_and_changes_nothing(
        clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    ix = tmp_path / "ix"
    assert dg("index", clips_dir, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    write_noise(clips_dir / "new take.wav", 1.5, seed=3)                          # new
    write_noise(clips_dir / "dog_bark.wav", 2.0, seed=4)                          # changed content
    (clips_dir / "rain.flac").rename(clips_dir / "birds" / "rain moved.flac")     # renamed
    shutil.copy(clips_dir / "long" / "siren.wav", clips_dir / "siren copy.wav")   # a copy of an indexed file
    (clips_dir / "birds" / "Yabc123.mp3").unlink()                                # deleted
    (clips_dir / "birds" / ".dgsearchignore").write_text("chirp*\n")             # left out from now on
    before = snapshot(ix)

    r = dg("index", clips_dir, "--index", ix, "--model", tmp_path / "no such model", "--dry-run")
    assert r.exit_code == 0, r.output  # no model is loaded: a wrong one is never looked at
    assert r.stdout.splitlines() == [
        f"dry run: indexing {clips_dir} into {ix} would index 1 new file, re-index 1 changed, follow 1 rename,"
        " reuse the vectors of 1 copy, remove 2 (1 unchanged); nothing was changed",
        "+ new take.wav",
        "~ dog_bark.wav",
        "> rain.flac -> birds/rain moved.flac",
        "= siren copy.wav (same content as long/siren.wav)",
        "- birds/Yabc123.mp3",
        "- birds/chirp.ogg",
        "! birds/chirp.ogg (left out by a .dgsearchignore)",
    ]
    assert snapshot(ix) == before
    preview = json.loads(dg("index", clips_dir, "--index", ix, "--dry-run", "--json").stdout)
    assert preview["dry_run"] is True and preview["indexed_before"] is True and preview["unchanged"] == 1
    assert preview["renamed"] == [[str(clips_dir / "rain.flac"), str(clips_dir / "birds" / "rain moved.flac")]]

    done = json.loads(dg("index", clips_dir, "--index", ix, "--model", tiny_clap_dir, "--workers", "0",
                         "--json").stdout)
    assert (done["new"], done["changed"], done["renamed"], done["copied"], done["deleted"], done["unchanged"]) == (
        len(preview["new"]), len(preview["changed"]), len(preview["renamed"]), len(preview["copied"]),
        len(preview["removed"]), preview["unchanged"])
    assert done["ignored"] == 1
    r = dg("index", clips_dir, "--index", ix, "--dry-run")
    assert r.stdout == (f"dry run: nothing would change: {clips_dir} is up to date in {ix} (5 files unchanged)\n"
                        "! birds/chirp.ogg (left out by a .dgsearchignore)\n")


def test_a_folder_never_indexed_is_all_new_and_no_index_is_made(clips_dir: Path, tmp_path: Path) -> None:
    ix = tmp_path / "not yet"
    preview = json.loads(dg("index", clips_dir, "--index", ix, "--dry-run", "--json").stdout)
    assert sorted(os.path.relpath(p, clips_dir) for p in preview["new"]) == [
        "birds/Yabc123.mp3", "birds/chirp.ogg", "dog_bark.wav", "long/siren.wav", "rain.flac"]
    assert preview["indexed_before"] is False and preview["removed"] == [] and not ix.exists()


def test_dry_run_refuses_watch_and_a_missing_folder_is_the_usual_error(clips_dir: Path, tmp_path: Path) -> None:
    r = dg("index", clips_dir, "--index", tmp_path / "ix", "--dry-run", "--watch")
    assert r.exit_code == 2 and "--dry-run shows one run's changes: leave out --watch" in r.stderr
    r = dg("index", tmp_path / "nowhere", "--index", tmp_path / "ix", "-n")
    assert r.exit_code == 3 and f"no such file or folder: {tmp_path / 'nowhere'}" in r.stderr
