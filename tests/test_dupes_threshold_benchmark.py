"""`benchmarks/bench_dupes_threshold.py` compares complete linkage (what dgsearch dupes does) with single linkage (the
rule before it): on vectors whose right grouping is known, both are scored exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def test_single_linkage_chains_where_complete_linkage_does_not() -> None:
    import bench_dupes_threshold as bench

    from diffgap_search.search.dupes import group_pairs

    chain = [(1, 2, 0.99), (2, 3, 0.95), (3, 4, 0.97)]
    assert [m for m, _ in bench.single_linkage(chain)] == [[1, 2, 3, 4]]
    assert [m for m, _ in group_pairs(chain)] == [[1, 2], [3, 4]]


def test_the_sweep_scores_a_known_library_exactly() -> None:
    """Two planted groups of identical vectors, far from each other and from two lone files, and a chain
    a ~ b ~ c of other files at cosine 0.95 whose ends (a, c) are at 0.80: single linkage joins the chain (two
    other pairs wrongly together, plus the planted ones), complete linkage keeps one pair of it."""
    import bench_dupes_threshold as bench

    e = np.eye(8, dtype=np.float32)
    per = {"p1": e[:1], "p1_copy": e[:1], "p2": e[1:2], "p2_copy": e[1:2], "lone1": e[2:3], "lone2": e[3:4]}
    theta = np.arccos(0.95)  # a, b, c at angles 0, theta, 2 theta in dims 4-5: a~b, b~c at 0.95, a~c at 0.805
    for name, k in (("a", 0), ("b", 1), ("c", 2)):
        v = np.zeros((1, 8), np.float32)
        v[0, 4], v[0, 5] = np.cos(k * theta), np.sin(k * theta)
        per[name] = v
    groups = [{"p1", "p1_copy"}, {"p2", "p2_copy"}]
    scores = bench.similarities(per)
    rows, table = bench.sweep(per, groups, scores, "toy")
    at = {(r["threshold"], r["rule"]): r for r in rows}
    single, complete = at[(0.94, "single")], at[(0.94, "complete")]
    assert (single["planted_together"], single["other_together"], single["largest"]) == (2, 3, 3)
    assert (complete["planted_together"], complete["other_together"], complete["largest"]) == (2, 1, 2)
    assert single["exact_groups"] == complete["exact_groups"] == 2
    assert complete["f1"] == round(2 * 2 / (2 * 2 + 1 + 0), 3) and single["f1"] == round(4 / (4 + 3), 3)
    assert table[0][:3] == ("toy", "0.90", "complete (dgsearch)")
