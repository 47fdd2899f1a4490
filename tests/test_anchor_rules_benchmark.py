"""`benchmarks/anchor_rules.py` compares anchor rules (one kind per pair set, one per direction) on family worlds
and unseen galleries: its rules pick what they say on validation hits whose answer is known, and a run writes
one line per (cell, seed) with every combination judged on every gallery."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))


def _tasks() -> tuple:
    from diffgap_search.gap.protocol import tasks_for

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    return tasks_for("audio", "text", x, x[::-1].copy(), np.arange(40))


def test_each_rule_picks_its_combination_on_known_validation_hits() -> None:
    import anchor_rules

    t2a, a2t = _tasks()
    none, every = np.zeros(40), np.ones(40)
    half = np.r_[np.ones(20), np.zeros(20)]
    validation = {("ridge", "ridge"): [(t2a, none), (a2t, none)],
                  ("ridge", "procrustes"): [(t2a, every), (a2t, every)],  # sure, and the best mean
                  ("procrustes", "ridge"): [(t2a, half), (a2t, half)],  # sure, a lower mean
                  ("procrustes", "procrustes"): [(t2a, none), (a2t, none)]}  # no gain: today's rule keeps ridge
    picks, evidence = anchor_rules.choose(validation)
    assert picks == {"joint": ("ridge", "ridge"), "per-direction": ("ridge", "procrustes"),
                     "oracle-free best": ("ridge", "procrustes")}
    assert evidence["confidence"] == {"ridge/procrustes": 1.0, "procrustes/ridge": 1.0, "procrustes/procrustes": 0.0}
    assert evidence["validation_R@1"] == {"ridge/ridge": 0.0, "ridge/procrustes": 100.0, "procrustes/ridge": 50.0,
                                          "procrustes/procrustes": 0.0}


def test_a_gain_below_the_standard_is_taken_only_by_the_reference() -> None:
    import anchor_rules

    t2a, a2t = _tasks()
    none = np.zeros(40)
    one = np.r_[1.0, np.zeros(39)]  # one clip better: far from 90 % of the resamples
    validation = {c: [(t2a, none), (a2t, none)] for c in anchor_rules.COMBOS}
    validation[("procrustes", "procrustes")] = [(t2a, one), (a2t, none)]
    picks, evidence = anchor_rules.choose(validation)
    assert picks == {"joint": ("ridge", "ridge"), "per-direction": ("ridge", "ridge"),
                     "oracle-free best": ("procrustes", "procrustes")}
    assert 0.0 < evidence["confidence"]["procrustes/procrustes"] < 0.9


def test_a_run_writes_every_combination_judged_on_every_task(tmp_path: Path) -> None:
    import anchor_rules

    assert anchor_rules.main(["--cells", "1", "--seeds", "0", "--galleries", "2", "--out-dir", str(tmp_path)]) == 0
    (line,) = [json.loads(x) for x in (tmp_path / "anchor_rules.jsonl").read_text().splitlines()]
    assert line["cell"] == anchor_rules.CELLS[0] and line["seed"] == 0
    assert line["picks"] == {"joint": "ridge/ridge", "per-direction": "ridge/ridge", "oracle-free best": "ridge/ridge"}
    assert sorted(line["test_R@1"]) == ["procrustes/procrustes", "procrustes/ridge", "ridge/procrustes", "ridge/ridge"]
    assert all(sorted(v) == ["audio->text", "text->audio"] for v in line["test_R@1"].values())
    md = (tmp_path / "anchor_rules.md").read_text()
    assert "judged on 2 disjoint galleries of 600 clips per seed" in md
    assert md.count("| mlp-mild D64 1cap 1000 clips text |") == 2
