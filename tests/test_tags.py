"""Embedded metadata: real tag blocks written by mutagen (ID3, Vorbis comments, FLAC, MP4) and by ffmpeg's
WAV muxer (RIFF INFO, BWF bext) are read into one vocabulary, stored in the catalog, shown in hits
(``--json`` too) and in ``dgsearch info``, read once per decoded file and again when the file changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig
from diffgap_search.media.tags import FileTags, read_tags
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.tags import tags_of
from fixtures_index import INLINE, CountingLoader
from fixtures_tags import (DOOR, ODD_NAME, build_tagged_library, encode, needs_ffmpeg, tag_mp3, tag_mp4, tag_vorbis,
                           wav_with_info_and_bext)

pytestmark = needs_ffmpeg

FULL = {"title": "Wood door slam", "description": "Heavy wooden door", "comment": "take 3 of 5",
        "keywords": "door; wood", "artist": "Foley Team"}


@pytest.mark.parametrize(("suffix", "write", "rate", "channels"), [
    (".mp3", tag_mp3, 44_100, 1), (".ogg", tag_vorbis, 48_000, 2), (".opus", tag_vorbis, 48_000, 2),
    (".flac", tag_vorbis, 96_000, 2), (".m4a", tag_mp4, 44_100, None),
])
def test_each_container_format_is_read_into_one_vocabulary(tmp_path: Path, suffix: str, write, rate: int,
                                                           channels: int | None) -> None:  # type: ignore[no-untyped-def]
    path = encode(tmp_path / f"x{suffix}", sample_rate=rate, channels=channels or 1)
    write(path, **FULL, genre="DOORS", album="Household Vol 1")
    got = read_tags(path)
    assert got.tags == (("title", "Wood door slam"), ("description", "Heavy wooden door"), ("comment", "take 3 of 5"),
                        ("keywords", "door; wood"), ("category", "DOORS"), ("artist", "Foley Team"),
                        ("library", "Household Vol 1"))
    assert got.sample_rate == rate
    if channels is not None:  # mutagen reports a mono AAC stream as 2 channels; the decoder's count is stored
        assert got.channels == channels


def test_riff_info_and_bext_are_read_from_wav(tmp_path: Path) -> None:
    path = wav_with_info_and_bext(
        tmp_path / "x.wav", sample_rate=96_000, channels=2,
        info={"title": "Wood door slam", "comment": "Café take", "artist": "Foley Team", "genre": "DOORS",
              "album": "Household Vol 1", "IKEY": "door; wood", "ISBJ": "a subject"},
        description="BWF: heavy wooden door")
    assert read_tags(path) == FileTags((
        ("title", "Wood door slam"), ("description", "a subject"), ("description", "BWF: heavy wooden door"),
        ("comment", "Café take"), ("keywords", "door; wood"), ("category", "DOORS"), ("artist", "Foley Team"),
        ("library", "Household Vol 1")), 96_000, 2)


def test_untagged_and_unreadable_files_have_no_tags(tmp_path: Path) -> None:
    assert read_tags(encode(tmp_path / "plain.flac")).tags == ()
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3\x04\x00\x00\xff\xff\xff\xff" + os.urandom(64))
    assert read_tags(junk) == FileTags()


@pytest.fixture(scope="module")
def tagged_index(tmp_path_factory: pytest.TempPathFactory, tiny_clap_dir: Path) -> tuple[Path, Path]:
    from diffgap_search.indexing import index_folder

    base = tmp_path_factory.mktemp("tagged")
    lib = build_tagged_library(base / "lib")
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8)
    index_folder(lib, base / "ix", load_encoder=CountingLoader(), encoder_cfg=cfg, indexing_cfg=INLINE)
    return lib, base / "ix"


def test_hits_and_info_carry_the_tags(tagged_index: tuple[Path, Path]) -> None:
    lib, ix = tagged_index
    r = CliRunner().invoke(app, ["query", "wood door slam", "--index", str(ix), "--mode", "keyword", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert [Path(h["path"]).name for h in hits] == [DOOR, "Tür-Knall (final).mp3"]  # the knock holds "door"
    assert hits[0]["tags"] == {"title": ["Wood door slam"], "description": ["Heavy wooden door slammed shut"],
                               "keywords": ["door; wood; slam"], "category": ["DOORS"], "artist": ["Foley Team"],
                               "library": ["Household Vol 1"]}
    knock = CliRunner().invoke(app, ["query", "knock", "--index", str(ix), "--mode", "keyword", "--json"])
    assert json.loads(knock.stdout)["hits"][0]["tags"] == {"title": ["Türknall"], "comment": ["a knock at the door"],
                                                           "keywords": ["knock, hit"]}
    info = json.loads(CliRunner().invoke(app, ["info", "--index", str(ix), "--json"]).stdout)
    assert info["tags"] == {"files_with_tags": 6, "files_with_info": 11,
                            "by_key": {"artist": 2, "category": 4, "comment": 2, "description": 2, "keywords": 3,
                                       "library": 2, "title": 5}}
    assert info["summary"]["tags"] == ("6 files tagged: artist 2, category 4, comment 2, description 2, keywords 3,"
                                       " library 2, title 5")
    assert info["summary"]["schema version"] == 3 and info["summary"]["labels"] == "none"
    table = CliRunner().invoke(app, ["query", "engine", "--index", str(ix), "--mode", "keyword"], env={"COLUMNS": "400"})
    assert "title: Engine idle; keywords: car motor; artist: Garage" in table.stdout


def test_stream_facts_come_from_the_decoder(tagged_index: tuple[Path, Path]) -> None:
    lib, ix = tagged_index
    with Catalog.open(ix) as cat:
        rows = dict(cat.conn.execute("SELECT f.path, i.sample_rate || '/' || i.channels FROM files f"
                                     " JOIN file_info i ON i.file_id = f.id"))
    got = {Path(p).name: v for p, v in rows.items()}
    assert got[DOOR] == "44100/2" and got["engine idle.m4a"] == "44100/1"  # mono AAC: the decoder's count
    assert got["猫の声 take2.opus"] == "48000/2" and got["CrowdCheer.flac"] == "48000/1" and got[ODD_NAME] == "44100/1"


def test_tags_are_read_once_per_decoded_file_and_again_when_it_changes(
    tmp_path: Path, tiny_clap_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import diffgap_search.indexing.decode as decode_mod
    from diffgap_search.indexing import index_folder

    calls: list[str] = []
    original = decode_mod.read_tags

    def counting(path: Path) -> FileTags:
        calls.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(decode_mod, "read_tags", counting)
    lib = tmp_path / "lib"
    mp3 = encode(lib / "a.mp3")
    tag_mp3(mp3, title="Old title")
    encode(lib / "b.flac")
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8)
    index_folder(lib, tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=cfg, indexing_cfg=INLINE)
    assert sorted(calls) == ["a.mp3", "b.flac"]
    calls.clear()
    loader = CountingLoader()
    index_folder(lib, tmp_path / "ix", load_encoder=loader, encoder_cfg=cfg, indexing_cfg=INLINE)
    assert (calls, loader.loads) == ([], 0)  # unchanged: nothing decoded, nothing read
    tag_mp3(mp3, title="New title", comment="re-tagged")
    index_folder(lib, tmp_path / "ix", load_encoder=loader, encoder_cfg=cfg, indexing_cfg=INLINE)
    assert calls == ["a.mp3"]
    with Catalog.open(tmp_path / "ix") as cat:
        by_name = {Path(f.path).name: f.id for f in cat.files()}
        assert tags_of(cat, by_name.values()) == {by_name["a.mp3"]: {"title": ["New title"],
                                                                          "comment": ["re-tagged"]}}
        from diffgap_search.config import SearchConfig, SearchMode
        from diffgap_search.search.keyword import search_keyword

        assert search_keyword(cat, "old", SearchConfig(mode=SearchMode.SEMANTIC)).hits == []
        assert [Path(h.path).name for h in search_keyword(cat, "new", SearchConfig(mode=SearchMode.SEMANTIC)).hits] == ["a.mp3"]


def test_weak_captions_use_the_tags_read_at_index_time(tagged_index: tuple[Path, Path]) -> None:
    from diffgap_search.bridge.pairs import _file_captions

    _, ix = tagged_index
    with Catalog.open(ix) as cat:
        files = {f.id: f for f in cat.files(status="ok")}
        caps = _file_captions(cat, files, "names", None)
    door = next(fid for fid, f in files.items() if f.path.endswith(DOOR))
    # the cleaned name, then title, description, keywords, category (artist and library are not captions)
    assert caps[door] == [("door wood slam heavy", "name"), ("wood door slam", "name"),
                          ("heavy wooden door slammed shut", "name"), ("door wood slam", "name"),
                          ("doors", "name")]
