"""Paths an indexing run cannot read — a folder without read permission, a broken symlink — are skipped and
listed, and what was indexed at or below them is kept as it was, not deleted as gone (a stale network mount or a
permission slip must not cost a library its vectors). Caption files that cannot be used are listed too.

The folder test denies the permission for real: as a normal user with ``chmod 0``; as root (CI), the run
itself is started without the capabilities that let root read any folder (``setpriv``'s bounding set), so the
kernel refuses it as it would refuse a user.
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
from fixtures_index import INLINE, CountingLoader

from diffgap_search.config import EncoderConfig
from diffgap_search.errors import NothingIndexedError
from diffgap_search.indexing import index_folder
from diffgap_search.media.captions import CaptionIndex
from diffgap_search.media.discover import discover
from diffgap_search.media.listing import EMPTY_ROOT, is_at_or_below, list_library

LIBRARY = ["birds/Yabc123.mp3", "birds/chirp.ogg", "dog_bark.wav", "long/siren.wav", "rain.flac"]  # clips_dir's media


def indexed_names(index_dir: Path) -> list[str]:
    """The indexed files' paths relative to the catalog's common folder ``clips/``, sorted."""
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    paths = [p for (p,) in conn.execute("SELECT path FROM files ORDER BY path")]
    conn.close()
    return [p.split("/clips/", 1)[1] for p in paths]


def test_one_walk_lists_what_discover_and_the_caption_scan_found(clips_dir: Path) -> None:
    listing = list_library(clips_dir)
    assert listing.media == list(discover(clips_dir))
    assert [p.relative_to(clips_dir).as_posix() for p in listing.files] == [
        "birds/Yabc123.mp3", "birds/captions.csv", "birds/chirp.ogg", "clotho.csv", "dog_bark.txt", "dog_bark.wav",
        "long/siren.wav", "rain.flac", "rain.json"]
    assert listing.unreadable == []
    assert CaptionIndex.from_files(listing.files) == CaptionIndex.build(clips_dir)


def test_only_names_an_index_reads_are_looked_at(tmp_path: Path) -> None:
    """A broken symlink or any other file whose name is neither media nor a caption sidecar is not listed, not
    stat'ed and not reported: nothing would read it."""
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "cover.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "art" / "hit.wav").symlink_to(tmp_path / "gone.wav")
    (tmp_path / "art" / "notes.md").write_text("x", encoding="utf-8")
    (tmp_path / "art" / "hit.txt").write_text("a hit", encoding="utf-8")
    listing = list_library(tmp_path)
    assert [p.name for p in listing.files] == ["hit.txt"]
    assert listing.media == []
    assert listing.unreadable == [(tmp_path / "art" / "hit.wav", "broken symlink")]


def test_is_at_or_below_matches_whole_path_components() -> None:
    tops = [b"/lib/sub", b"/lib/link.wav"]
    assert [is_at_or_below(k, tops) for k in (b"/lib/sub", b"/lib/sub/a.wav", b"/lib/sub/deep/b.wav",
                                              b"/lib/subway/c.wav", b"/lib/link.wav", b"/lib/link.wav2")] == [
        True, True, True, False, True, False]


def test_a_broken_symlink_keeps_its_file_until_it_is_mended(clips_dir: Path, tmp_path: Path,
                                                            tiny_cfg: EncoderConfig) -> None:
    target = tmp_path / "elsewhere" / "rain.flac"
    target.parent.mkdir()
    shutil.move(clips_dir / "rain.flac", target)
    (clips_dir / "rain.flac").symlink_to(target)
    index_dir = tmp_path / "ix"
    first = index_folder(clips_dir, index_dir, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert (first.new, first.unreadable, first.kept_unreadable) == (5, [], 0)
    target.rename(target.with_suffix(".moved"))  # the drive behind the link is gone
    loader = CountingLoader()
    second = index_folder(clips_dir, index_dir, load_encoder=loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert second.unreadable == [(str(clips_dir / "rain.flac"), "broken symlink")]
    assert (second.found, second.unchanged, second.deleted, second.kept_unreadable, loader.loads) == (4, 4, 0, 1, 0)
    assert indexed_names(index_dir) == LIBRARY
    assert second.to_dict()["unreadable"] == [{"path": str(clips_dir / "rain.flac"), "error": "broken symlink"}]
    target.with_suffix(".moved").rename(target)
    third = index_folder(clips_dir, index_dir, load_encoder=loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert (third.found, third.unchanged, third.embedded_files, third.unreadable, loader.loads) == (5, 5, 0, [], 0)
    (clips_dir / "rain.flac").unlink()  # the link itself removed: the file leaves the index as before
    fourth = index_folder(clips_dir, index_dir, load_encoder=loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert (fourth.deleted, fourth.kept_unreadable, fourth.unreadable) == (1, 0, [])


def test_an_empty_library_folder_keeps_its_files(indexed: tuple[Path, Path], tmp_path: Path,
                                                 tiny_cfg: EncoderConfig) -> None:
    """The mount point of a drive that is not mounted is an empty folder: what was indexed there is kept."""
    clips, index_dir = indexed
    away = tmp_path / "away"
    clips.rename(away)
    clips.mkdir()
    loader = CountingLoader()
    report = index_folder(clips, index_dir, load_encoder=loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert report.unreadable == [(str(clips), EMPTY_ROOT)]
    assert (report.found, report.deleted, report.kept_unreadable, loader.loads) == (0, 0, 5, 0)
    assert indexed_names(index_dir) == LIBRARY
    clips.rmdir()
    away.rename(clips)  # mounted again
    again = index_folder(clips, index_dir, load_encoder=loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert (again.unchanged, again.embedded_files, again.unreadable, loader.loads) == (5, 0, [], 0)
    (clips / "long" / "siren.wav").unlink()  # an emptied subfolder is an ordinary deletion
    (clips / "long").rmdir()
    (clips / "long").mkdir()
    last = index_folder(clips, index_dir, load_encoder=loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert (last.deleted, last.kept_unreadable, last.unreadable) == (1, 0, [])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NothingIndexedError) as refused:
        index_folder(empty, tmp_path / "ix2", load_encoder=loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    assert str(refused.value) == f"no audio or video files found under {empty}"


def test_unusable_caption_files_are_listed(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    (clips_dir / "dog_bark.txt").write_bytes(b"\xc3\x28 a dog")  # not UTF-8 (b"\xff\xfe" would open UTF-16: a BOM)
    (clips_dir / "rain.json").write_text('{"caption": 3}', encoding="utf-8")
    report = index_folder(clips_dir, tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                          indexing_cfg=INLINE)
    assert report.caption_errors == [(str(clips_dir / "dog_bark.txt"), "not UTF-8 text"),
                                     (str(clips_dir / "rain.json"), 'bad JSON: "caption" must be a string or a list'
                                                                    " of strings")]
    assert report.new == 5


def _denied(argv: list[str]) -> list[str]:
    """``argv`` run without read permission anywhere it is denied: as is for a normal user; for root, under
    ``setpriv`` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root reads any folder, and setpriv (util-linux) is not installed to drop that")
    drop = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    if subprocess.run([*drop, "true"], capture_output=True).returncode != 0:
        pytest.skip("root reads any folder, and this container does not let setpriv drop that")
    return [*drop, *argv]


def test_a_folder_that_cannot_be_read_keeps_its_files(indexed: tuple[Path, Path], tiny_clap_dir: Path) -> None:
    clips, index_dir = indexed
    code = ("import sys\nfrom diffgap_search.cli.app import main\n"
            f"sys.argv = ['dgsearch', 'index', {str(clips)!r}, '--index', {str(index_dir)!r},"
            f" '--model', {str(tiny_clap_dir)!r}, '--workers', '0', *sys.argv[1:]]\nmain()\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    query = ("import sys\nfrom diffgap_search.cli.app import main\n"
             f"sys.argv = ['dgsearch', 'query', '--audio', {str(clips / 'dog_bark.wav')!r}, '--index',"
             f" {str(index_dir)!r}, '--model', {str(tiny_clap_dir)!r}]\nmain()\n")
    (clips / "birds").chmod(0)
    try:
        shown = subprocess.run(_denied([sys.executable, "-c", code]), capture_output=True, text=True, timeout=120,
                               env=env, cwd=clips.parent)
        as_json = subprocess.run(_denied([sys.executable, "-c", code, "--json"]), capture_output=True, text=True,
                                 timeout=120, env=env)
        hits = subprocess.run(_denied([sys.executable, "-c", query]), capture_output=True, text=True, timeout=120,
                              env=env, cwd=clips.parent)
    finally:
        (clips / "birds").chmod(0o755)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        f"index {index_dir} is up to date: 3 files found, nothing to embed (3 unchanged, 0 renamed, 0 copied,"
        " 0 removed)",
        "1 path skipped; the 2 files indexed there are kept as they were:",
        "  clips/birds: cannot read folder: Permission denied",
    ]
    report = json.loads(as_json.stdout)
    assert (report["found"], report["deleted"], report["kept_unreadable"]) == (3, 0, 2)
    assert report["unreadable"] == [{"path": str(clips / "birds"), "error": "cannot read folder: Permission denied"}]
    assert indexed_names(index_dir) == LIBRARY
    assert hits.returncode == 0, hits.stderr
    files = [line.split("│")[2].strip() for line in hits.stdout.splitlines() if line.count("│") >= 4]
    assert sorted(files) == ["clips/birds/Yabc123.mp3 (unreadable)", "clips/birds/chirp.ogg (unreadable)",
                             "clips/dog_bark.wav", "clips/long/siren.wav", "clips/rain.flac"]
    assert hits.stderr.splitlines()[-1] == ("note: 2 of these files cannot be read now (a folder's permission, or a"
                                            " drive or share that is away); they stay in the index until a run can"
                                            " read them again")
    again = subprocess.run([sys.executable, "-c", code, "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(again.stdout)["unchanged"] == 5 and json.loads(again.stdout)["unreadable"] == []
