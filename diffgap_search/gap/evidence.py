"""How sure validation is that a candidate beats the anchor: a paired bootstrap over validation clips.

Validation is small where it matters (a tenth of 1,000 training clips is 100 clips, and a 100-clip gallery puts
R@1 near its ceiling: 92-99 % on validation where the same methods score 55-77 % on a 600-clip test gallery),
so a served gain of one or two validation queries is noise, and the best of 25 residual scales is chosen for
its luck (``benchmarks/diagnose_selection.py``). ``gain_confidence`` resamples the validation *clips* (a clip's
captions move together) and returns the share of resamples in which the candidate's served R@1, averaged over
the tasks given, is strictly above the anchor's; ``task_evidence`` gives it for each task alone, and
``selection.choose_residual`` serves a residual only when every task's own share reaches
``TrainConfig.serve_confidence`` (``serve_share``). Seeded: the same inputs give the same figure in any process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import relevant_ranks
from .protocol import Task

N_RESAMPLES = 2000


def query_hits(task: Task, unit_scores: np.ndarray) -> np.ndarray:
    """``(U_q, U_i)`` unit scores of ``task`` -> ``(U_q,) float64``: 1 where a relevant item is ranked first
    (the per-query terms of R@1, ties broken against the truth as ``metrics``)."""
    ranks, _ = relevant_ranks(unit_scores, task.queries.labels, task.items.labels, task.relevance)
    return (ranks[:, 0] == 1).astype(np.float64)


def _resampled_gains(paired: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], n_resamples: int,
                     seed: int) -> np.ndarray:
    """``(n_resamples,) float64``: per clip resample, the candidate's hit rate minus the anchor's, averaged over
    the tasks (fractions, not points); empty when there are no clips."""
    clips = np.unique(np.concatenate([np.asarray(p[0]) for p in paired]))
    if len(clips) == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(clips), np.full(len(clips), 1.0 / len(clips)), size=n_resamples).astype(np.float64)
    gains = np.zeros(n_resamples)
    for labels, new, old in paired:
        at = np.searchsorted(clips, np.asarray(labels))
        diff = np.bincount(at, weights=np.asarray(new, np.float64) - np.asarray(old, np.float64), minlength=len(clips))
        count = np.bincount(at, minlength=len(clips)).astype(np.float64)
        gains += (weights @ diff) / np.maximum(weights @ count, 1.0)
    return gains / len(paired)


def gain_confidence(paired: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], n_resamples: int = N_RESAMPLES,
                    seed: int = 0) -> float:
    """Share of clip resamples in which the candidate's mean served R@1 over the tasks beats the anchor's.

    ``paired``: per task ``(labels (U_q,) int64, candidate hits (U_q,), anchor hits (U_q,))`` — the query units'
    group codes (one code space for all tasks: the pair set's validation clips) and ``query_hits`` of both.
    Each resample draws the clips with replacement (a clip drawn k times weighs k); a task's gain is the
    difference of its weighted hit rates, the resample's gain their mean. Returns a float in ``[0, 1]``; 0.0
    when there is nothing to compare.
    """
    if not paired:
        return 0.0
    gains = _resampled_gains(paired, n_resamples, seed)
    return float(np.mean(gains > 1e-12)) if len(gains) else 0.0


def gain_interval(labels: np.ndarray, new: np.ndarray, old: np.ndarray, level: float = 0.95,
                  n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """The percentile interval, in R@1 points, of the candidate's gain over the other method on one task, from the
    same paired clip bootstrap as ``gain_confidence``: ``labels (U_q,) int64`` the query units' clips, ``new`` and
    ``old (U_q,)`` their ``query_hits``. ``(lo, hi)`` holds ``level`` of the resampled gains; ``(0.0, 0.0)``
    with no query. Used by ``dgsearch eval`` to say whether a test set can tell two methods apart."""
    gains = _resampled_gains([(labels, new, old)], n_resamples, seed)
    if not len(gains):
        return 0.0, 0.0
    lo, hi = np.quantile(100.0 * gains, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def task_evidence(paired: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """``(key, labels (U_q,), candidate hits (U_q,), anchor hits (U_q,))`` per task of one pair set -> per task key
    ``(its own bootstrap share, its mean served R@1 gain in points)``, and under key ``""`` ``(the joint share of
    the tasks averaged in one bootstrap, 0.0)``."""
    out = {key: (gain_confidence([(labels, new, old)]), float(100.0 * np.mean(np.asarray(new) - np.asarray(old))))
           for key, labels, new, old in paired}
    out[""] = (gain_confidence([p[1:] for p in paired]), 0.0)
    return out


def serve_share(per_task: dict[str, tuple[float, float]], joint: float, each: bool = True) -> float:
    """The share ``selection.choose_residual`` compares with ``serve_confidence``: the smallest of the tasks' own
    shares (``each``: a pair is served only if no task is likely to lose; a tie is no gain), or the joint share
    (``each=False``: the rule before, under which one task's large gain carried the other's loss). 0.0 with no
    task."""
    if not each:
        return joint
    return min((share for share, _ in per_task.values()), default=0.0)


__all__ = ["N_RESAMPLES", "gain_confidence", "gain_interval", "query_hits", "serve_share", "task_evidence"]
