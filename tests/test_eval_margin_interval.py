"""`dgsearch eval`'s verdict says whether its test set can tell DiffGAP from its counterpart: the margin's 95 %
paired-bootstrap interval over the test clips (``evidence.gain_interval``), known-answer cases."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.gap.evaluation import verdict, verdict_line
from diffgap_search.gap.evidence import gain_interval
from diffgap_search.gap.protocol import tasks_for


def test_a_perfect_method_against_one_that_never_hits_is_100_points_ahead_in_every_resample() -> None:
    labels = np.arange(50)
    assert gain_interval(labels, np.ones(50), np.zeros(50)) == (100.0, 100.0)
    assert gain_interval(labels, np.zeros(50), np.ones(50)) == (-100.0, -100.0)


def test_identical_hits_give_a_zero_width_interval_at_zero() -> None:
    hits = np.random.default_rng(0).integers(0, 2, 80).astype(float)
    assert gain_interval(np.arange(80), hits, hits) == (0.0, 0.0)
    assert gain_interval(np.zeros(0, np.int64), np.zeros(0), np.zeros(0)) == (0.0, 0.0)


def test_the_interval_narrows_as_the_test_set_grows_and_holds_the_margin() -> None:
    """A method right on every other query, against one never right: a 50-point margin whose interval's half-width
    is about 1.96 sd of a mean of n coin flips (100 * 1.96 * 0.5 / sqrt(n)): ~9.8 points at n = 100, ~3.1 at 1,000."""
    widths = []
    for n in (100, 1000):
        new = (np.arange(n) % 2 == 0).astype(float)
        lo, hi = gain_interval(np.arange(n), new, np.zeros(n))
        assert lo < 50.0 < hi
        widths.append(hi - lo)
        assert (hi - lo) / 2 == pytest.approx(100 * 1.96 * 0.5 / np.sqrt(n), rel=0.15)
    assert widths[1] < widths[0] / 3


def test_captions_of_one_clip_are_resampled_together() -> None:
    """Two clips of five captions: the candidate hits all of clip 0's, the other method all of clip 1's. Resampling
    clips, a resample holds clip 0 only (+100), clip 1 only (-100) or both (0); resampling the ten captions one by
    one would have given a narrow interval around 0."""
    labels = np.repeat([0, 1], 5)
    new, old = (labels == 0).astype(float), (labels == 1).astype(float)
    assert gain_interval(labels, new, old) == (-100.0, 100.0)


def test_the_same_seed_gives_the_same_interval_in_any_call() -> None:
    rng = np.random.default_rng(3)
    labels, new, old = np.arange(300), rng.integers(0, 2, 300).astype(float), rng.integers(0, 2, 300).astype(float)
    assert gain_interval(labels, new, old) == gain_interval(labels.copy(), new.copy(), old.copy())
    assert gain_interval(labels, new, old, level=0.5)[1] - gain_interval(labels, new, old, level=0.5)[0] < \
        gain_interval(labels, new, old)[1] - gain_interval(labels, new, old)[0]


def _task_scores(n: int, ours_right: np.ndarray, theirs_right: np.ndarray) -> tuple:
    """A text -> audio task of ``n`` clips (one caption each) and unit scores under which DiffGAP + fusion ranks
    clip i first exactly where ``ours_right[i]``, ridge + fusion where ``theirs_right[i]`` (else the next clip)."""
    eye = np.eye(n, dtype=np.float32)
    task = [t for t in tasks_for("audio", "text", eye, eye, np.arange(n)) if t.key == "text->audio"][0]

    def scores(right: np.ndarray) -> np.ndarray:
        s = np.zeros((n, n), np.float32)
        for i in range(n):
            s[i, i if right[i] else (i + 1) % n] = 1.0
        return s

    ours, theirs = scores(ours_right), scores(theirs_right)
    results = {"text->audio": {"diffgap_fusion": task.metrics(ours), "ridge_fusion": task.metrics(theirs),
                               "procrustes_fusion": task.metrics(scores(np.zeros(n, bool)))}}
    return results, {"text->audio": (task, {"diffgap_fusion": ours, "ridge_fusion": theirs})}


def test_the_verdict_says_when_a_win_is_within_the_test_sets_noise() -> None:
    """40 clips: DiffGAP + fusion right on 21, ridge + fusion on 20 (one query apart): DiffGAP wins by 2.5 points,
    an interval holding 0; right on all 40 against 20 it wins by 50, an interval far from 0."""
    n = 40
    theirs = np.arange(n) < 20
    results, scores = _task_scores(n, np.arange(n) < 21, theirs)
    duel = verdict(results, scores)["text->audio"]["served"]
    assert duel["winner"] == "diffgap_fusion" and duel["margin"] == 2.5 and duel["clips"] == duel["queries"] == n
    lo, hi = duel["interval"]
    assert lo == 0.0 and 2.5 <= hi <= 7.5  # one query apart: that clip drawn 0 times (37 % of resamples) to ~3
    assert verdict_line("text->audio", verdict(results, scores)["text->audio"]) == (
        f"text->audio: served, DiffGAP + fusion 52.5 vs ridge + fusion 50.0: DiffGAP + fusion wins by 2.5 "
        f"(95 % interval {lo:+.1f} to {hi:+.1f} over 40 query clips: within this test set's noise)")
    results, scores = _task_scores(n, np.ones(n, bool), theirs)
    line = verdict_line("text->audio", verdict(results, scores)["text->audio"])
    assert line.startswith("text->audio: served, DiffGAP + fusion 100.0 vs ridge + fusion 50.0: DiffGAP + fusion wins by 50.0 (95 % interval +")
    assert "noise" not in line and line.endswith(" over 40 query clips)")
    assert "interval" not in verdict(results)["text->audio"]["served"]  # without scores: the duel as before
