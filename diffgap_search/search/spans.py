"""Narrowing a hit's window to the seconds that match best: coarse to fine, half the length at each level.

An index cuts files into fixed windows (10 s by default), so a hit says *which* window holds the sound, not
where in it: a 1 s door slam is reported as ten seconds. :func:`narrow_all` finds the span that scores best by
the query's own score, among shorter spans around the window, in levels:

- a window that is its whole file (a one-shot, as sound libraries hold them) is scored itself first, so a sound
  that matches best whole is answered whole; a window of a longer recording is always narrowed (where in the
  recording is what ``--pinpoint`` asks);
- level 0 looks at spans of half the window, every quarter window, across the region (the window and a
  quarter window on each side, so a sound cut by the window's edge is looked at whole);
- each next level halves the length and looks around the last level's best span (from half the new length
  before it to half after it, in steps of a quarter of the old length: five spans), down to ``min_s``.

A 10 s window with ``min_s = 0.5`` takes 4 levels (5, 2.5, 1.25 and 0.625 s) of five spans each: 20 spans
embedded per hit, where an index cut at 0.625 s would hold 16 windows for each of its 10 s. The answer
(:func:`answer`) depends on the query's length. For a one-shot query (shorter than half a window) and for words
it is the best-scoring span over all levels (:func:`chosen`): a short sound wins at a short span, a longer one at
a longer span. That rule and ``min_s`` were chosen on seeds 0-2 of ``benchmarks/bench_windows.py`` (against the
finest level's span and against going finer only while the score holds) and judged on seeds 3-5. A query at
least half a window long (a scene being spotted, a window of a recording) matches long spans best, so the
best-scoring level mostly stops at half the window; it goes finer from the coarsest level while each level's
best holds within 0.02 (:func:`descended`): chosen on seeds 0-2 over white noise, judged on seeds 6-8 over white
noise and on seeds 3-8 over real ambiences (Wesnoth's loops at -40 dBFS), where the middle's error fell 0.85 ->
0.55 s and the overlap rose 0.20 -> 0.34 for as many spans holding the sound's middle (2026-12-07). The whole-file window
joined the candidates on 2026-12-07: querying a one-shot file by itself cut it to its second half (0.96, where
the file scored 1.0). Every window as a candidate was measured too and not taken: on one-shots in recordings it
changed nothing at 10 s windows and lost one query in 120 at 5 s, and a query as long as a window (a 10 s window
of a video being spotted, ``--timeline``) then kept most hits whole: its 10 s match the hit's 10 s best.

Pure: the caller's ``score`` embeds and scores the spans; nothing here decodes or loads a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from diffgap_search.media.windows import repeat_pad

EPS = 1e-9
WHOLE_FILE_SLACK_S = 0.01  # a window ending this close to the read end is its whole file (decoders differ)
SCENE_SHARE = 0.5  # a query window at least this share of the index's window long is a scene: it descends
DESCEND_TOLERANCE = 0.02  # a scene's answer goes one level finer while that level's best drops by at most this

Span = tuple[float, float]  # (start, end) in seconds into the file
Scorer = Callable[[Sequence[Span]], np.ndarray]  # spans -> (n,) float64 scores, higher is better


@dataclass(frozen=True)
class Spot:
    """The best span of one level: its seconds into the file and its score."""

    start_s: float
    end_s: float
    score: float


def region_of(window: Span, duration_s: float = float("inf")) -> Span:
    """Where a window is narrowed: the window and a quarter of it on each side, inside the file's seconds (a
    sound cut by the window's edge is looked at whole)."""
    margin = (window[1] - window[0]) / 4
    return max(0.0, window[0] - margin), min(duration_s, window[1] + margin)


def candidate_spans(lo: float, hi: float, length: float, step: float) -> list[Span]:
    """Spans of ``length`` seconds every ``step`` from ``lo`` whose end stays within ``hi``, the last one ending
    at ``hi`` exactly (so the region's end is looked at); one span ``(lo, hi)`` when the region is shorter."""
    if hi - lo <= length + EPS:
        return [(lo, hi)]
    n = int(np.floor((hi - lo - length) / step + EPS)) + 1
    spans = [(lo + i * step, lo + i * step + length) for i in range(n)]
    if spans[-1][1] < hi - EPS:
        spans.append((hi - length, hi))
    return spans


@dataclass
class Narrowing:
    """One window's narrowing, level by level: the region looked in, the span length of the next level, where
    it looks next, and each level's best span so far (coarsest first)."""

    region: Span
    length: float
    lo: float
    hi: float
    min_s: float
    spots: list[Spot]

    @classmethod
    def of(cls, window: Span, duration_s: float, min_s: float) -> Narrowing:
        """The narrowing of ``window`` in a file lasting ``duration_s`` (module docstring); where the window is
        the whole file, its first level is the window itself (one span of its length), whose advance leads level
        0 to the region. Nothing to do when the window is shorter than twice ``min_s``."""
        region = region_of(window, duration_s)
        length = window[1] - window[0]
        if length / 2 < min_s - EPS:
            return cls(region, 0.0, region[0], region[1], min_s, [])
        if window[0] <= EPS and window[1] >= duration_s - WHOLE_FILE_SLACK_S:  # a one-shot file: itself too
            return cls(region, length, window[0], window[1], min_s, [])
        return cls(region, length / 2, region[0], region[1], min_s, [])

    @property
    def done(self) -> bool:
        return self.length < self.min_s - EPS or self.hi - self.lo <= EPS

    def candidates(self) -> list[Span]:
        """The spans the next level scores (none once done)."""
        return [] if self.done else candidate_spans(self.lo, self.hi, self.length, self.length / 2)

    def advance(self, spans: Sequence[Span], scores: np.ndarray) -> None:
        """Take the level's scores of ``spans`` (its :meth:`candidates`): its best span (ties: the earlier), and
        where the next, finer level looks."""
        best = int(np.argmax(np.asarray(scores, dtype=np.float64)))
        spot = Spot(spans[best][0], spans[best][1], float(scores[best]))
        self.spots.append(spot)
        if spot.end_s - spot.start_s < self.length - EPS:  # the region was shorter than the length: done
            self.length = 0.0
            return
        self.length /= 2
        self.lo = max(self.region[0], spot.start_s - self.length / 2)
        self.hi = min(self.region[1], spot.end_s + self.length / 2)


def narrow_all(windows: Sequence[tuple[Span, float]], min_s: float,
               score: Callable[[Sequence[Sequence[Span]]], Sequence[np.ndarray]]) -> list[list[Spot]]:
    """Each ``(window, file duration)``'s levels' best spans, coarsest first, narrowed side by side: ``score``
    gets every window's spans of one level at once (an empty list for a window already done) and returns their
    scores per window, so an encoder embeds a level of all the windows in one call."""
    states = [Narrowing.of(w, d, min_s) for w, d in windows]
    while True:
        asked = [st.candidates() for st in states]
        if not any(asked):
            return [st.spots for st in states]
        for st, spans, scores in zip(states, asked, score(asked)):
            if spans:
                st.advance(spans, scores)


def narrow(window: Span, duration_s: float, min_s: float, score: Scorer) -> list[Spot]:
    """Each level's best span, coarsest first (module docstring; the window itself first where it is the whole
    file), for a hit in ``window`` of a file lasting ``duration_s``. Ties go to the earlier span. Empty when the
    window is already shorter than ``2 * min_s``."""
    return narrow_all([(window, duration_s)], min_s, lambda asked: [score(asked[0])])[0]


def chosen(spots: Sequence[Spot]) -> Spot | None:
    """The answer among the levels' best spans: the best-scoring, the finer of equal ones (None for none)."""
    return max(reversed(spots), key=lambda spot: spot.score) if spots else None


def descended(spots: Sequence[Spot], tolerance: float) -> Spot | None:
    """The answer going finer from the coarsest level while the next level's best scores at most ``tolerance``
    below the span kept so far (None for none)."""
    if not spots:
        return None
    kept = spots[0]
    for spot in spots[1:]:
        if spot.score < kept.score - tolerance:
            break
        kept = spot
    return kept


def answer(spots: Sequence[Spot], query_s: float | None, window_s: float) -> Spot | None:
    """The served answer among the levels' best spans for a query whose longest window lasts ``query_s`` seconds
    (None: words) in an index of ``window_s`` windows: a query at least :data:`SCENE_SHARE` of a window long (a
    scene being spotted, a recording, a stored window) matches long spans best, so it descends
    (:func:`descended`, :data:`DESCEND_TOLERANCE`); a shorter one (a one-shot) and words take the best-scoring
    level (:func:`chosen`)."""
    if query_s is not None and query_s >= SCENE_SHARE * window_s - EPS:
        return descended(spots, DESCEND_TOLERANCE)
    return chosen(spots)


def cut_spans(samples: np.ndarray, offset_s: float, rate: int, spans: Sequence[Span]) -> list[np.ndarray]:
    """Each span's samples ``(t,) float32`` out of ``samples`` (1-D, mono at ``rate``, starting ``offset_s`` into
    the file); at least one sample each."""
    cuts = []
    for start, end in spans:
        lo = max(0, int(round((start - offset_s) * rate)))
        hi = min(len(samples), max(lo + 1, int(round((end - offset_s) * rate))))
        cuts.append(samples[lo:hi] if hi > lo else np.zeros(1, np.float32))
    return cuts


def padded(cuts: Sequence[np.ndarray], rate: int, heard: int) -> tuple[np.ndarray, list[float]]:
    """``(windows (n, S) float32, durations_s)``: ``cuts`` repeat-padded to ``S = max(longest, heard)`` as the
    index pads a short window (``heard``: the samples the encoder hears at once, 0 for any length), with each
    cut's own seconds for an encoder that embeds a short window from its own samples (aisfx)."""
    size = max(heard, max(len(c) for c in cuts))
    return np.stack([repeat_pad(c, size) for c in cuts]), [len(c) / rate for c in cuts]
