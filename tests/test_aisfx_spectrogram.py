"""aisfx's spectrogram (``encoders/aisfx/features.py``) against Essentia's recorded output and aisfx's own
librosa path: the Essentia flavour (what the network was trained on) on a test signal and on real sonic-pi
recordings, both filter banks, and Essentia's frame count. Oracles: ``tests/data/aisfx_essentia_oracle.npz``
(made by ``tests/data/make_aisfx_essentia_oracle.py``) and aisfx's ``spectrogram/spectrogram_librosa.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aisfx_oracle import AISFX_INSTALLED, RATE, aisfx_module, sweep_and_bursts
from real_sounds import SAMPLES_DIR

from diffgap_search.encoders.aisfx.features import LogMel
from diffgap_search.encoders.aisfx.spectrogram import (
    ESSENTIA,
    LIBROSA,
    MelFlavour,
    frame_count,
    log_mel,
    mel_filterbank,
)
from diffgap_search.encoders.aisfx.package import INSTALL_HINT
from diffgap_search.media.audio import load_audio

ORACLE = Path(__file__).parent / "data" / "aisfx_essentia_oracle.npz"
ESSENTIA_TOL = 2.5e-4  # measured worst 1.55e-4 over 130 files (float32 FFT rounding), mean 6.8e-7
LIBROSA_TOL = 1.5e-4  # measured worst 9.5e-5 over 130 files, mean 6.3e-7
MEAN_TOL = 5e-6
TORCH_NUMPY_TOL = 2e-5  # scaled units: measured worst 1.3e-5 over 40 sonic-pi files (float32 FFTs' rounding)
IMPLEMENTATIONS = ("torch", "numpy")  # features.LogMel (indexing) and spectrogram.log_mel (ONNX queries)


def spectrogram(impl: str, samples: np.ndarray, flavour: MelFlavour = ESSENTIA, normalise: bool = False) -> np.ndarray:
    """``(S,) float32`` samples -> ``(T, 96) float32`` by one of the two implementations."""
    if impl == "torch":
        return LogMel(flavour)(torch.from_numpy(samples)[None], normalise=normalise)[0].numpy()
    return log_mel(samples[None], flavour, normalise=normalise)[0]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_spectrogram_matches_recorded_essentia_on_a_test_signal(impl: str) -> None:
    oracle = np.load(ORACLE)
    samples = oracle["signal_int16"].astype(np.float32) / 32768.0
    ours = spectrogram(impl, samples)
    expected = oracle["spec_signal"]
    assert ours.shape == expected.shape == (frame_count(samples.shape[0]), 96)
    assert np.abs(ours - expected).max() <= ESSENTIA_TOL
    assert np.abs(ours - expected).mean() <= MEAN_TOL


def test_filterbank_matches_essentia_melbands() -> None:
    oracle = np.load(ORACLE)
    bank = np.zeros((96, 1025))
    bank[oracle["bank_rows"], oracle["bank_cols"]] = oracle["bank_vals"]
    np.testing.assert_allclose(mel_filterbank(ESSENTIA), bank, rtol=0, atol=2e-6)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_spectrogram_matches_recorded_essentia_on_real_samples(impl: str) -> None:
    oracle = np.load(ORACLE)
    stems = [key[len("spec_"):] for key in oracle.files if key.startswith("spec_") and key != "spec_signal"]
    if not (SAMPLES_DIR / f"{stems[0]}.flac").is_file():
        pytest.skip(f"real recordings absent: {SAMPLES_DIR} (apt-get install sonic-pi-samples)")
    for stem in stems:
        samples = load_audio(SAMPLES_DIR / f"{stem}.flac", RATE)
        ours = spectrogram(impl, samples)
        assert ours.shape == oracle[f"spec_{stem}"].shape, stem
        assert np.abs(ours - oracle[f"spec_{stem}"]).max() <= ESSENTIA_TOL, stem


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread, imported by librosa.load
def test_librosa_flavour_equals_aisfx_librosa_function(tmp_path: Path) -> None:
    if not AISFX_INSTALLED:
        pytest.skip(f"the aisfx package is not installed: {INSTALL_HINT}")
    spectrogram_librosa = aisfx_module("spectrogram/spectrogram_librosa.py")
    path = tmp_path / "signal.wav"
    sf.write(path, sweep_and_bursts(1.7, seed=3), RATE, subtype="PCM_16")
    theirs = spectrogram_librosa.compute_spectrogram(str(path), RATE, 2048, 1024, 96, 0.0, 22050.0)
    samples = load_audio(path, RATE)
    samples = samples / np.abs(samples).max()  # the librosa path's per-file peak normalisation
    for impl in IMPLEMENTATIONS:
        ours = spectrogram(impl, samples, LIBROSA).T
        assert ours.shape == theirs.shape  # (96, T): aisfx's librosa path returns frequency first
        assert np.abs(ours - theirs).max() <= LIBROSA_TOL, impl
        assert np.abs(ours - theirs).mean() <= MEAN_TOL, impl


def test_librosa_flavour_filterbank_equals_librosa() -> None:
    import librosa

    expected = librosa.filters.mel(sr=RATE, n_fft=2048, n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0)
    np.testing.assert_allclose(mel_filterbank(LIBROSA), expected, rtol=0, atol=1e-6)


def test_frame_counts_follow_essentia_framecutter() -> None:
    # FrameCutter(frameSize=2048, hopSize=1024, startFromZero=False), read out from essentia 2.1b6
    for length, frames in [(1, 2), (1023, 2), (1024, 2), (1025, 3), (2048, 3), (2049, 4), (441_000, 432)]:
        assert frame_count(length, ESSENTIA) == frames
        assert LogMel(ESSENTIA)(torch.zeros(1, length)).shape == (1, frames, 96)
        assert log_mel(np.zeros((1, length), np.float32)).shape == (1, frames, 96)


@pytest.mark.parametrize("flavour", [ESSENTIA, LIBROSA], ids=lambda f: f.name)
def test_numpy_and_torch_spectrograms_agree_on_real_recordings(flavour: MelFlavour) -> None:
    """The network's scaled input, batched as indexing and a query make it: 12 real files cut to 3 s windows."""
    paths = sorted(SAMPLES_DIR.glob("*.flac"))[::11][:12]
    if len(paths) < 12:
        pytest.skip(f"real recordings absent: {SAMPLES_DIR} (apt-get install sonic-pi-samples)")
    windows = np.stack([np.resize(load_audio(path, RATE), 3 * RATE) for path in paths])
    windows /= np.maximum(np.abs(windows).max(axis=1, keepdims=True), 0.01)
    ours = log_mel(windows, flavour)
    theirs = LogMel(flavour)(torch.from_numpy(windows)).numpy()
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (12, frame_count(3 * RATE, flavour), 96)
    assert np.abs(ours - theirs).max() <= TORCH_NUMPY_TOL
