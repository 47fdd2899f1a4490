"""Window: cut mono audio into fixed, deterministic windows with start/end times.

The rule, in samples (``L`` = input length, ``W = cfg.window_samples``, ``H = cfg.hop_samples``):

- ``L == 0``: no windows (the caller records an error);
- ``L <= W``: one window covering ``[0, L)``;
- ``L > W``: ``n = ceil((L - W) / H) + 1`` windows; window ``i`` covers ``[i*H, min(i*H + W, L))``.

Start/end times are those sample indices divided by ``cfg.sample_rate`` (float64 seconds), which is the
seconds rule ``[i*hop, min(i*hop + window, d)]`` evaluated exactly. A window shorter than ``W`` (a short
clip, or the last window) is repeat-padded exactly like LAION-CLAP / transformers' ``ClapFeatureExtractor``
``padding="repeatpad"``: tile the segment ``int(W / len)`` times, then zero-pad to ``W``. Nothing is ever
cropped at random.

``window_audio`` works on a whole array; ``iter_windows`` gives exactly the same windows from streamed
blocks while holding at most about ``W`` plus one block of samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from diffgap_search.config import WindowConfig


class AudioWindow(NamedTuple):
    """One window: ``samples`` is ``(W,) float32``; ``start_s``/``end_s`` are seconds into the clip."""

    samples: np.ndarray
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Windows:
    """All windows of one clip: ``samples`` ``(N, W) float32``, ``starts``/``ends`` ``(N,) float64`` seconds."""

    samples: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    def __iter__(self) -> Iterator[AudioWindow]:
        for row, start, end in zip(self.samples, self.starts, self.ends):
            yield AudioWindow(row, float(start), float(end))


def window_count(length: int, window: int, hop: int) -> int:
    """How many windows a clip of ``length`` samples gives (0 for an empty clip)."""
    if length <= 0:
        return 0
    if length <= window:
        return 1
    return -(-(length - window) // hop) + 1


def repeat_pad(segment: np.ndarray, size: int) -> np.ndarray:
    """``(size,) float32``: ``segment`` (1-D, 1 <= len <= size) tiled then zero-padded, as CLAP's repeatpad.

    Mirrors ``ClapFeatureExtractor._get_input_mel``: ``n_repeat = int(max_length / len(waveform))``,
    ``np.tile``, then ``np.pad`` with zeros to ``max_length``.
    """
    seg = np.asarray(segment, dtype=np.float32)
    if not 0 < seg.shape[0] <= size:
        raise ValueError(f"segment length {seg.shape[0]} must be in 1..{size}")
    if seg.shape[0] == size:
        return seg.copy()
    n_repeat = int(size / seg.shape[0])
    tiled = np.tile(seg, n_repeat)
    return np.pad(tiled, (0, size - tiled.shape[0]), mode="constant", constant_values=0).astype(np.float32)


def _sizes(cfg: WindowConfig) -> tuple[int, int]:
    window, hop = cfg.window_samples, cfg.hop_samples
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be at least one sample at {cfg.sample_rate} Hz")
    return window, hop


def window_audio(samples: np.ndarray, cfg: WindowConfig) -> Windows:
    """Cut ``samples`` (1-D, at ``cfg.sample_rate``) into windows; see the module docstring for the rule.

    Returns ``Windows`` with ``samples`` ``(N, cfg.window_samples) float32`` and ``starts``/``ends``
    ``(N,) float64``; ``N == 0`` for empty input.
    """
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {audio.shape}")
    window, hop = _sizes(cfg)
    length = audio.shape[0]
    n = window_count(length, window, hop)
    out = np.empty((n, window), dtype=np.float32)
    starts = np.empty(n, dtype=np.float64)
    ends = np.empty(n, dtype=np.float64)
    for i in range(n):
        begin = i * hop
        end = min(begin + window, length)
        out[i] = repeat_pad(audio[begin:end], window)
        starts[i] = begin / cfg.sample_rate
        ends[i] = end / cfg.sample_rate
    return Windows(samples=out, starts=starts, ends=ends)


def iter_windows(blocks: Iterable[np.ndarray], cfg: WindowConfig) -> Iterator[AudioWindow]:
    """Stream windows from consecutive 1-D blocks of one clip, identical to ``window_audio`` of their concat.

    Each yielded ``AudioWindow.samples`` is a fresh ``(cfg.window_samples,) float32`` array. Memory held is
    about one window plus one block. Yields nothing for an empty stream.
    """
    window, hop = _sizes(cfg)
    sr = cfg.sample_rate
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # absolute index of buf[0]
    next_i = 0
    for block in blocks:
        chunk = np.asarray(block, dtype=np.float32).reshape(-1)
        if chunk.size == 0:
            continue
        buf = np.concatenate([buf, chunk]) if buf.size else chunk.copy()
        received = buf_start + buf.shape[0]
        while next_i * hop + window <= received:
            begin = next_i * hop
            offset = begin - buf_start
            yield AudioWindow(buf[offset : offset + window].copy(), begin / sr, (begin + window) / sr)
            next_i += 1
        drop = min(next_i * hop, received) - buf_start
        if drop > 0:
            buf = buf[drop:]
            buf_start += drop
    length = buf_start + buf.shape[0]
    for i in range(next_i, window_count(length, window, hop)):
        begin = i * hop
        end = min(begin + window, length)
        yield AudioWindow(repeat_pad(buf[begin - buf_start : end - buf_start], window), begin / sr, end / sr)
