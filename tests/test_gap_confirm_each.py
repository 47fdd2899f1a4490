"""Issue 20, every task confirmed on its own: a residual scale pair is served only if each task of the pair set
beats the anchor on the confirmation clips; averaged over the two tasks, one task's large gain carried the
other's loss (the cells that lost on test at 1,000 clips). Known-answer hit vectors, seeded bootstrap."""

from __future__ import annotations

import numpy as np

from diffgap_search.gap.evidence import serve_share, task_evidence

CLIPS = 50  # the confirmation half at 1,000 training clips
LABELS = np.repeat(np.arange(CLIPS), 2)  # 2 query units per clip
ANCHOR = (np.arange(2 * CLIPS) % 2 == 0).astype(float)  # the anchor hits every clip's first query: R@1 50 %


def _hits(won: int = 0, lost: int = 0) -> np.ndarray:
    """The anchor's hits, plus the second query of the first ``won`` clips, minus the first query of the last
    ``lost`` clips."""
    out = ANCHOR.copy()
    out[1:2 * won:2] = 1.0
    if lost:
        out[2 * (CLIPS - lost)::2] = 0.0
    return out


def _serve(a: np.ndarray, b: np.ndarray, each: bool = True) -> tuple[float, dict[str, tuple[float, float]], float]:
    ev = task_evidence([("text->audio", LABELS, a, ANCHOR), ("audio->text", LABELS, b, ANCHOR)])
    joint = ev.pop("")[0]
    return serve_share(ev, joint, each), ev, joint


def test_a_pair_that_wins_one_task_and_loses_the_other_is_not_served() -> None:
    """text->audio +20 clips (+20 points), audio->text -6 clips (-6 points): averaged, the pair wins in more than
    99 % of the resamples (the rule before served it); audio->text alone never wins, so it is not served."""
    share, ev, joint = _serve(_hits(won=20), _hits(lost=6))
    assert ev == {"text->audio": (1.0, 20.0), "audio->text": (0.0, -6.0)}
    assert joint > 0.99 and serve_share(ev, joint, each=False) == joint
    assert share == 0.0 < 0.9


def test_a_pair_that_wins_both_tasks_is_served() -> None:
    share, ev, joint = _serve(_hits(won=20), _hits(won=12))
    assert ev == {"text->audio": (1.0, 20.0), "audio->text": (1.0, 12.0)}
    assert share == joint == 1.0 >= 0.9


def test_a_tie_in_one_task_is_no_confirmation() -> None:
    """A pair that only ties the anchor in one task gives that task nothing to serve it for."""
    share, ev, _ = _serve(_hits(won=20), ANCHOR)
    assert ev["audio->text"] == (0.0, 0.0) and share == 0.0


def test_a_small_gain_in_one_task_is_not_enough() -> None:
    """One clip of 50 gained in audio->text: drawn in 1 - (49/50)^50 = 64 % of the resamples, below 0.9."""
    share, ev, joint = _serve(_hits(won=20), _hits(won=1))
    assert 0.55 < ev["audio->text"][0] < 0.72 and ev["audio->text"][1] == 1.0
    assert share == ev["audio->text"][0] < 0.9 <= joint
    assert _serve(_hits(won=20), _hits(won=1)) == (share, ev, joint)  # seeded: the same figures again


def test_no_task_is_no_evidence() -> None:
    assert serve_share({}, 0.0) == 0.0
