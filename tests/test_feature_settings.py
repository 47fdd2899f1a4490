"""``feature_settings.FeatureSettings``: the numbers of transformers' ``ClapFeatureExtractor`` without
transformers — every one equal to the extractor's, exactly, for the settings LAION publishes and others."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from transformers import ClapFeatureExtractor
from transformers.audio_utils import window_function

from diffgap_search.encoders.clap.feature_settings import FeatureSettings, periodic_hann

PUBLISHED = {  # laion/clap-htsat-unfused's preprocessor_config.json, as on the hub
    "chunk_length_s": 10, "feature_extractor_type": "ClapFeatureExtractor", "feature_size": 64,
    "fft_window_size": 1024, "frequency_max": 14000, "frequency_min": 50, "hop_length": 480,
    "max_length_s": 10, "n_fft": 1024, "nb_frequency_bins": 513, "nb_max_frames": 1000,
    "nb_max_samples": 480000, "padding": "repeatpad", "padding_side": "right", "padding_value": 0.0,
    "processor_class": "ClapProcessor", "return_attention_mask": False, "sampling_rate": 48000,
    "top_db": None, "truncation": "rand_trunc",
}
CASES: dict[str, dict[str, Any]] = {
    "published unfused": PUBLISHED,
    "published fused": {**PUBLISHED, "truncation": "fusion"},
    "the extractor's defaults": {},
    "another rate, STFT and band": {"sampling_rate": 44100, "fft_window_size": 2048, "hop_length": 441,
                                    "feature_size": 128, "frequency_min": 20, "frequency_max": 20000,
                                    "max_length_s": 5, "truncation": "rand_trunc", "padding": "repeat"},
    "a stale nb_max_samples key": {**PUBLISHED, "max_length_s": 4, "nb_max_samples": 480000},
}
NUMBERS = ("sampling_rate", "nb_max_samples", "fft_window_size", "hop_length", "feature_size", "truncation",
           "padding", "nb_frequency_bins", "frequency_min", "frequency_max")


@pytest.mark.parametrize("case", list(CASES))
def test_every_number_equals_the_extractors(case: str) -> None:
    extractor = ClapFeatureExtractor.from_dict(CASES[case])
    settings = FeatureSettings(CASES[case])
    assert {n: getattr(settings, n) for n in NUMBERS} == {n: getattr(extractor, n) for n in NUMBERS}
    assert settings.mel_filters.dtype == extractor.mel_filters.dtype == np.float64
    np.testing.assert_array_equal(settings.mel_filters, extractor.mel_filters)  # bit for bit
    np.testing.assert_array_equal(settings.mel_filters_slaney, extractor.mel_filters_slaney)


@pytest.mark.parametrize("length", [1024, 2048, 400])
def test_the_window_is_transformers_periodic_hann(length: int) -> None:
    np.testing.assert_array_equal(periodic_hann(length), window_function(length, "hann"))


def test_an_unknown_scale_is_refused() -> None:
    from diffgap_search.encoders.clap.feature_settings import mel_filter_bank

    with pytest.raises(ValueError, match="mel scale must be 'htk' or 'slaney', got 'kaldi'"):
        mel_filter_bank(513, 64, 0.0, 8000.0, 16000, scale="kaldi", slaney_norm=False)
