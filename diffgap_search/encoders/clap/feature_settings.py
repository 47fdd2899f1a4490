"""The numbers of transformers' ``ClapFeatureExtractor`` — rate, window, STFT size, hop, mel filter banks —
computed from its settings without importing transformers (about 1.3 s of a cold process, on a path that
needs none of transformers' code: ``encoders/clap/deferred.py``).

The mel filter banks are ``transformers.audio_utils.mel_filter_bank`` ported line for line (triangular
filters on the FFT bins' frequencies, centres evenly spaced on the HTK or Slaney mel scale, optional Slaney
area normalisation), float64; ``periodic_hann`` is its ``window_function(n, "hann")``.
tests/test_feature_settings.py checks every number against the extractor's, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Preprocessing versions, recorded per space in an index (``store/settings.bind_encoder``): 1 = transformers'
# ``ClapFeatureExtractor`` on the float waveform; 2 = LAION-CLAP's int16 round trip first (``.pt`` checkpoints
# since dgsearch 0.1, issue 25). Text has one version. Hub models stay at 1 (docs/models.md says why).
AUDIO_PREPROCESSING = {False: 1, True: 2}  # keyed by int16_round_trip
TEXT_PREPROCESSING = 1
# ClapFeatureExtractor.__init__'s defaults (transformers/models/clap/feature_extraction_clap.py)
EXTRACTOR_DEFAULTS: dict[str, Any] = {
    "feature_size": 64, "sampling_rate": 48_000, "hop_length": 480, "max_length_s": 10, "fft_window_size": 1024,
    "frequency_min": 0.0, "frequency_max": 14_000.0, "truncation": "fusion", "padding": "repeatpad",
}
_MIN_LOG_HERTZ, _MIN_LOG_MEL = 1000.0, 15.0  # Slaney's scale: linear below 1 kHz, logarithmic above
_LOGSTEP = 27.0 / np.log(6.4)


def hertz_to_mel(freq: np.ndarray, scale: str) -> np.ndarray:
    """Hz -> mel on the ``"htk"`` or ``"slaney"`` scale; float64 array of ``freq``'s shape."""
    freq = np.asarray(freq, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    mels = 3.0 * freq / 200.0
    log_region = freq >= _MIN_LOG_HERTZ
    return np.where(log_region, _MIN_LOG_MEL + np.log(np.maximum(freq, 1e-12) / _MIN_LOG_HERTZ) * _LOGSTEP, mels)


def mel_to_hertz(mels: np.ndarray, scale: str) -> np.ndarray:
    """mel -> Hz on the ``"htk"`` or ``"slaney"`` scale; float64 array of ``mels``' shape."""
    mels = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (np.power(10, mels / 2595.0) - 1.0)
    freq = 200.0 * mels / 3.0
    return np.where(mels >= _MIN_LOG_MEL, _MIN_LOG_HERTZ * np.exp((np.log(6.4) / 27.0) * (mels - _MIN_LOG_MEL)), freq)


def mel_filter_bank(frequency_bins: int, mel_filters: int, min_hz: float, max_hz: float, sampling_rate: int,
                    scale: str, slaney_norm: bool) -> np.ndarray:
    """``(frequency_bins, mel_filters) float64`` triangular filters, as ``mel_filter_bank(num_frequency_bins,
    num_mel_filters, min_frequency, max_frequency, sampling_rate, norm="slaney" if slaney_norm else None,
    mel_scale=scale)`` of transformers builds them."""
    if scale not in ("htk", "slaney"):
        raise ValueError(f"mel scale must be 'htk' or 'slaney', got {scale!r}")
    mel_freqs = np.linspace(hertz_to_mel(min_hz, scale), hertz_to_mel(max_hz, scale), mel_filters + 2)
    filter_freqs = mel_to_hertz(mel_freqs, scale)
    fft_freqs = np.linspace(0, sampling_rate // 2, frequency_bins)
    filter_diff = np.diff(filter_freqs)
    slopes = np.expand_dims(filter_freqs, 0) - np.expand_dims(fft_freqs, 1)
    down_slopes = -slopes[:, :-2] / filter_diff[:-1]
    up_slopes = slopes[:, 2:] / filter_diff[1:]
    bank = np.maximum(np.zeros(1), np.minimum(down_slopes, up_slopes))
    if slaney_norm:
        bank *= np.expand_dims(2.0 / (filter_freqs[2 : mel_filters + 2] - filter_freqs[:mel_filters]), 0)
    return bank


def periodic_hann(length: int) -> np.ndarray:
    """``(length,) float64``: the periodic Hann window (``np.hanning(length + 1)`` without its last sample)."""
    return np.hanning(length + 1)[:-1]


class FeatureSettings:
    """What ``ClapEncoder`` and ``features.TorchLogMel`` read of a ``ClapFeatureExtractor``, built from the
    same settings dict (a ``preprocessor_config.json`` or a processor config's section): ``sampling_rate``,
    ``nb_max_samples`` (= ``max_length_s * sampling_rate``, as the extractor recomputes it), ``fft_window_size``,
    ``hop_length``, ``feature_size``, ``truncation``, ``padding``, and both filter banks ``(513, M) float64``:
    ``mel_filters`` (HTK, no norm: "fusion") and ``mel_filters_slaney`` (Slaney, normalised: "rand_trunc")."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        values = {**EXTRACTOR_DEFAULTS, **{k: v for k, v in settings.items() if k in EXTRACTOR_DEFAULTS}}
        self.feature_size = int(values["feature_size"])
        self.sampling_rate = int(values["sampling_rate"])
        self.hop_length = int(values["hop_length"])
        self.max_length_s = values["max_length_s"]
        self.fft_window_size = int(values["fft_window_size"])
        self.frequency_min = float(values["frequency_min"])
        self.frequency_max = float(values["frequency_max"])
        self.truncation = str(values["truncation"])
        self.padding = str(values["padding"])
        self.nb_frequency_bins = (self.fft_window_size >> 1) + 1
        self.nb_max_samples = int(self.max_length_s * self.sampling_rate)
        bank = (self.nb_frequency_bins, self.feature_size, self.frequency_min, self.frequency_max, self.sampling_rate)
        self.mel_filters = mel_filter_bank(*bank, scale="htk", slaney_norm=False)
        self.mel_filters_slaney = mel_filter_bank(*bank, scale="slaney", slaney_norm=True)
