"""The input of the aisfx model: the log-mel spectrogram its checkpoint was trained on, in numpy.

aisfx (Ma & Lerch, ISMIR 2022; ``pip install --no-deps aisfx==0.1.2``) computes its features with
Essentia in the paper's code path (``aisfx/spectrogram/spectrogram_essentia.py``,
``compute_spectrogram``, called from ``aisfx/inference.py`` ``main`` with ``spectrogram_type='essentia'``)
and offers a librosa path "for convenience" that "may yield lower results"
(``aisfx/spectrogram/spectrogram_librosa.py``). We implement the Essentia path, step by step, without
the Essentia dependency (AGPL, no wheels for every platform), because it is what the checkpoint was
trained on: the librosa path differs in window, triangle shape and frame count (steps 2, 3, 5), and in
aisfx 0.1.2 its ``(96, T)`` frequency-first output reaches ``preprocessing.blocking`` untransposed from
``inference.main``, which then cuts mel bands as if they were frames. The librosa flavour is kept here
(``LIBROSA``) only to check the shared machinery against aisfx's own librosa function.

1. Loading: ``EasyLoader(sampleRate=44100)`` with its default ``replayGain=-6`` scales by
   ``db2amp(replayGain + 6) = 1``: the samples are *not* normalised (checked against essentia 2.1b6:
   ``EasyLoader`` output equals ``MonoLoader``'s). The librosa path divides by the file's peak instead;
   the encoder divides each window by its peak (``encoders/aisfx/encoder.py`` explains why), before this module.
2. Framing: ``FrameCutter(frameSize=2048, hopSize=1024)`` with ``startFromZero=False``: frame ``i``
   covers samples ``[(i - 1) * 1024, (i + 1) * 1024)``, zeros outside the signal, and frames are cut while
   their start lies inside the signal: ``ceil(L / 1024) + 1`` frames for ``L`` samples (librosa's centred
   STFT gives ``L // 1024 + 1``, the same frames less Essentia's last one when ``L % 1024 != 0``).
3. ``Windowing(type='hann', normalized=False)``: the *symmetric* Hann window
   ``0.5 - 0.5 cos(2 pi n / 2047)`` (librosa: the periodic one, ``/ 2048``). Essentia's default
   ``zeroPhase=True`` rotates the frame, which changes phases only.
4. ``Spectrum(size=2048)``: ``|rfft|``, 1025 bins.
5. ``MelBands(numberBands=96, lowFrequencyBound=0, highFrequencyBound=22050, warpingFormula='htkMel',
   weighting='warping', normalize='unit_sum', type='power')``: 98 band edges evenly spaced on the HTK mel
   scale ``2595 log10(1 + f / 700)``; each band a triangle over the bins whose frequency ``f`` lies in
   ``[edge_i, edge_i+2)``, *linear in mel* ("warping"; librosa's ``htk=True`` triangles are linear in Hz),
   each row divided by its sum ("unit_sum"; librosa's ``norm=1``), applied to the squared magnitudes.
6. ``UnaryOperator(scale=1e4, shift=1)`` then ``log10``: ``log10(1e4 * bands + 1)``.
7. ``aisfx/preprocessing.py`` ``spectrogram_normalize(spec_norm='original')``: min/max scaling with the
   training set's ``mn, mx = 0, 9.457798957824707``: ``spec / 9.457798957824707``.

Measured against aisfx's own ``compute_spectrogram`` running on essentia 2.1b6 (wheel ``2.1b6.dev1389``)
over the 130 CC0 sonic-pi samples (``tests/real_sounds.py``), decoded by our ``media.audio.load_audio``:
the same frame counts everywhere, max abs difference 1.55e-4 (mean 6.8e-7) in step 6's log10 units,
on values up to 9.4. That residue is float32 FFT rounding in the quietest bands of loud frames, not a
difference of method: a float64 FFT is as far from Essentia's float32 one (1.03e-4 on the worst file),
the filter bank equals the one Essentia's ``MelBands`` applies within 7.1e-7 (read out with one-hot
spectra), and the model's vectors from our spectrograms and from Essentia's agree to cosine
>= 0.99999988 on all 130 files. The librosa flavour equals aisfx's librosa function (after its peak
normalisation, transposed) within 9.5e-5 (mean 6.3e-7) on the same files, and its filter bank equals
``librosa.filters.mel(htk=True, norm=1)`` within 3.3e-8. ``tests/data/aisfx_essentia_oracle.npz`` keeps
Essentia's output for a test signal and five of the samples; ``tests/test_encoder_aisfx.py`` checks both.

numpy only (``log_mel``: a query embedded through ONNX Runtime, ``onnx_query.py``, never imports torch);
``features.LogMel`` is the same computation in torch, batched on the network's device, for indexing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from diffgap_search.encoders.aisfx.package import SAMPLE_RATE

FRAME_SIZE = 2048  # inference.SPEC_BLOCK_LENGTH
HOP_SIZE = 1024  # inference.SPEC_HOP_LENGTH
N_MELS = 96  # inference.MEL_BINS
F_MIN, F_MAX = 0.0, 22050.0  # inference.F_MIN, inference.F_MAX
LOG_SCALE = 1e4  # spectrogram_essentia 'shift_scale_log': log10(1e4 * x + 1)
NORM_MIN, NORM_MAX = 0.0, 9.457798957824707  # preprocessing.spectrogram_normalize('original')
N_BINS = FRAME_SIZE // 2 + 1


@dataclass(frozen=True)
class MelFlavour:
    """Which library's conventions the spectrogram follows (see the module docstring, steps 2, 3 and 5).

    Attributes:
        name: ``"essentia"`` (what the checkpoint was trained on) or ``"librosa"`` (aisfx's alternative).
        symmetric_window: Hann over ``n / (FRAME_SIZE - 1)`` (Essentia) rather than ``n / FRAME_SIZE``.
        warped_triangles: mel bands linear in mel (Essentia ``weighting='warping'``) rather than in Hz.
        tail_frame: also cut the frame that starts inside the signal but is centred past its end.
    """

    name: str
    symmetric_window: bool
    warped_triangles: bool
    tail_frame: bool


ESSENTIA = MelFlavour("essentia", symmetric_window=True, warped_triangles=True, tail_frame=True)
LIBROSA = MelFlavour("librosa", symmetric_window=False, warped_triangles=False, tail_frame=False)


def frame_count(length: int, flavour: MelFlavour = ESSENTIA) -> int:
    """Spectrogram frames for ``length`` samples: ``ceil(L / hop) + 1`` (Essentia) or ``L // hop + 1``."""
    if length < 1:
        raise ValueError(f"need at least one sample, got {length}")
    if flavour.tail_frame:
        return -(-length // HOP_SIZE) + 1
    return length // HOP_SIZE + 1


def hann_window(flavour: MelFlavour = ESSENTIA) -> np.ndarray:
    """``(FRAME_SIZE,) float64``: the symmetric (Essentia ``Windowing``) or periodic (librosa) Hann window."""
    period = FRAME_SIZE - 1 if flavour.symmetric_window else FRAME_SIZE
    n = np.arange(FRAME_SIZE, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / period)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as Essentia's ``htkMel`` and librosa's ``htk=True``: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def mel_filterbank(flavour: MelFlavour = ESSENTIA) -> np.ndarray:
    """``(N_MELS, N_BINS) float64``: triangular mel bands over the rfft bins, each row summing to 1.

    Band ``i`` rises from edge ``i`` to edge ``i + 1`` and falls to edge ``i + 2`` (edges evenly spaced in
    mel from ``F_MIN`` to ``F_MAX``), linear in mel (Essentia ``TriangularBands`` ``weighting='warping'``)
    or in Hz (librosa ``filters.mel``); rows are divided by their sums (``unit_sum`` / ``norm=1``).
    The returned array is read-only (it is cached).
    """
    edges_mel = np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2)
    edges = mel_to_hz(edges_mel)
    bins = np.arange(N_BINS, dtype=np.float64) * (SAMPLE_RATE / 2.0) / (N_BINS - 1)
    scale = hz_to_mel(bins) if flavour.warped_triangles else bins
    points = edges_mel if flavour.warped_triangles else edges
    bank = np.zeros((N_MELS, N_BINS), dtype=np.float64)
    for i in range(N_MELS):
        lo, mid, hi = points[i], points[i + 1], points[i + 2]
        rising = (bins >= edges[i]) & (bins < edges[i + 1])
        falling = (bins >= edges[i + 1]) & (bins < edges[i + 2])
        bank[i, rising] = (scale[rising] - lo) / (mid - lo)
        bank[i, falling] = (hi - scale[falling]) / (hi - mid)
    sums = bank.sum(axis=1, keepdims=True)
    bank /= np.where(sums > 0, sums, 1.0)
    bank.setflags(write=False)
    return bank


def log_mel(windows: np.ndarray, flavour: MelFlavour = ESSENTIA, normalise: bool = True) -> np.ndarray:
    """``(N, S) float32`` mono samples at 44.1 kHz -> ``(N, T, N_MELS) float32`` with ``T = frame_count(S)``:
    ``features.LogMel``'s spectrogram in numpy (float32 FFT; the two agree within 2e-5 of the scaled values on
    real recordings, ``tests/test_aisfx_spectrogram.py``). ``normalise`` as ``LogMel``'s."""
    batch = np.asarray(windows, dtype=np.float32)
    if batch.ndim != 2 or batch.shape[1] < 1:
        raise ValueError(f"expected (N, S) samples with S >= 1, got shape {batch.shape}")
    window = hann_window(flavour).astype(np.float32)
    power = np.abs(np.fft.rfft(_frames(batch, flavour) * window, n=FRAME_SIZE, axis=-1)).astype(np.float32) ** 2
    bands = np.maximum(power @ _bank_t(flavour), 0.0)
    spec = np.log1p(bands * np.float32(LOG_SCALE)) / np.float32(np.log(10.0))
    if normalise:
        spec = (spec - np.float32(NORM_MIN)) / np.float32(NORM_MAX - NORM_MIN)
    return spec.astype(np.float32, copy=False)


@lru_cache(maxsize=4)
def _bank_t(flavour: MelFlavour) -> np.ndarray:
    """``(N_BINS, N_MELS) float32``: the filter bank transposed, for ``power @ bank``."""
    bank = np.ascontiguousarray(mel_filterbank(flavour).T, dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _frames(windows: np.ndarray, flavour: MelFlavour) -> np.ndarray:
    """``(N, S)`` -> ``(N, T, FRAME_SIZE)`` (a strided view of a padded copy): frame ``i`` is samples
    ``[(i - 1) * hop, (i + 1) * hop)``, zeros outside the window."""
    length = int(windows.shape[1])
    count = frame_count(length, flavour)
    half = FRAME_SIZE // 2
    tail = (count - 1) * HOP_SIZE + FRAME_SIZE - half - length
    padded = np.pad(windows, ((0, 0), (half, max(0, tail))))
    return np.lib.stride_tricks.sliding_window_view(padded, FRAME_SIZE, axis=1)[:, ::HOP_SIZE][:, :count]
