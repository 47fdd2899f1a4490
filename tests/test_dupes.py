"""``dgsearch dupes`` and ``dgsearch similar`` on real recordings with planted near-duplicates.

Four CC0 recordings (a drone, a bell, a guitar slide and a two-window tabla loop) are each copied four
times by ffmpeg — re-encoded to mp3 and to ogg, trimmed (first 0.5 s dropped), 6 dB quieter — among 17
distinct recordings (one or two of every other kind, so sounds of the same kind are there too) and one
byte-identical copy. They are embedded with the real aisfx model (random-weight tiny CLAP does not tell
sounds apart): ``dupes`` must find exactly the five planted groups.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import dg

from planted_dupes import VARIANTS, plant
from real_sounds import REAL_SOUNDS, RealSound, require_real_sounds

from diffgap_search.config import SearchConfig, SearchMode
from diffgap_search.search.dupes import DEFAULT_THRESHOLD, file_similarity, find_dupes, group_pairs
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.media.discover import path_key
from diffgap_search.search import Searcher
from diffgap_search.search.similar import similar
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.similarity_rows import file_segment_ids

ORIGINALS = ("ambi_lunar_land", "perc_bell", "guit_e_slide", "loop_tabla")
DISTINCT = ("ambi_drone", "ambi_haunted_hum", "bass_voxy_c", "bd_boom", "drum_roll", "drum_splash_hard",
            "drum_tom_lo_hard", "tabla_ghe5", "elec_chime", "guit_harmonics", "loop_safari", "loop_amen_full",
            "vinyl_hiss", "ambi_dark_woosh", "misc_cineboom", "perc_till", "misc_crow")


def _sounds(stems: tuple[str, ...]) -> list[RealSound]:
    by_stem = {s.stem: s for s in REAL_SOUNDS}
    return [by_stem[s] for s in stems]


# -- the pieces, on hand-made vectors ------------------------------------------------------------------
def test_file_similarity_needs_every_window_matched_both_ways() -> None:
    e = np.eye(4, dtype=np.float32)
    assert file_similarity(e[:2], e[:2]) == pytest.approx(1.0)
    assert file_similarity(e[:1], e[:3]) == pytest.approx(1 / 3)  # an excerpt: two of three windows unmatched
    shifted = (e[:2] + 0.1 * e[1:3]) / np.linalg.norm(e[:2] + 0.1 * e[1:3], axis=1, keepdims=True)
    assert file_similarity(e[:2], shifted) == pytest.approx(float((e[:2] * shifted).sum(1).mean()), abs=1e-6)


def test_groups_are_complete_a_chain_is_not_a_group() -> None:
    """Single linkage made {1, 2, 3, 4} and {5, 7, 9} of these chains; complete linkage keeps each best pair."""
    groups = group_pairs([(5, 7, 0.96), (1, 2, 0.99), (7, 9, 0.95), (3, 4, 1.0), (2, 3, 0.97)])
    assert [members for members, _ in groups] == [[1, 2], [3, 4], [5, 7]]
    assert [links for _, links in groups] == [[(1, 2, 0.99)], [(3, 4, 1.0)], [(5, 7, 0.96)]]


def test_a_group_grows_only_when_every_pair_holds() -> None:
    # 1, 2, 3 are all pairs; 4 pairs with 1 and 2 but not 3; 5 with 4 alone; an edge given twice counts once
    edges = [(1, 2, 0.99), (2, 3, 0.98), (1, 3, 0.97), (4, 1, 0.995), (2, 4, 0.96), (4, 5, 0.999), (2, 1, 0.99)]
    groups = group_pairs(edges)
    # best first: 4-5 joins; 1-4 cannot bring 1 into {4, 5} (no 1-5 pair); 1-2 joins; 2-3 brings 3 into {1, 2},
    # since 1-3 holds too; 2-4 cannot merge {1, 2, 3} and {4, 5}
    assert [members for members, _ in groups] == [[1, 2, 3], [4, 5]]
    assert groups[0][1] == [(1, 2, 0.99), (1, 3, 0.97), (2, 3, 0.98)]
    assert min(s for _, _, s in groups[0][1]) == 0.97


def _complete_linkage_reference(edges: list[tuple[int, int, float]]) -> list[list[int]]:
    """The rule as the docstring states it, with nothing remembered between edges: best edge first, merge two
    groups when every cross pair is an edge."""
    score = {(min(a, b), max(a, b)) for a, b, _ in edges}
    groups = {f: {f} for a, b, _ in edges for f in (a, b)}
    for a, b, _ in sorted(edges, key=lambda e: (-e[2], min(e[:2]), max(e[:2]))):
        ga, gb = groups[a], groups[b]
        if ga is not gb and all((min(x, y), max(x, y)) in score for x in ga for y in gb):
            ga |= gb
            for f in gb:
                groups[f] = ga
    return sorted({tuple(sorted(g)) for g in groups.values() if len(g) > 1})


def test_complete_linkage_matches_the_plain_rule_on_random_near_cliques() -> None:
    """The groups found unable to merge are remembered (a missing pair stays missing): the same groups as the
    plain rule, on near-cliques where most pairs hold."""
    rng = np.random.default_rng(7)
    for n, missing in ((30, 0.02), (60, 0.1), (80, 0.4)):
        edges = [(a, b, float(0.94 + 0.06 * rng.random())) for a in range(n) for b in range(a + 1, n)
                 if rng.random() > missing]
        assert [tuple(m) for m, _ in group_pairs(edges)] == _complete_linkage_reference(edges)


# -- the planted library -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[set[str]]]:
    """``(library, aisfx index, expected groups as file-name sets)``."""
    pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")
    require_real_sounds()
    library = tmp_path_factory.mktemp("planted") / "library"
    groups = plant(library, _sounds(ORIGINALS), _sounds(DISTINCT))
    shutil.copy(library / "misc_crow.flac", library / "crow copy.flac")
    groups.append({"misc_crow.flac", "crow copy.flac"})
    index = tmp_path_factory.mktemp("planted-ix") / "ix"
    r = dg("index", library, "--index", index, "--model", "aisfx", "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["found"] == len(ORIGINALS) * (1 + len(VARIANTS)) + len(DISTINCT) + 1
    return library, index, groups


def test_dupes_finds_exactly_the_planted_groups(planted: tuple[Path, Path, list[set[str]]]) -> None:
    library, index, expected = planted
    r = dg("dupes", "--index", index, "--jsonl")
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    found = [{Path(f["path"]).name for f in g["files"]} for g in lines]
    # every two files of a group are near-duplicates: the bell trimmed of its attack scores 0.945 with the
    # original but 0.929 with the ogg copy, so it stays out of the bell's group (single linkage had let it in)
    expected = [g - {"perc_bell_trim.flac"} for g in expected]
    assert sorted(map(sorted, found)) == sorted(map(sorted, expected))
    assert [g["size"] for g in lines] == [5, 5, 5, 4, 2]  # largest first
    assert all(len(g["pairs"]) == g["size"] * (g["size"] - 1) // 2 for g in lines)  # every pair of a group holds
    for group in lines:
        assert group["min_score"] >= DEFAULT_THRESHOLD and all(p["score"] >= DEFAULT_THRESHOLD for p in group["pairs"])
    crow = next(g for g in lines if g["size"] == 2)
    assert crow["pairs"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    doc = json.loads(dg("dupes", "--index", index, "--json").stdout)
    assert doc["threshold"] == DEFAULT_THRESHOLD and doc["index_kind"] == "flat"
    assert doc["files"] == len(ORIGINALS) * 5 + len(DISTINCT) + 1 and doc["vectors"] == doc["files"] + 4
    # loop_tabla (10.7 s) and its mp3, ogg and quieter copies have two windows; trimmed to 10.2 s it has one
    # (a 0.2 s tail joins the last window): one window against two, still grouped
    assert [g["files"] for g in doc["groups"]] == [g["files"] for g in lines]
    table = dg("dupes", "--index", index).stdout
    assert table.startswith(f"5 groups of near-duplicates (similarity ≥ {DEFAULT_THRESHOLD:g}) among 38 files")
    exact = find_dupes(index, threshold=1.0)  # only byte-identical copies share their vectors exactly
    assert [{Path(f.path).name for f in g.files} for g in exact.groups] == [{"misc_crow.flac", "crow copy.flac"}]


def test_similar_finds_the_copies_of_a_file_a_window_and_an_outside_file(
        planted: tuple[Path, Path, list[set[str]]], tmp_path: Path) -> None:
    library, index, _ = planted
    copies = {f"perc_bell_{suffix}" for suffix in VARIANTS}
    r = dg("similar", library / "perc_bell.flac", "--index", index, "-k", "4", "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert {Path(h["path"]).name for h in hits} == copies and hits[0]["score"] > hits[-1]["score"] - 1e-6
    # the filters of dgsearch query apply before top-k: the trimmed copy is the one file 0.5 s shorter
    own_duration = next(h for h in hits if h["path"].endswith("perc_bell_mp3.mp3"))["end_s"]
    short = dg("similar", library / "perc_bell.flac", "--index", index, "-k", "4", "--json",
               "--duration", f"..{own_duration - 0.25}")
    assert short.exit_code == 0, short.output
    assert [Path(h["path"]).name for h in json.loads(short.stdout)["hits"]][:1] == ["perc_bell_trim.flac"]
    mp3 = dg("similar", library / "perc_bell.flac", "--index", index, "--sample-rate", "1", "--json")
    assert mp3.exit_code == 0 and json.loads(mp3.stdout)["hits"] == []
    with Searcher(index, load_encoder) as searcher:
        own = searcher.catalog.file_by_key(path_key(library / "perc_bell.flac"))
        assert own is not None
        (segment,) = file_segment_ids(searcher.catalog, own.id)
        by_segment = similar(searcher, str(segment), SearchConfig(mode=SearchMode.SEMANTIC, top_k=4))
        assert [(h.path, round(h.score, 5)) for h in by_segment.hits] == [(h["path"], round(h["score"], 5)) for h in hits]
        outside = tmp_path / "bell elsewhere.flac"
        shutil.copy(library / "perc_bell.flac", outside)  # not in the index: embedded, nothing left out
        embedded = similar(searcher, str(outside), SearchConfig(mode=SearchMode.SEMANTIC, top_k=5))
        assert {Path(h.path).name for h in embedded.hits} == copies | {"perc_bell.flac"}
        assert embedded.hits[0].path == str(library / "perc_bell.flac") and embedded.hits[0].score > 0.999
        two_windows = similar(searcher, str(library / "loop_tabla.flac"),
                              SearchConfig(mode=SearchMode.SEMANTIC, top_k=50, group_by_file=False, all_copies=True))
        assert all(Path(h.path).name != "loop_tabla.flac" for h in two_windows.hits)
        assert len(two_windows.hits) == 42 - 2  # every window but the file's own two
        once = similar(searcher, str(library / "loop_tabla.flac"), SearchConfig(mode=SearchMode.SEMANTIC, top_k=50, group_by_file=False))
        crow = [h for h in once.hits if Path(h.path).name in {"misc_crow.flac", "crow copy.flac"}]
        assert len(once.hits) == 42 - 3  # by default the byte-identical crows' one window is one hit
        assert [(Path(h.path).name, [Path(p).name for p in h.copies]) for h in crow] == [("crow copy.flac", ["misc_crow.flac"])]
    def no_model(cfg: object) -> None:
        raise AssertionError("an indexed file or a segment needs no model")

    with Searcher(index, no_model) as searcher:  # stored vectors only: nothing loaded, decoded or embedded
        stored = similar(searcher, str(library / "perc_bell.flac"), SearchConfig(mode=SearchMode.SEMANTIC, top_k=4))
        assert [h.path for h in stored.hits] == [h["path"] for h in hits]
        assert [h.path for h in similar(searcher, str(segment), SearchConfig(mode=SearchMode.SEMANTIC, top_k=4)).hits] == [h["path"] for h in hits]
    only_mp3 = dg("similar", library / "perc_bell.flac", "--index", index, "--glob", "*.mp3", "-k", "1", "--paths")
    assert only_mp3.stdout == f"{library / 'perc_bell_mp3.mp3'}\n"
    missing = dg("similar", tmp_path / "nope.wav", "--index", index)
    assert missing.exit_code == 3
    assert missing.stderr.strip() == f"dgsearch: error: {tmp_path / 'nope.wav'} is neither a file nor a segment id of index {index}"
    unknown = dg("similar", "999999", "--index", index)
    assert unknown.exit_code == 3
    assert unknown.stderr.strip() == f"dgsearch: error: segment 999999 is not in index {index} (or has no audio vector)"


def test_dupes_refuses_a_bad_threshold_and_a_missing_index(tmp_path: Path) -> None:
    r = dg("dupes", "--index", tmp_path / "none")
    assert r.exit_code == 4
    bad = dg("dupes", "--index", tmp_path / "none", "--threshold", "1.5")
    assert bad.exit_code == 2 and bad.stderr.strip() == "dgsearch: error: --threshold must be a cosine in (0, 1], got 1.5"
    assert f"default {DEFAULT_THRESHOLD:g}" in dg("dupes", "--help").stdout
