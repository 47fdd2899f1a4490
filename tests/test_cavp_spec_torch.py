"""CAVP's audio clips computed with torch (``encoders/cavp/spec_torch.py``, on the encoder's device) equal the
numpy/scipy/librosa ones of ``features.spec_clips`` (themselves checked against resampy and Diff-Foley's
preprocessing in ``test_reference_cavp.py``) to float32 rounding, for every sample-rate kind and window length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffgap_search.encoders.cavp import features
from diffgap_search.encoders.cavp.spec_torch import SpecClips

CASES = [  # (sample rate, seconds of samples, seconds the window spans, clips expected)
    (48_000, 10.0, 10.0, 3),  # CLAP's windows: decimation by 3
    (32_000, 10.0, 10.0, 3),  # by 2
    (16_000, 10.0, 10.0, 3),  # CAVP's own rate: no resampling
    (44_100, 10.0, 10.0, 3),  # not a whole multiple: resampy itself
    (48_000, 2.5, 2.5, 1),  # shorter than a clip: the spectrogram tiled
    (48_000, 7.3, 7.6, 2),  # a joined tail: seconds longer than samples, the last clip moved back
    (32_000, 0.5, 0.5, 1),
]


@pytest.mark.parametrize(("rate", "seconds", "span", "n_clips"), CASES)
def test_torch_clips_equal_the_numpy_ones(rate: int, seconds: float, span: float, n_clips: int) -> None:
    rng = np.random.default_rng(rate + int(10 * seconds))
    x = (0.3 * rng.standard_normal(int(rate * seconds))).astype(np.float32)
    x[: len(x) // 3] *= 1e-3  # a quiet stretch reaches the log floor (clipped at 0)
    ref = features.spec_clips(x, rate, span)
    ours = SpecClips(torch.device("cpu"))(x, rate, span)
    assert ours.dtype == torch.float32 and ours.shape == (n_clips, 128, 256) == ref.shape
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=2e-6)
    assert float(ref.min()) == 0.0  # the floor was reached, and matched


def test_resampling_to_16k_keeps_the_length_and_the_samples() -> None:
    spec = SpecClips(torch.device("cpu"))
    x = (0.3 * np.random.default_rng(1).standard_normal(48_001)).astype(np.float32)
    for rate in (48_000, 32_000, 16_000):
        ours, ref = spec.to_16k(x, rate).numpy(), features.to_16k(x, rate)
        assert ours.shape == ref.shape == (int(np.ceil(len(x) * 16_000 / rate)),)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
