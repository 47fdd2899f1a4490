"""Keyword search (FTS5 over names, folders, captions and tags) and hybrid ranking (reciprocal-rank fusion).

The embedding is the tiny random CLAP (tests/fixtures_models.py), so it knows nothing: the hybrid ranking
must put the file named and tagged "DOOR_Wood_Slam" first for "wood door slam" where the embedding alone
does not. User text is words, never FTS5 syntax."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig, SearchConfig
from diffgap_search.search.keyword import RRF_K, fuse, rrf
from diffgap_search.search import Hit, Query, Searcher
from diffgap_search.store.keywords import match_expression, name_words, words
from fixtures_index import INLINE, CountingLoader
from fixtures_tags import DOOR, ODD_NAME, build_tagged_library, needs_ffmpeg


def test_names_split_on_separators_camel_case_and_digits() -> None:
    assert words("DOOR_Wood_Slam_Heavy_03") == ["DOOR", "Wood", "Slam", "Heavy", "03"]
    assert words("CrowdCheer-loud.v2 take") == ["CrowdCheer", "Crowd", "Cheer", "loud", "v2", "v", "2", "take"]
    assert words("HTTPServer") == ["HTTPServer", "HTTP", "Server"]
    assert words("Tür-Knall (final)") == ["Tür", "Knall", "final"]
    assert words("猫の声 take2") == ["猫の声", "take2", "take", "2"]
    assert name_words("/lib/SFX/DoorSlam03.wav") == "DoorSlam03 Door Slam 03"
    assert name_words("/lib/.hidden") == "hidden"


def test_user_text_is_always_quoted_words() -> None:
    assert match_expression('wood "door" NEAR(slam) AND -x* OR') == '"wood" OR "door" OR "near" OR "slam" OR "and" OR "x" OR "or"'
    assert match_expression('"* - ( ) :') is None


def _hit(file_id: int, path: str, score: float = 0.0) -> Hit:
    return Hit(path, "audio", 0.0, 1.0, score, None, file_id * 10, file_id)


def test_reciprocal_rank_fusion_orders_exactly() -> None:
    """k = 60: a file in both lists beats one first in only one; a file in one list gets its one term; equal
    fused scores put the keyword ranking's file first (it holds the query's words), then go by path."""
    semantic = [_hit(1, "/a"), _hit(2, "/b"), _hit(3, "/c"), _hit(4, "/d")]
    keyword = [_hit(3, "/c"), _hit(5, "/e"), _hit(1, "/a")]
    assert rrf([[1, 2, 3, 4], [3, 5, 1]]) == pytest.approx({
        1: 1 / 61 + 1 / 63, 2: 1 / 62, 3: 1 / 63 + 1 / 61, 4: 1 / 64, 5: 1 / 62})
    fused = fuse(semantic, keyword, top_k=10)
    assert [h.file_id for h in fused] == [1, 3, 5, 2, 4]  # 1 and 3 tie, both in keyword: by path; 5 (keyword) ties
    assert [h.ranks for h in fused] == [{"semantic": 1, "keyword": 3}, {"semantic": 3, "keyword": 1}, {"keyword": 2},
                                        {"semantic": 2}, {"semantic": 4}]  # 2 (semantic alone), whose path is first
    assert fused[0].score == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 3))
    assert [h.file_id for h in fuse(semantic, keyword, top_k=2)] == [1, 3]
    # keyword terms weighted by the share of the query's words each file holds
    weighted = fuse(semantic, keyword, top_k=10, coverage={3: 1.0, 5: 1.0, 1: 1 / 3})
    assert [h.file_id for h in weighted] == [3, 1, 5, 2, 4]  # 2 and 5 tie at 1/62: the keyword's file first
    assert weighted[1].score == pytest.approx(1 / (RRF_K + 1) + (1 / 3) / (RRF_K + 3))


@pytest.fixture(scope="module")
def library_index(tmp_path_factory: pytest.TempPathFactory, tiny_clap_dir: Path) -> tuple[Path, Path, Path]:
    """``(library, index, model dir)``: the tagged library indexed with a copy of the tiny model."""
    from diffgap_search.indexing import index_folder

    base = tmp_path_factory.mktemp("kw")
    lib = build_tagged_library(base / "lib")
    model = base / "model"
    shutil.copytree(tiny_clap_dir, model)
    cfg = EncoderConfig(model=str(model), device="cpu", batch_size=8)
    index_folder(lib, base / "ix", load_encoder=CountingLoader(), encoder_cfg=cfg, indexing_cfg=INLINE)
    return lib, base / "ix", model


def _names(hits: list[Hit]) -> list[str]:
    return [Path(h.path).name for h in hits]


@needs_ffmpeg
def test_hybrid_puts_the_named_and_tagged_file_first_where_the_embedding_does_not(
    library_index: tuple[Path, Path, Path]
) -> None:
    _, ix, _ = library_index
    q = Query(text="wood door slam")
    with Searcher(ix, CountingLoader()) as s:
        semantic = s.search(q, SearchConfig(top_k=50, mode="semantic"))
        keyword = s.search(q, SearchConfig(top_k=50, mode="keyword"))
        hybrid = s.search(q, SearchConfig(top_k=50, mode="hybrid"))
    # the knock's comment ("a knock at the door") holds one of the three words: keyword rank 2
    assert _names(keyword.hits) == [DOOR, "Tür-Knall (final).mp3"]
    assert _names(semantic.hits)[0] != DOOR and len(semantic.hits) == 11
    assert _names(hybrid.hits)[0] == DOOR
    sem_rank = {h.file_id: r for r, h in enumerate(semantic.hits, 1)}
    kw_rank = {h.file_id: r for r, h in enumerate(keyword.hits, 1)}
    knock = keyword.hits[1].file_id
    # plain RRF would put the one-word match above DOOR whenever the random embedding ranks it much higher
    assert sem_rank[knock] < sem_rank[keyword.hits[0].file_id]
    cover = {keyword.hits[0].file_id: 1.0, knock: 1 / 3}
    expected = sorted(semantic.hits, key=lambda h: (-(1 / (60 + sem_rank[h.file_id])
                                                      + (cover[h.file_id] / (60 + kw_rank[h.file_id])
                                                         if h.file_id in kw_rank else 0)),
                                                    h.path))
    assert [h.file_id for h in hybrid.hits] == [h.file_id for h in expected]
    assert (hybrid.mode, semantic.mode, keyword.mode) == ("hybrid", "semantic", "keyword")
    door = hybrid.hits[0]
    assert door.ranks == {"semantic": sem_rank[door.file_id], "keyword": 1}
    assert (door.start_s, door.segment_id) == (semantic.hits[sem_rank[door.file_id] - 1].start_s,
                                               semantic.hits[sem_rank[door.file_id] - 1].segment_id)


@needs_ffmpeg
@pytest.mark.parametrize(("text", "expected"), [
    ('"quoted"', [ODD_NAME]), ("NEAR", [ODD_NAME]), ("AND", [ODD_NAME]), ("*star", [ODD_NAME]),
    ("-minus", [ODD_NAME]), ('near(quoted, star)', [ODD_NAME]), ("(x)", [ODD_NAME]), ('"', []), ("*", []),
    ("tur", ["Tür-Knall (final).mp3"]), ("TÜRKNALL", ["Tür-Knall (final).mp3"]), ("猫の声", ["猫の声 take2.opus"]),
    ("cheer", ["CrowdCheer.flac"]), ("crowdcheer", ["CrowdCheer.flac"]), ("stadium", ["CrowdCheer.flac"]),
    ("doors", [DOOR]), ("knock hit", ["Tür-Knall (final).mp3"]), ("glass", ["glass_Break-small.ogg"]), ("motor", ["engine idle.m4a"]),
])
def test_fts_special_characters_are_words(library_index: tuple[Path, Path, Path], text: str, expected: list[str]) -> None:
    _, ix, _ = library_index
    r = CliRunner().invoke(app, ["query", "--index", str(ix), "--mode", "keyword", "--json", "--", text])
    assert r.exit_code == 0, r.output
    assert [Path(h["path"]).name for h in json.loads(r.stdout)["hits"]] == expected


@needs_ffmpeg
def test_keyword_mode_needs_no_model(library_index: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """With the model folder gone, keyword mode still answers — in a fresh interpreter that never imports
    torch, transformers or FAISS — while semantic mode cannot load the model."""
    lib, ix, model = library_index
    ix2 = tmp_path / "ix"
    shutil.copytree(ix, ix2)
    hidden = model.with_name("model-hidden")
    model.rename(hidden)
    try:
        code = ("import sys, json\nfrom diffgap_search.cli.app import app\n"
                "try:\n    app(['query', 'wood door slam', '--index', sys.argv[1], '--mode', 'keyword', '--json'])\n"
                "except SystemExit as e:\n    assert not e.code, e.code\n"
                "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules)))")
        run = subprocess.run([sys.executable, "-c", code, str(ix2)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        doc, loaded = run.stdout.rsplit("\n", 2)[0], run.stdout.strip().rsplit("\n", 1)[1]
        assert json.loads(loaded) == []
        assert [Path(h["path"]).name for h in json.loads(doc)["hits"]] == [DOOR, "Tür-Knall (final).mp3"]
        semantic = CliRunner().invoke(app, ["query", "wood door slam", "--index", str(ix2), "--mode", "semantic"])
        assert semantic.exit_code == 5
    finally:
        hidden.rename(model)


@needs_ffmpeg
def test_hybrid_falls_back_to_semantic_for_audio_queries_and_segments(library_index: tuple[Path, Path, Path]) -> None:
    lib, ix, _ = library_index
    r = CliRunner().invoke(app, ["query", "--audio", str(lib / "Doors" / DOOR), "--index", str(ix), "--json"])
    doc = json.loads(r.stdout)
    assert (doc["mode"], doc["note"]) == ("semantic", "an audio query has no words: semantic search only")
    assert Path(doc["hits"][0]["path"]).name == DOOR
    r = CliRunner().invoke(app, ["query", "door", "--segments", "--index", str(ix), "--json"])
    assert json.loads(r.stdout)["note"] == "--segments lists windows: semantic search only"
    bad = CliRunner().invoke(app, ["query", "door", "--mode", "fuzzy", "--index", str(ix)])
    assert bad.exit_code == 2 and "--mode must be one of hybrid, semantic, keyword, got 'fuzzy'" in bad.stderr
    audio_kw = CliRunner().invoke(app, ["query", "--audio", str(lib / "Doors" / DOOR), "--mode", "keyword",
                                        "--index", str(ix)])
    assert audio_kw.exit_code == 2 and "--mode keyword searches words: give TEXT, not --audio or --video" in audio_kw.stderr


@needs_ffmpeg
def test_renames_and_captions_refresh_the_keyword_rows(library_index: tuple[Path, Path, Path], tmp_path: Path,
                                                       tiny_clap_dir: Path) -> None:
    from diffgap_search.indexing import index_folder

    lib = tmp_path / "lib"
    shutil.copytree(library_index[0], lib)
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8)
    ix = tmp_path / "ix"
    index_folder(lib, ix, load_encoder=CountingLoader(), encoder_cfg=cfg, indexing_cfg=INLINE)
    (lib / "misc" / "take_00.flac").rename(lib / "misc" / "Thunder_Rumble.flac")
    (lib / "misc" / "take_01.txt").write_text("a distant foghorn\n")
    loader = CountingLoader()
    index_folder(lib, ix, load_encoder=loader, encoder_cfg=cfg, indexing_cfg=INLINE)
    assert loader.loads == 0
    with Searcher(ix, CountingLoader()) as s:
        kw = SearchConfig(mode="keyword")
        assert _names(s.search(Query(text="thunder"), kw).hits) == ["Thunder_Rumble.flac"]
        assert _names(s.search(Query(text="foghorn"), kw).hits) == ["take_01.flac"]
        assert s.search(Query(text="take_00"), replace(kw, top_k=3)).hits[0].path.endswith("take_00.flac") is False


@needs_ffmpeg
def test_an_audio_only_index_searches_words_in_keyword_mode_only(library_index: tuple[Path, Path, Path],
                                                                 tmp_path: Path) -> None:
    """On an index whose model embeds audio only (as aisfx), words in the default (hybrid) mode are searched by
    keyword alone, with a note; --mode semantic refuses them with exit 13."""
    from diffgap_search.store.catalog import Catalog

    ix = tmp_path / "ix"
    shutil.copytree(library_index[1], ix)
    with Catalog.open(ix) as cat:
        encoder = cat.get_meta("encoder")
        cat.set_meta({"encoder": {**encoder, "modalities": ["audio"]}})
    refused = CliRunner().invoke(app, ["query", "wood door slam", "--index", str(ix), "--mode", "semantic"])
    assert refused.exit_code == 13 and "embeds audio only: a text query cannot be searched" in refused.stderr
    default = CliRunner().invoke(app, ["query", "wood door slam", "--index", str(ix), "--json"])
    assert default.exit_code == 0, default.output
    doc = json.loads(default.stdout)
    assert (doc["mode"], doc["note"]) == ("keyword", "the index's model embeds audio only: keyword search only")
    assert [Path(h["path"]).name for h in doc["hits"]] == [DOOR, "Tür-Knall (final).mp3"]
    found = CliRunner().invoke(app, ["query", "wood door slam", "--mode", "keyword", "--index", str(ix), "--paths"])
    assert found.exit_code == 0 and [Path(p).name for p in found.stdout.splitlines()] == [DOOR, "Tür-Knall (final).mp3"]
