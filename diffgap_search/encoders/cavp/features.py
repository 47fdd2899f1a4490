"""CAVP's inputs: 4 s clips of 16 frames and their log-mel spectrograms, cut from one of our windows.

Diff-Foley's preprocessing (github.com/luosiallen/Diff-Foley):

- **Frames**: 4 fps (``inference/diff_foley_inference.ipynb``: "CAVP default FPS=4, Don't change it"),
  ``transforms.Resize((224, 224))`` of the whole frame — a squash, no crop — then ``ToTensor()``: RGB in
  [0, 1], no mean/std normalisation (``inference/demo_util.py:100-104``; training: ``transform_video``,
  ``training/open_cavp_main/src/training/data.py``: ``resize(video, (224, 224)).div(255)``). Our decoder
  squashes the native RGB frame to 224 x 224 with Pillow's bilinear filter, as the demo's ``Resize`` on a PIL
  image does (``VideoConfig.fit = "squash"``, ``media/video_geometry.squash_frames``), so frames usually
  arrive ready; others are resized here the same way.
- **Audio**: 16 kHz mono (``librosa.load(sr=16000)``, ``data_preprocess/wav2spec.py:170-172``, with librosa
  0.8.0 as ``requirements.txt`` pins: resampy's ``kaiser_best`` filter, ``to_16k``; soxr, today's librosa
  default, passes 7-7.6 kHz where kaiser_best has already rolled off, so CAVP's top mel bins differed by
  4-10 dB), ``|librosa.stft(n_fft=1024, hop=250)|`` (power 1,
  centred, reflect padding as librosa 0.8.0 pinned by ``requirements.txt`` did) through
  ``librosa.filters.mel(sr=16000, n_fft=1024, fmin=125, fmax=7600, n_mels=128)``, then
  ``max(., 1e-5)``, ``20 * log10 - 20``, ``(+ 100) / 100``, clipped to [0, 1] (``wav2spec.py:142-155``).
  The hop is 250 samples, 64 frames per second, as the training data is (``data.py``: ``hop_size = 250``,
  spectrograms of 640 frames per 10 s in ``audio_npy_spec_640spec``; ``wav2spec.py``'s ``hoplen=256`` would
  give 625 and contradicts its own "ensure: 640 spec"). A clip's spectrogram is computed over the whole
  window of ``L`` samples less one (``y[:length - 1]``, ``wav2spec.py:184``) and each 4 s clip is a slice of
  256 frames starting at ``16 * first_frame`` (``data.py``: ``spec_start = start_frame / fps * sr / hop``),
  tiled when too short (``np.tile``, as ``data.py`` does).

**Windows -> clips.** A window of F frames at 4 fps (``media/video.sample_times``: 40 for 10 s) is covered by
``n = ceil(F / 16)`` clips of 16 frames whose first frames are spread evenly over ``0 .. F - 16``
(``clip_offsets``: 0, 12, 24 for a 10 s window; clips [0, 4], [3, 7], [6, 10] s). Offsets are whole frames
of the 4 fps grid, so clip j's frames are exactly the window's frames ``o_j .. o_j + 15`` and its
spectrogram frames ``16 o_j .. 16 o_j + 255``: the same seconds, to the frame. A window shorter than 4 s is
one clip, its frames tiled to 16 (``np.tile``, ``data.py``) and its audio the window's repeat-padded samples
(``media/windows.repeat_pad``), so the two repeat alike. See ``encoders/cavp/encoder.py`` for how a window's clips are
pooled and why.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

FPS = 4.0
CLIP_FRAMES = 16
FRAME_SIZE = 224
SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 250
N_MELS = 128
F_MIN, F_MAX = 125.0, 7600.0
MEL_PER_FRAME = int(SAMPLE_RATE / HOP / FPS)  # 16 spectrogram frames per video frame
CLIP_MEL = CLIP_FRAMES * MEL_PER_FRAME  # 256


def frame_count(duration_s: float, fps: float = FPS) -> int:
    """Frames ``media/video.sample_times`` takes from a ``duration_s`` window: ``max(1, ceil(d * fps - 0.5))``."""
    return max(1, math.ceil(round(duration_s * fps - 0.5, 6)))


def clip_offsets(n_frames: int) -> list[int]:
    """First frames of the 16-frame clips covering a window of ``n_frames`` frames (see the module docstring)."""
    if n_frames <= CLIP_FRAMES:
        return [0]
    n = math.ceil(n_frames / CLIP_FRAMES)
    span = n_frames - CLIP_FRAMES
    return [round(j * span / (n - 1)) for j in range(n)]


def video_clips(frames: np.ndarray) -> torch.Tensor:
    """``(F, H, W, 3) uint8`` frames of one window -> ``(n, 16, 3, 224, 224) float32`` clips in [0, 1]."""
    import torch

    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected (F, H, W, 3) uint8 frames, got {arr.shape} {arr.dtype}")
    offsets = clip_offsets(arr.shape[0])
    if arr.shape[0] < CLIP_FRAMES:
        arr = np.tile(arr, (math.ceil(CLIP_FRAMES / arr.shape[0]), 1, 1, 1))[:CLIP_FRAMES]
    if arr.shape[1:3] != (FRAME_SIZE, FRAME_SIZE):
        from PIL import Image  # torchvision's Resize((224, 224)) on a PIL image, as demo_util.py uses it

        arr = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize(
            (FRAME_SIZE, FRAME_SIZE), Image.Resampling.BILINEAR)) for f in arr])
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return torch.stack([x[o : o + CLIP_FRAMES] for o in offsets])


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """``(128, 513) float32``: ``librosa.filters.mel(sr=16000, n_fft=1024, fmin=125, fmax=7600, n_mels=128)``."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, fmin=F_MIN, fmax=F_MAX, n_mels=N_MELS).astype(np.float32)


def log_mel(samples_16k: np.ndarray) -> np.ndarray:
    """``(S,)`` float mono at 16 kHz -> ``(128, 1 + (S - 1) // 250) float32`` in [0, 1] (``wav2spec.py``;
    the last sample is dropped as ``y[:length - 1]`` does, so 10 s give 640 frames)."""
    import librosa

    y = np.asarray(samples_16k, dtype=np.float32)[:-1]
    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, pad_mode="reflect"))
    mel = mel_basis() @ spec
    out = (20.0 * np.log10(np.maximum(mel, 1e-5)) - 20.0 + 100.0) / 100.0
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(S,)`` float32 at ``sample_rate`` -> ``(ceil(S * 16000 / sample_rate),) float32`` at 16 kHz (unchanged at
    16 kHz), as librosa 0.8.0's ``load(sr=16000)`` resamples: ``resampy.resample(..., filter="kaiser_best")``
    then ``util.fix_length`` to ``ceil(S * ratio)`` samples (``librosa/core/audio.py``, ``resample``)."""
    x = np.asarray(samples, dtype=np.float32)
    if sample_rate == SAMPLE_RATE:
        return x
    n = math.ceil(x.shape[-1] * SAMPLE_RATE / sample_rate)
    if sample_rate % SAMPLE_RATE == 0:  # 48 kHz (CLAP's windows), 32 kHz: the same filter as one FIR, ~100x faster
        from scipy.signal import upfirdn

        factor = sample_rate // SAMPLE_RATE
        taps, lead = _decimation_fir(factor)
        y = upfirdn(taps, x.astype(np.float64), up=1, down=factor)[lead : lead + n]
    else:
        import resampy

        y = resampy.resample(x, sample_rate, SAMPLE_RATE, filter="kaiser_best", axis=-1)
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(y))] = y[:n]
    return out


@lru_cache(maxsize=4)
def _decimation_fir(factor: int) -> tuple[np.ndarray, int]:
    """resampy's ``kaiser_best`` decimation by an integer ``factor`` as one FIR: ``(taps float64, lead)`` such that
    ``upfirdn(taps, x, down=factor)[lead + i]`` is ``resampy.resample(x, factor * 16000, 16000)[i]``.

    For an integer ratio every output sample sits on an input sample, so resampy's interpolated windowed sinc
    is a fixed set of weights ``h(d)`` on the input ``d`` samples before it (``y[i] = sum_k x[k] h(factor i - k)``,
    zero beyond the ends, as resampy's wings stop there). The weights are read off resampy itself, from its
    output for ``factor`` impulses; ``tests/test_cavp.py`` checks the two agree to float rounding.
    """
    import resampy

    span = 8192 * factor  # resampy's wings reach 64 zero crossings of the 8 kHz cut-off: ~200 input samples
    centre = (span // 2) // factor * factor
    weights: dict[int, float] = {}
    for r in range(factor):
        impulse = np.zeros(span)
        impulse[centre + r] = 1.0
        out = resampy.resample(impulse, factor * SAMPLE_RATE, SAMPLE_RATE, filter="kaiser_best")
        for i in np.flatnonzero(out):
            weights[factor * int(i) - centre - r] = float(out[i])
    low, high = min(weights), max(weights)
    low -= low % factor  # start the taps on a multiple of factor, so the decimation grid lines up
    taps = np.zeros(high - low + 1)
    for d, w in weights.items():
        taps[d - low] = w
    return taps, -low // factor


def spec_clips(window: np.ndarray, sample_rate: int, duration_s: float) -> np.ndarray:
    """One audio window ``(S,)`` at ``sample_rate`` whose seconds span ``duration_s`` -> ``(n, 128, 256) float32``,
    the clips of ``clip_offsets(frame_count(duration_s))``.

    A clip that would run past the spectrogram (a window whose joined tail makes its seconds longer than its
    samples, ``media/windows.py``) is moved back to end with the spectrogram.
    """
    mel = log_mel(to_16k(window, sample_rate))
    if mel.shape[1] < CLIP_MEL:
        mel = np.tile(mel, (1, math.ceil(CLIP_MEL / mel.shape[1])))
    return np.stack([mel[:, s : s + CLIP_MEL] for s in clip_starts(mel.shape[1], duration_s)])


def clip_starts(mel_frames: int, duration_s: float) -> list[int]:
    """First spectrogram frames of a window's clips (``spec_clips``): ``16 x`` each clip's first video frame,
    a clip that would run past the ``mel_frames`` (>= 256, tiled already) moved back to end with them."""
    last = mel_frames - CLIP_MEL
    return [min(o * MEL_PER_FRAME, last) for o in clip_offsets(frame_count(duration_s))]
