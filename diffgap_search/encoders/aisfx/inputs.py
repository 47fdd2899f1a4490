"""The windows aisfx's network takes, in numpy (no torch): checked, each cut to its own samples, peak-normalised,
and how many spectrogram frames each gives. Shared by the torch encoder (``encoder.py``) and the ONNX query path
(``onnx_query.py``), so both cut and scale a window the same way."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from diffgap_search.encoders.aisfx.package import SAMPLE_RATE
from diffgap_search.encoders.aisfx.spectrogram import ESSENTIA, frame_count

PEAK_FLOOR = 0.01  # -40 dBFS: per-window peak normalisation raises a window by at most +40 dB
BLOCK_FRAMES = 100  # inference.EMB_BLOCK_LENGTH: the shortest input; shorter windows are zero-padded to it


def input_frames(samples: int) -> int:
    """Frames of network input for windows of ``samples`` samples: ``max(frame_count(S), 100)``."""
    return max(frame_count(samples, ESSENTIA), BLOCK_FRAMES)


def checked_windows(windows: np.ndarray) -> np.ndarray:
    """``(N, S)`` finite floating samples as a float32 array, or ValueError."""
    batch = np.asarray(windows)
    if batch.ndim != 2 or batch.shape[1] < 1:
        raise ValueError(f"expected (N, S) mono windows with S >= 1, got an array of shape {batch.shape}")
    if not np.issubdtype(batch.dtype, np.floating):
        raise ValueError(f"windows must be floating point samples in [-1, 1], got dtype {batch.dtype}")
    batch = batch.astype(np.float32, copy=False)
    if not np.isfinite(batch).all():
        raise ValueError("windows contain NaN or infinite samples")
    return batch


def window_lengths(durations_s: Sequence[float], shape: tuple[int, ...]) -> np.ndarray:
    """``(N,) int64`` samples of each of ``shape = (N, S)`` windows that are its own: ``round(seconds * 44 100)``,
    at least 1 and at most S (a last window joined by a short tail runs past its S samples: its S are its own).
    Raises ValueError when there are not N durations or one is not a finite number above 0."""
    seconds = np.asarray(durations_s, dtype=np.float64)
    if seconds.shape != (shape[0],):
        raise ValueError(f"expected {shape[0]} window durations, got {seconds.shape[0] if seconds.ndim else 'one'}")
    if not (np.isfinite(seconds).all() and (seconds > 0).all()):
        raise ValueError("window durations must be finite seconds above 0")
    return np.clip(np.rint(seconds * SAMPLE_RATE).astype(np.int64), 1, shape[1])


def length_groups(lengths: np.ndarray) -> list[np.ndarray]:
    """``(N,) int64`` window lengths -> the row indices of each length, shortest length first."""
    return [np.flatnonzero(lengths == n) for n in np.unique(lengths)]


def peak_normalised(windows: np.ndarray) -> np.ndarray:
    """``(N, S) float32`` -> each row divided by ``max(its peak |sample|, PEAK_FLOOR)`` (``encoder.py``, step 1)."""
    peaks = np.maximum(np.abs(windows).max(axis=1, keepdims=True), np.float32(PEAK_FLOOR))
    return (windows / peaks).astype(np.float32, copy=False)


def chunks(batch: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive row slices of ``batch``, ``size`` rows each (the last may be shorter)."""
    for lo in range(0, batch.shape[0], size):
        yield batch[lo : lo + size]
