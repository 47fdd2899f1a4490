"""`benchmarks/real_gap/hybrid.py` scores dgsearch's search modes on real described sounds: its queries come from
the packages' own words, and its metrics score a perfect ranking 100 and a ranking that misses everything 0."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "real_gap"
sys.path.insert(0, str(BENCH))


def _sound(path: str, description: str, category: str, package: str):  # type: ignore[no-untyped-def]
    from packages import Sound

    return Sound(path=path, description=description, category=category, label=category, package=package, licence="x",
                 sha256=path)


def test_queries_are_sentences_names_and_canonical_categories() -> None:
    import hybrid

    files = {"/l/t/zebra.ogg": _sound("z", "A zebra.", "animal", "tuxpaint-stamps-default"),
             "/l/s/Dog1.wav": _sound("d1", "dog", "animal", "scratch"),
             "/l/s/Dog2.wav": _sound("d2", "dog", "animal", "scratch"),
             "/l/m/fire.ogg": _sound("f", "fire", "fire", "minetest-data")}  # "fire" is no canonical category
    assert hybrid.queries(files) == [
        ("category", "an animal", {"/l/t/zebra.ogg", "/l/s/Dog1.wav", "/l/s/Dog2.wav"}),
        ("name", "dog", {"/l/s/Dog1.wav", "/l/s/Dog2.wav"}),
        ("name", "fire", {"/l/m/fire.ogg"}),
        ("sentence", "A zebra.", {"/l/t/zebra.ogg"}),
    ]


def test_a_perfect_ranking_scores_100_and_a_blind_one_0() -> None:
    import hybrid

    asked = [("name", "dog", {"a", "b"}), ("name", "cat", {"c"}), ("sentence", "A cow.", {"d"})]
    perfect = [{rule: ["a", "b", "x"] for rule in hybrid.RULES}, {rule: ["c"] for rule in hybrid.RULES},
               {rule: ["d", "a"] for rule in hybrid.RULES}]
    out = hybrid.metrics(perfect, asked)
    assert out["name"]["queries"] == 2 and out["sentence"]["queries"] == 1 and "category" not in out
    assert all(out[k][rule] == {"R@1": 100.0, "R@10": 100.0, "mAP@10": 100.0} for k in ("name", "sentence")
               for rule in hybrid.RULES)
    blind = [{rule: [] for rule in hybrid.RULES}] * 3  # an empty ranking finds nothing: no rank counts as found
    assert hybrid.metrics(blind, asked)["name"]["hybrid"] == {"R@1": 0.0, "R@10": 0.0, "mAP@10": 0.0}


def test_ranks_past_the_list_never_count() -> None:
    import hybrid

    ranks, n = hybrid.scores(["x", "b", "y"], {"a", "b"})
    assert n == 2 and ranks.tolist() == [2, hybrid.NOT_FOUND]
    # one of two relevant files at rank 2: R@1 0, R@10 100, AP@10 = (1/2) / 2
    out = hybrid.metrics([{rule: ["x", "b"] for rule in hybrid.RULES}], [("name", "q", {"a", "b"})])
    assert out["name"]["semantic"] == {"R@1": 0.0, "R@10": 100.0, "mAP@10": pytest.approx(25.0)}
