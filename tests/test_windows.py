"""window_audio / iter_windows: exact counts, start/end times (the last window ends at the clip's end),
CLAP repeatpad for short clips, streaming equality, and the same windows for a video's frames."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffgap_search.config import WindowConfig
from diffgap_search.media.video import window_bounds
from diffgap_search.media.windows import (
    AudioWindow,
    Windows,
    iter_windows,
    repeat_pad,
    window_audio,
    window_count,
    window_spans,
)

SR = 10  # a tiny rate keeps exact arithmetic readable: 1 s = 10 samples


def ramp(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float32)


def clap_repeatpad(waveform: np.ndarray, max_length: int) -> np.ndarray:
    """Verbatim the branch of transformers' ClapFeatureExtractor._get_input_mel for padding="repeatpad"."""
    if waveform.shape[0] < max_length:
        n_repeat = int(max_length / len(waveform))
        waveform = np.tile(waveform, n_repeat)
        waveform = np.pad(waveform, (0, max_length - waveform.shape[0]), mode="constant", constant_values=0)
    return waveform


def test_default_config_long_clip_counts_and_times() -> None:
    cfg = WindowConfig()  # 10 s window, 10 s hop, 48 kHz
    w = window_audio(np.zeros(48_000 * 25, dtype=np.float32), cfg)
    assert w.samples.shape == (3, 480_000) and w.samples.dtype == np.float32
    assert w.starts.dtype == np.float64 and w.ends.dtype == np.float64
    assert w.starts.tolist() == [0.0, 10.0, 15.0]  # the last window ends at the clip's end
    assert w.ends.tolist() == [10.0, 20.0, 25.0]


def test_overlapping_hop_exact_windows() -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=0.5, sample_rate=SR)
    x = ramp(23)  # 2.3 s: n = ceil((2.3 - 1) / 0.5) + 1 = 4
    w = window_audio(x, cfg)
    assert len(w) == 4
    assert w.starts.tolist() == [0.0, 0.5, 1.0, 1.3]
    assert w.ends.tolist() == [1.0, 1.5, 2.0, 2.3]
    np.testing.assert_array_equal(w.samples[1], ramp(15)[5:15])
    # the last window is [1.3, 2.3) = samples 14..23: a full window of real samples, no padding
    np.testing.assert_array_equal(w.samples[3], np.arange(14, 24, dtype=np.float32))


def test_exact_multiple_has_no_extra_window() -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=0.5, sample_rate=SR)
    w = window_audio(ramp(20), cfg)  # (2.0 - 1) / 0.5 = 2 exactly -> 3 windows, all full
    assert w.starts.tolist() == [0.0, 0.5, 1.0] and w.ends.tolist() == [1.0, 1.5, 2.0]


def test_short_clip_is_repeat_padded_like_clap() -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=1.0, sample_rate=SR)
    w = window_audio(ramp(3), cfg)
    assert w.starts.tolist() == [0.0] and w.ends.tolist() == [0.3]
    np.testing.assert_array_equal(w.samples[0], [1, 2, 3, 1, 2, 3, 1, 2, 3, 0])
    assert len(window_audio(ramp(10), cfg)) == 1  # exactly one window long: one full window


def test_one_sample_and_empty() -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=1.0, sample_rate=SR)
    w = window_audio(np.array([0.25], dtype=np.float32), cfg)
    assert len(w) == 1 and w.ends.tolist() == [0.1]
    np.testing.assert_array_equal(w.samples[0], np.full(10, 0.25, dtype=np.float32))
    empty = window_audio(np.zeros(0, dtype=np.float32), cfg)
    assert empty.samples.shape == (0, 10) and len(empty.starts) == 0
    assert list(iter_windows([], cfg)) == [] and list(iter_windows([np.zeros(0)], cfg)) == []


@pytest.mark.parametrize("length", [1, 2, 3, 7, 479_999, 160_001, 240_000])
def test_repeat_pad_matches_transformers_at_48k(length: int) -> None:
    seg = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    np.testing.assert_array_equal(repeat_pad(seg, 480_000), clap_repeatpad(seg, 480_000))


def test_repeat_pad_matches_installed_transformers_source() -> None:
    """The verbatim copy above still matches the installed transformers (read as text: no slow import)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("transformers")
    if spec is None or spec.origin is None:
        pytest.skip("transformers is not installed")
    src = (Path(spec.origin).parent / "models" / "clap" / "feature_extraction_clap.py").read_text(encoding="utf-8")
    assert "n_repeat = int(max_length / len(waveform))" in src
    assert "waveform = np.tile(waveform, n_repeat)" in src
    assert 'np.pad(waveform, (0, max_length - waveform.shape[0]), mode="constant", constant_values=0)' in src


def test_window_iteration_and_types() -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=1.0, sample_rate=SR)
    w = window_audio(ramp(15), cfg)
    assert isinstance(w, Windows)
    items = list(w)
    assert all(isinstance(i, AudioWindow) for i in items)
    assert [(i.start_s, i.end_s) for i in items] == [(0.0, 1.0), (0.5, 1.5)]


def test_window_count_formula() -> None:
    assert [window_count(n, 10, 3) for n in (0, 1, 10, 11, 13, 14)] == [0, 1, 1, 2, 2, 3]


def test_rejects_non_mono_and_sub_sample_hop() -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=1.0, sample_rate=SR)
    with pytest.raises(ValueError, match="mono"):
        window_audio(np.zeros((4, 2), dtype=np.float32), cfg)
    with pytest.raises(ValueError, match="at least one sample"):
        window_audio(np.zeros(4, dtype=np.float32), WindowConfig(window_s=1.0, hop_s=0.05, sample_rate=SR))


def _split(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    edges = sorted({min(c, len(x)) for c in cuts})
    return [part for part in np.split(x, edges)]


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(0, 400),
    window=st.integers(1, 60),
    hop_frac=st.integers(1, 60),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_streaming_equals_whole_array(length: int, window: int, hop_frac: int, cuts: list[int]) -> None:
    hop = max(1, min(window, hop_frac))
    cfg = WindowConfig(window_s=window / SR, hop_s=hop / SR, sample_rate=SR)
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    whole = window_audio(x, cfg)
    streamed = list(iter_windows(_split(x, cuts), cfg))
    assert len(streamed) == len(whole) == window_count(length, window, hop)
    for (samples, start, end), row, s, e in zip(streamed, whole.samples, whole.starts, whole.ends):
        assert samples.shape == (window,) and samples.dtype == np.float32
        np.testing.assert_array_equal(samples, row)
        assert (start, end) == (s, e)


def test_streaming_memory_is_bounded() -> None:
    import tracemalloc

    cfg = WindowConfig(window_s=1.0, hop_s=0.5, sample_rate=4_800)

    def blocks():  # 500 s in 1 s blocks (9.6 MB as float32), never materialised whole
        for k in range(500):
            yield np.full(4_800, k, dtype=np.float32)

    count = 0
    tracemalloc.start()
    try:
        for samples, start, _end in iter_windows(blocks(), cfg):
            assert samples[0] == int(start)  # window content comes from the right block
            count += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == window_count(500 * 4_800, 4_800, 2_400)
    assert peak < 250_000  # a few windows' worth (the last window's samples are always kept), not 9.6 MB


# --- real "10-second" clips: no sliver windows -----------------------------------------------------
REAL_CLIPS = {  # duration (s) -> exact (start, end) seconds at 48 kHz, 10 s windows, hop 10 s
    10.0: [(0.0, 10.0)],
    10.047: [(0.0, 10.047)],  # Diff-Foley's demo videos, most VGGSound / AudioCaps clips: the tail joins
    10.05: [(0.0, 10.05)],
    10.094: [(0.0, 10.094)],
    10.25: [(0.0, 10.0), (0.25, 10.25)],  # a tail of 0.25 s (W / 40) is a window of its own, end-aligned
    19.9: [(0.0, 10.0), (9.9, 19.9)],
    20.02: [(0.0, 10.0), (10.0, 20.02)],
    4.2: [(0.0, 4.2)],  # shorter than a window: one window, repeat-padded
}
OVERLAPPING = {  # the same clips with hop 5 s (and 2.5 s for the first)
    (10.05, 2.5): [(0.0, 10.05)],
    (19.9, 5.0): [(0.0, 10.0), (5.0, 15.0), (9.9, 19.9)],
    (20.02, 5.0): [(0.0, 10.0), (5.0, 15.0), (10.0, 20.02)],
    (20.0, 5.0): [(0.0, 10.0), (5.0, 15.0), (10.0, 20.0)],
}


def _spans_of(duration: float, hop: float = 10.0) -> tuple[list[tuple[float, float]], Windows, np.ndarray]:
    cfg = WindowConfig(window_s=10.0, hop_s=hop, sample_rate=48_000)
    x = np.random.default_rng(int(duration * 1000)).uniform(-1, 1, round(duration * 48_000)).astype(np.float32)
    w = window_audio(x, cfg)
    return list(zip(w.starts.tolist(), w.ends.tolist())), w, x


@pytest.mark.parametrize("duration", sorted(REAL_CLIPS))
def test_real_clip_windows_are_exact_and_full(duration: float) -> None:
    spans, w, x = _spans_of(duration)
    assert spans == REAL_CLIPS[duration]
    cfg = WindowConfig()
    assert window_bounds(duration, cfg) == REAL_CLIPS[duration]  # the frame windows of a video, the same
    assert [(s.start_s, s.end_s) for s in iter_windows(np.array_split(x, 7), cfg)] == REAL_CLIPS[duration]
    if duration > 10.0:  # every window embeds 10 s of real samples, each from its own start
        for row, (start, end) in zip(w.samples, spans):
            begin = round(start * 48_000)
            np.testing.assert_array_equal(row, x[begin : begin + 480_000])
            assert 10.0 - 1e-9 <= end - start < 10.25  # full, plus at most a joined tail under W / 40
        assert spans[-1][1] == duration
    else:
        np.testing.assert_array_equal(w.samples[0], repeat_pad(x, 480_000))


@pytest.mark.parametrize(("duration", "hop"), sorted(OVERLAPPING))
def test_real_clip_windows_with_a_shorter_hop(duration: float, hop: float) -> None:
    spans, w, x = _spans_of(duration, hop)
    assert spans == OVERLAPPING[(duration, hop)]
    assert window_bounds(duration, WindowConfig(window_s=10.0, hop_s=hop)) == OVERLAPPING[(duration, hop)]
    begin = round(spans[-1][0] * 48_000)
    np.testing.assert_array_equal(w.samples[-1], x[begin : begin + 480_000])


def test_end_aligned_start_is_exact_in_samples() -> None:
    """start_s of the end-aligned window is (L - W) / sample_rate, bit for bit."""
    cfg = WindowConfig(window_s=1.0, hop_s=1.0, sample_rate=SR)
    w = window_audio(ramp(17), cfg)
    assert w.starts.tolist() == [0.0, 7 / SR] and w.ends.tolist() == [1.0, 17 / SR]
    np.testing.assert_array_equal(w.samples[1], ramp(17)[7:])


@settings(max_examples=500, deadline=None)
@given(length=st.integers(0, 500), window=st.integers(1, 60), hop_frac=st.integers(1, 60))
def test_spans_cover_every_sample_with_full_windows(length: int, window: int, hop_frac: int) -> None:
    hop = max(1, min(window, hop_frac))
    spans = window_spans(length, window, hop)
    assert len(spans) == window_count(length, window, hop)
    if length == 0:
        assert spans == []
        return
    if length <= window:
        assert spans == [(0, length)]
        return
    join = window // 40
    # No window shorter than the window; only the last may be longer, by a joined tail under ``join``.
    assert all(end - begin == window for begin, end in spans[:-1])
    assert window <= spans[-1][1] - spans[-1][0] < window + max(join, 1)
    assert spans[0][0] == 0 and spans[-1][1] == length  # from the first sample to the last
    for (b0, e0), (b1, _e1) in itertools.pairwise(spans):
        assert b0 < b1 <= e0  # strictly increasing, and no gap: every sample covered
    grid = [i * hop for i in range((length - window) // hop + 1)]
    assert [b for b, _ in spans][: len(grid)] == grid  # the hop grid
    if len(spans) > len(grid):  # an end-aligned window only for a tail of at least ``join`` samples
        assert spans[-1] == (length - window, length) and length - (grid[-1] + window) >= join
