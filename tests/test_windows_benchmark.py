"""benchmarks/_beds.py, bench_windows.py's beds: white noise as it always drew it, or real recordings looped at a level,
a scene never over its reel's own recording."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _beds import BED_DB, make_bed  # noqa: E402
from bench_windows import scene  # noqa: E402


def test_without_beds_the_bed_is_the_seeded_white_noise_of_every_earlier_result() -> None:
    bed, which = make_bed(1000, np.random.default_rng(5), [], -40.0)
    expected = (10 ** (BED_DB / 20) * np.random.default_rng(5).standard_normal(1000)).astype(np.float32)
    assert which == -1 and np.array_equal(bed, expected)


def test_a_recording_is_looped_to_length_at_the_asked_rms() -> None:
    rng = np.random.default_rng(0)
    beds = [np.sign(np.sin(np.arange(300) / 7)).astype(np.float32)]  # unit RMS, 300 samples
    bed, which = make_bed(1000, rng, beds, -40.0)
    assert which == 0 and bed.shape == (1000,) and bed.dtype == np.float32
    assert 20 * np.log10(np.sqrt(np.mean(bed.astype(np.float64) ** 2))) == pytest.approx(-40.0, abs=0.05)
    assert np.array_equal(bed[:300], bed[300:600])  # looped


@pytest.mark.parametrize("seed", range(6))
def test_a_scene_lies_over_another_recording_than_its_reels(seed: int) -> None:
    beds = [np.full(100, float(i + 1), np.float32) for i in range(2)]  # each recognisable by its value
    shot = np.zeros(10, np.float32)
    for avoid in (0, 1):
        samples = scene(shot, 1.0, 50, seed, beds, 0.0, avoid)
        assert samples.shape == (50,) and set(np.unique(samples)) == {float(2 - avoid)}
