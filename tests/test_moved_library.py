"""A library that moved (`dgsearch index NEW --moved-from OLD`), on a real library: CC0 recordings of Debian's
sonic-pi-samples indexed with the real aisfx weights through the CLI, then moved with a real rename.

The rows follow the files (same ids, vectors and labels) and no file whose size and time held is read; what
changed during the move is taken in as any run would (a changed file re-embedded, a renamed one followed, a
deleted one removed); a copy is refused and changes nothing; a library indexed at its new place before the flag
was known keeps those rows and gains the old ones' labels; a run that copies vectors from files no longer there
says which command follows the move.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from real_sounds import require_real_sounds

from cli_runner import dg
from diffgap_search.indexing.moved import moved_library_hint
from diffgap_search.indexing.plan import make_plan
from diffgap_search.media.discover import DiscoveredFile, path_key
from diffgap_search.media.listing import list_library
from diffgap_search.store.catalog import Catalog

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")

STEMS = ("bd_boom", "bd_haus", "sn_dolf", "drum_snare_hard", "tabla_na", "tabla_na_o", "ambi_choir")


def _library(root: Path) -> Path:
    """Seven real recordings, four in ``drums/``, under ``root/old/sfx``."""
    sounds = {s.stem: s for s in require_real_sounds()}
    lib = root / "old" / "sfx"
    (lib / "drums").mkdir(parents=True)
    for stem in STEMS:
        folder = lib / "drums" if stem.startswith(("bd_", "sn_", "drum_")) else lib
        shutil.copy2(sounds[stem].path, folder / f"{stem}.flac")
    return lib


def _index(lib: Path, ix: Path, *extra: object) -> dict:
    r = dg("index", lib, "--index", ix, "--model", "aisfx", "--workers", "0", "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _rows(ix: Path) -> dict[str, int]:
    """Display path -> file id, every row of the catalog."""
    with sqlite3.connect(ix / "catalog.sqlite") as db:
        return {path: fid for fid, path in db.execute("SELECT id, path FROM files")}


def _vectors(ix: Path) -> dict[int, bytes]:
    """File id -> its windows' audio vectors, end to end."""
    with sqlite3.connect(ix / "catalog.sqlite") as db:
        rows = db.execute("SELECT s.file_id, v.vector FROM segments s JOIN vectors v ON v.segment_id = s.id"
                          " WHERE v.space = 'audio' ORDER BY s.id")
        out: dict[int, bytes] = {}
        for fid, blob in rows:
            out[fid] = out.get(fid, b"") + bytes(blob)
        return out


def _labelled(ix: Path, label: str) -> list[str]:
    r = dg("labels", label, "--index", ix, "--json")
    assert r.exit_code == 0, r.output
    return [f["path"] for f in json.loads(r.stdout)["files"]]


@pytest.fixture()
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    """The library indexed at ``old/sfx``, two kicks labelled "Kick", the tabla stroke and the choir "Keep"."""
    lib = _library(tmp_path)
    ix = tmp_path / "ix"
    _index(lib, ix)
    assert dg("label", "Kick", lib / "drums" / "bd_boom.flac", lib / "drums" / "bd_haus.flac", "-i", ix).exit_code == 0
    assert dg("label", "Keep", lib / "tabla_na.flac", lib / "ambi_choir.flac", "-i", ix).exit_code == 0
    return lib, ix


def test_a_moved_library_is_followed_with_its_ids_vectors_and_labels(indexed: tuple[Path, Path]) -> None:
    old, ix = indexed
    before_rows, before_vectors = _rows(ix), _vectors(ix)
    new = old.parent.parent / "disk2" / "library"
    new.parent.mkdir()
    os.rename(old, new)  # what `mv` does on one file system: times kept
    os.rmdir(old.parent)
    # during the move: one file changed, one renamed, one deleted
    sounds = {s.stem: s for s in require_real_sounds()}
    shutil.copy(sounds["elec_blip"].path, new / "drums" / "bd_haus.flac")
    os.rename(new / "tabla_na.flac", new / "tabla_stroke.flac")
    os.remove(new / "ambi_choir.flac")

    r = dg("index", new, "-i", ix, "--moved-from", old, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    preview = json.loads(r.stdout)
    assert preview["moved_from"] == str(old)
    assert [pair[1] for pair in preview["moved"]] == [
        str(new / "drums" / n) for n in ("bd_boom.flac", "bd_haus.flac", "drum_snare_hard.flac", "sn_dolf.flac")
    ] + [str(new / "tabla_na_o.flac")]
    assert preview["changed"] == [str(new / "drums" / "bd_haus.flac")] and preview["new"] == []
    assert preview["renamed"] == [[str(old / "tabla_na.flac"), str(new / "tabla_stroke.flac")]]
    assert preview["removed"] == [str(old / "ambi_choir.flac")] and preview["copied"] == []
    assert _rows(ix) == before_rows  # a dry run writes nothing

    report = _index(new, ix, "--moved-from", old)
    assert (report["moved"], report["superseded"], report["renamed"], report["deleted"]) == (5, 0, 1, 1)
    assert (report["changed"], report["new"], report["embedded_files"], report["unchanged"]) == (1, 0, 1, 4)
    after = _rows(ix)
    assert sorted(after) == sorted([str(new / "drums" / f"{s}.flac") for s in ("bd_boom", "bd_haus", "sn_dolf",
                                                                              "drum_snare_hard")]
                                   + [str(new / "tabla_na_o.flac"), str(new / "tabla_stroke.flac")])
    for stem in ("bd_boom", "sn_dolf", "drum_snare_hard"):  # the same rows: ids and vectors kept
        fid = after[str(new / "drums" / f"{stem}.flac")]
        assert fid == before_rows[str(old / "drums" / f"{stem}.flac")]
        assert _vectors(ix)[fid] == before_vectors[fid]
    assert after[str(new / "tabla_stroke.flac")] == before_rows[str(old / "tabla_na.flac")]
    haus = after[str(new / "drums" / "bd_haus.flac")]
    assert haus != before_rows[str(old / "drums" / "bd_haus.flac")]  # re-embedded: a new row at its path
    assert _labelled(ix, "Kick") == [str(new / "drums" / "bd_boom.flac"), str(new / "drums" / "bd_haus.flac")]
    assert _labelled(ix, "Keep") == [str(new / "tabla_stroke.flac")]
    r = dg("query", "Kick", "-i", ix, "--mode", "keyword", "--json")  # keyword rows renewed: new folder words
    assert r.exit_code == 0, r.output
    assert {h["path"] for h in json.loads(r.stdout)["hits"]} == {str(new / "drums" / "bd_boom.flac"),
                                                                  str(new / "drums" / "bd_haus.flac")}
    r = dg("query", "library", "-i", ix, "--mode", "keyword", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["hits"]) == 6

    again = _index(new, ix, "--moved-from", old)  # the same command again: nothing left to follow, nothing done
    assert (again["moved"], again["embedded_files"], again["unchanged"]) == (0, 0, 6)
    r = dg("index", new, "-i", ix, "--moved-from", old)
    assert r.exit_code == 0, r.output
    assert f"note: nothing in the index was under {old}: no move to follow (followed already?)" in r.stdout


def test_only_the_files_whose_stat_changed_are_read(indexed: tuple[Path, Path]) -> None:
    """The plan of a moved library hashes what any run would hash, and nothing else; rows under a folder the walk
    cannot read are kept, at their new places."""
    old, ix = indexed
    new = old.parent.parent / "moved"
    os.rename(old, new)
    (new / "sn_new.flac").write_bytes((new / "tabla_na_o.flac").read_bytes() + b"\0")  # new, unlike any row
    os.utime(new / "tabla_na.flac", ns=(1, 1))  # touched: same bytes, another time
    hashed: list[str] = []

    def counting_hash(f: DiscoveredFile) -> str:
        from diffgap_search.media.hashing import sha256_file

        hashed.append(f.path.name)
        return sha256_file(f.path)

    found = [f for f in list_library(new, exclude=[ix]).media if f.path.parent.name != "drums"]
    with Catalog.open(ix) as catalog:
        plan = make_plan(found, catalog, path_key(new) + b"/", counting_hash, unreadable=[path_key(new / "drums")],
                         moved_from=path_key(old) + b"/")
    assert sorted(hashed) == ["sn_new.flac", "tabla_na.flac"]
    assert sorted(m.path for m in plan.moved) == sorted(
        [str(new / "drums" / f"{s}.flac") for s in ("bd_boom", "bd_haus", "sn_dolf", "drum_snare_hard")]
        + [str(new / f"{s}.flac") for s in ("ambi_choir", "tabla_na", "tabla_na_o")])
    assert sorted(r.path for r in plan.kept_unreadable) == sorted(
        str(old / "drums" / f"{s}.flac") for s in ("bd_boom", "bd_haus", "sn_dolf", "drum_snare_hard"))
    assert [f.path.name for f, _ in plan.touched] == ["tabla_na.flac"]
    assert [t.file.path.name for t in plan.embed] == ["sn_new.flac"]
    assert (plan.deleted, plan.renamed, plan.copied, plan.superseded) == ([], [], [], [])


def test_a_copy_is_refused_and_changes_nothing(indexed: tuple[Path, Path]) -> None:
    old, ix = indexed
    new = old.parent.parent / "copy"
    shutil.copytree(old, new)
    before = _rows(ix)
    for extra in ((), ("--dry-run",)):
        r = dg("index", new, "-i", ix, "--moved-from", old, *extra)
        assert r.exit_code == 2, r.output
        assert (f"--moved-from {old}: 7 of the 7 files indexed there are still there ({old / 'ambi_choir.flac'}, ...):"
                " that is a copy, not a move.") in " ".join(r.stderr.split())
    assert _rows(ix) == before
    for bad in (new, new.parent):  # the library's own folder, or one above it
        r = dg("index", new, "-i", ix, "--moved-from", bad)
        assert r.exit_code == 2, r.output
        assert "the library's old place cannot be" in " ".join(r.stderr.split())
    assert _rows(ix) == before


def test_a_library_indexed_at_its_new_place_first_keeps_those_rows(indexed: tuple[Path, Path]) -> None:
    """Indexed at NEW without the flag (its files copied), then told it moved: the NEW rows stay, the old ones
    leave, their labels join."""
    old, ix = indexed
    new = old.parent.parent / "sfx2"
    os.rename(old, new)
    first = dg("index", new, "-i", ix, "--model", "aisfx", "--workers", "0")
    assert first.exit_code == 0, first.output
    assert (f"note: files here have the same content as files indexed under {old} that are no longer there: if the"
            f" library moved, `dgsearch index {new} --moved-from {old}` follows it (the old rows leave the index,"
            " their labels come along)") in " ".join(first.stdout.split())
    copies = {p: i for p, i in _rows(ix).items() if p.startswith(str(new))}
    assert len(copies) == 7
    assert dg("label", "Fresh", new / "drums" / "bd_boom.flac", "-i", ix).exit_code == 0
    assert dg("label", "kick", new / "drums" / "sn_dolf.flac", "-i", ix).exit_code == 0  # "Kick" folded

    report = _index(new, ix, "--moved-from", old)
    assert (report["moved"], report["superseded"], report["deleted"], report["copied"]) == (0, 7, 0, 0)
    assert _rows(ix) == copies
    assert _labelled(ix, "Kick") == [str(new / "drums" / n) for n in ("bd_boom.flac", "bd_haus.flac", "sn_dolf.flac")]
    assert _labelled(ix, "Fresh") == [str(new / "drums" / "bd_boom.flac")]
    assert _labelled(ix, "Keep") == [str(new / "ambi_choir.flac"), str(new / "tabla_na.flac")]
    r = dg("labels", "-i", ix, "--json")
    assert r.exit_code == 0, r.output
    assert [(row["label"], row["files"]) for row in json.loads(r.stdout)["labels"]] == [
        ("Kick", 3), ("Keep", 2), ("Fresh", 1)]


def test_a_single_moved_file_is_followed(tmp_path: Path) -> None:
    sound = require_real_sounds()[0]
    (tmp_path / "a").mkdir()
    shutil.copy2(sound.path, tmp_path / "a" / "one.flac")
    ix = tmp_path / "ix"
    _index(tmp_path / "a" / "one.flac", ix)
    ids = _rows(ix)
    os.rename(tmp_path / "a", tmp_path / "b")
    report = _index(tmp_path / "b" / "one.flac", ix, "--moved-from", tmp_path / "a" / "one.flac")
    assert (report["moved"], report["embedded_files"], report["unchanged"]) == (1, 0, 1)
    assert _rows(ix) == {str(tmp_path / "b" / "one.flac"): ids[str(tmp_path / "a" / "one.flac")]}


def test_the_hint_names_the_folder_the_library_moved_from(tmp_path: Path) -> None:
    """Same-named folders above the library do not stretch the suggestion; files still there, or renamed on the
    way, suggest nothing."""
    new_root = path_key(tmp_path / "new" / "sfx") + b"/"
    (tmp_path / "old" / "sfx").mkdir(parents=True)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "a.wav").write_bytes(b"x")
    pairs = [(new_root + b"a.wav", path_key(tmp_path / "old" / "sfx" / "a.wav")),
             (new_root + b"d/b.wav", path_key(tmp_path / "old" / "sfx" / "d" / "b.wav")),
             (new_root + b"c.wav", path_key(tmp_path / "elsewhere" / "c.wav"))]
    assert moved_library_hint(new_root, pairs) == str(tmp_path / "old" / "sfx")
    assert moved_library_hint(new_root, [(new_root + b"a.wav", path_key(tmp_path / "kept" / "a.wav"))]) is None
    assert moved_library_hint(new_root, [(new_root + b"a.wav", path_key(tmp_path / "old" / "sfx" / "z.wav"))]) is None
    assert moved_library_hint(new_root, [(new_root + b"a.wav", path_key(tmp_path / "new" / "a.wav"))]) is None


def test_a_library_moved_up_into_the_folder_above_is_followed(tmp_path: Path) -> None:
    """``mv /x/sfx/* /x/ && rmdir /x/sfx``: the old folder lies under the new one."""
    sounds = {s.stem: s for s in require_real_sounds()}
    top = tmp_path / "x"
    (top / "sfx" / "drums").mkdir(parents=True)
    shutil.copy2(sounds["ambi_choir"].path, top / "sfx" / "choir.flac")
    shutil.copy2(sounds["bd_boom"].path, top / "sfx" / "drums" / "kick.flac")
    ix = tmp_path / "ix"
    _index(top / "sfx", ix)
    before = _rows(ix)
    assert dg("label", "Kick", top / "sfx" / "drums" / "kick.flac", "-i", ix).exit_code == 0
    for entry in ("choir.flac", "drums"):
        os.rename(top / "sfx" / entry, top / entry)
    os.rmdir(top / "sfx")
    report = _index(top, ix, "--moved-from", top / "sfx")
    assert (report["moved"], report["copied"], report["embedded_files"], report["unchanged"]) == (2, 0, 0, 2)
    assert _rows(ix) == {str(top / "choir.flac"): before[str(top / "sfx" / "choir.flac")],
                         str(top / "drums" / "kick.flac"): before[str(top / "sfx" / "drums" / "kick.flac")]}
    assert _labelled(ix, "Kick") == [str(top / "drums" / "kick.flac")]
