"""search/spans.py: the coarse-to-fine narrowing of a window, on score functions whose best span is known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from diffgap_search.search.spans import (
    Spot,
    answer,
    candidate_spans,
    chosen,
    cut_spans,
    descended,
    narrow,
    narrow_all,
    padded,
)

Span = tuple[float, float]


def test_candidate_spans_step_through_the_region_and_end_at_its_end() -> None:
    assert candidate_spans(0.0, 15.0, 5.0, 2.5) == [(0.0, 5.0), (2.5, 7.5), (5.0, 10.0), (7.5, 12.5), (10.0, 15.0)]
    assert candidate_spans(0.0, 6.0, 4.0, 1.5) == [(0.0, 4.0), (1.5, 5.5), (2.0, 6.0)]  # the last ends at 6
    assert candidate_spans(3.0, 5.0, 4.0, 2.0) == [(3.0, 5.0)]  # a region shorter than the length: itself


def near(middle: float) -> object:
    """A score peaking for spans whose middle is ``middle`` (any length alike), recording what it was asked."""
    asked: list[list[Span]] = []

    def score(spans: Sequence[Span]) -> np.ndarray:
        asked.append(list(spans))
        return np.array([-abs((s + e) / 2 - middle) for s, e in spans])

    score.asked = asked  # type: ignore[attr-defined]
    return score


def test_each_level_halves_the_length_and_looks_at_five_spans_around_the_last_best() -> None:
    score = near(21.8)
    spots = narrow((20.0, 30.0), 40.0, 0.5, score)  # type: ignore[arg-type]
    assert [round(s.end_s - s.start_s, 4) for s in spots] == [5.0, 2.5, 1.25, 0.625]  # a window of a recording:
    assert [len(level) for level in score.asked] == [5, 5, 5, 5]  # type: ignore[attr-defined]  # always narrowed
    assert score.asked[0] == [(17.5, 22.5), (20.0, 25.0), (22.5, 27.5), (25.0, 30.0), (27.5, 32.5)]  # type: ignore[attr-defined]
    assert (spots[0].start_s, spots[0].end_s) == (20.0, 25.0)  # middle 22.5, the nearest to 21.8
    assert score.asked[1][0] == (18.75, 21.25)  # type: ignore[attr-defined]  # from half the new length before it
    assert score.asked[1][-1] == (23.75, 26.25)  # type: ignore[attr-defined]  # to half the new length after it
    assert (spots[-1].start_s, spots[-1].end_s) == (21.5625, 22.1875)  # middle 21.875, the nearest of its level
    assert chosen(spots) == spots[-1]  # a score favouring the middle alone ends at the finest level


def test_the_answer_is_the_best_scoring_level_so_a_long_sound_keeps_a_long_span() -> None:
    def overlap(spans: Sequence[Span]) -> np.ndarray:  # intersection over union with a 2.5 s sound at 22.5-25.0
        out = []
        for s, e in spans:
            inter = max(0.0, min(e, 25.0) - max(s, 22.5))
            out.append(inter / ((e - s) + 2.5 - inter))
        return np.array(out)

    spots = narrow((20.0, 30.0), 40.0, 0.5, overlap)
    best = chosen(spots)
    assert best is not None and (best.start_s, best.end_s) == (22.5, 25.0) and best.score == 1.0
    assert spots[-1].end_s - spots[-1].start_s == 0.625  # the finest level's span is worse: not the answer


def test_equal_scores_go_to_the_finer_level_and_the_earlier_span() -> None:
    assert chosen([Spot(0, 5, 0.5), Spot(1, 3.5, 0.5), Spot(1, 2.25, 0.4)]) == Spot(1, 3.5, 0.5)
    assert chosen([]) is None
    spots = narrow((0.0, 10.0), 10.0, 5.0, lambda spans: np.zeros(len(spans)))
    assert [(s.start_s, s.end_s) for s in spots] == [(0.0, 10.0), (0.0, 5.0)]  # all equal: the first span
    assert chosen(spots) == Spot(0.0, 5.0, 0.0)  # and the finer level, not the window


LEVELS = [Spot(0, 5, 0.90), Spot(2.5, 5, 0.89), Spot(3.75, 5, 0.88), Spot(4.4, 5, 0.85)]  # long queries' drift


def test_descending_goes_finer_while_each_level_holds_within_the_tolerance() -> None:
    assert descended(LEVELS, 0.02) == LEVELS[2]  # 0.90 -> 0.89 -> 0.88 held; 0.85 dropped by 0.03: stop
    assert descended(LEVELS, 0.0) == LEVELS[0] and descended(LEVELS, 0.05) == LEVELS[3]
    assert descended([], 0.02) is None
    assert chosen(LEVELS) == LEVELS[0]  # the best-scoring level keeps the 5 s


def test_the_answer_descends_for_a_query_at_least_half_a_window_long_and_takes_the_best_level_else() -> None:
    assert answer(LEVELS, 5.0, 10.0) == LEVELS[2]  # half a 10 s window: a scene (--timeline, a recording)
    assert answer(LEVELS, 10.0, 10.0) == LEVELS[2]
    assert answer(LEVELS, 4.99, 10.0) == LEVELS[0]  # a one-shot query
    assert answer(LEVELS, 2.5, 5.0) == LEVELS[2]  # half of a 5 s window
    assert answer(LEVELS, None, 10.0) == LEVELS[0]  # words have no length: the best-scoring level


def test_windows_are_narrowed_side_by_side_one_call_per_level() -> None:
    calls: list[list[int]] = []

    def score(asked: Sequence[Sequence[Span]]) -> list[np.ndarray]:
        calls.append([len(a) for a in asked])
        return [np.array([-abs((s + e) / 2 - m) for s, e in spans]) for spans, m in zip(asked, (3.0, 1.0))]

    levels = narrow_all([((0.0, 10.0), 10.0), ((0.0, 1.6), 1.6)], 0.5, score)
    assert calls == [[1, 1], [3, 3], [4, 0], [5, 0], [5, 0]]  # the windows, then the short file's one level (0.8 s
    assert [round(s.end_s - s.start_s, 4) for s in levels[1]] == [1.6, 0.8]  # spans) beside the other's four
    assert levels[0][-1].start_s <= 3.0 <= levels[0][-1].end_s


def test_a_one_shot_file_that_matches_best_whole_keeps_its_whole_seconds() -> None:
    """Querying a one-shot file by itself: every shorter span scores below the whole (as an embedding of part of
    the sound does), so the answer is the file's window, not its best half. A window of a longer recording is not a
    candidate itself: it is always narrowed."""
    def part_of(lo: float, hi: float) -> object:  # the share of the sound at lo-hi that a span covers
        return lambda spans: np.array([max(0.0, min(e, hi) - max(s, lo)) / (hi - lo) for s, e in spans])

    spots = narrow((0.0, 1.6), 1.6, 0.5, part_of(0.0, 1.6))  # type: ignore[arg-type]
    assert [round(s.end_s - s.start_s, 4) for s in spots] == [1.6, 0.8] and spots[1].score == pytest.approx(0.5)
    assert chosen(spots) == Spot(0.0, 1.6, 1.0)
    assert chosen(narrow((0.0, 1.6), 1.6 + 0.005, 0.5, part_of(0.0, 1.6))) == Spot(0.0, 1.6, 1.0)  # decoded a hair
    recording = narrow((10.0, 20.0), 40.0, 0.5, part_of(10.0, 20.0))  # type: ignore[arg-type]  # longer: ms apart
    assert [round(s.end_s - s.start_s, 4) for s in recording][0] == 5.0 and chosen(recording).score == 0.5  # type: ignore[union-attr]


def test_a_window_shorter_than_twice_the_finest_span_is_not_narrowed() -> None:
    assert narrow((0.0, 0.9), 0.9, 0.5, lambda spans: np.zeros(len(spans))) == []


def test_cut_spans_take_the_spans_samples_and_pad_them_as_the_index_pads_a_short_window() -> None:
    rate = 10
    samples = np.arange(100, dtype=np.float32)  # seconds 2.0 to 12.0 of a file
    cuts = cut_spans(samples, 2.0, rate, [(2.0, 2.5), (5.0, 6.0), (11.5, 13.0)])
    assert [c.tolist() for c in cuts] == [[0, 1, 2, 3, 4], list(range(30, 40)), list(range(95, 100))]
    windows, durations = padded(cuts, rate, 0)
    assert windows.shape == (3, 10) and windows.dtype == np.float32
    assert windows[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]  # repeat-padded (CLAP's repeatpad)
    assert durations == [0.5, 1.0, 0.5]
    windows, _ = padded(cuts, rate, 25)  # an encoder hearing 25 samples at once gets 25 each
    assert windows[1].tolist() == list(range(30, 40)) * 2 + [0] * 5  # tiled whole, then zeros: CLAP's rule


@pytest.mark.parametrize("middle", [0.1, 7.0, 39.9])
def test_the_region_stays_inside_the_file(middle: float) -> None:
    window = (0.0, 10.0) if middle < 20 else (30.0, 40.0)
    spots = narrow(window, 40.0, 0.5, near(middle))  # type: ignore[arg-type]
    assert all(0.0 <= s.start_s and s.end_s <= 40.0 for s in spots)
    assert spots[-1].start_s <= middle <= spots[-1].end_s or abs((spots[-1].start_s + spots[-1].end_s) / 2 - middle) < 0.32
