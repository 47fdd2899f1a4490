"""Window: cut mono audio into fixed, deterministic windows with start/end times.

The rule, in samples (``L`` = input length, ``W = cfg.window_samples``, ``H = cfg.hop_samples``,
``J = W // 40``, the *joined tail*: 0.25 s of a 10 s window):

- ``L == 0``: no windows (the caller records an error);
- ``L <= W``: one window covering ``[0, L)``, repeat-padded to ``P`` (a short clip; ``P == W`` but see below);
- ``L > W``: the hop grid, windows ``[i*H, i*H + W)`` for every ``i`` with ``i*H + W <= L``; then the tail
  after the last grid window, ``T = L - (last start + W)``:

  - ``T == 0``: nothing more;
  - ``0 < T < J``: the tail *joins* the last grid window, whose end becomes ``L`` (it still embeds its
    ``W`` samples; the at most ``J`` samples after them are covered by its seconds, not by its vector);
  - ``T >= J``: one more window, *end-aligned*, ``[L - W, L)``, overlapping the one before.

  Every window embeds ``W`` real samples. Real "10-second" clips are a hair longer (Diff-Foley's demo
  videos, most VGGSound and AudioCaps clips run 10.047–10.094 s): they give one window ``[0, L]``, not a
  second one that would double the windows to embed for 47–94 ms of sound, and never a sliver padded to
  10 s. A 19.9 s clip gives ``[0, 10]`` and ``[9.9, 19.9]``; a 20.02 s clip ``[0, 10]`` and ``[10, 20.02]``.

A window shorter than what the model hears at once (``--window 2`` with CLAP, whose input is 10 s:
``cfg.model_samples``) is repeat-padded to the model's length exactly as a short clip is, so its ``W`` real
samples are tiled to ``P = cfg.embed_samples`` and its start and end stay its own; with the default window
(``W == P``) nothing changes.

Start/end times are those sample indices divided by ``cfg.sample_rate`` (float64 seconds): the
end-aligned window's start is exactly ``(L - W) / sample_rate``. Only a clip shorter than one window is
padded, exactly like LAION-CLAP / transformers' ``ClapFeatureExtractor`` ``padding="repeatpad"``: tile the
segment ``int(W / len)`` times, then zero-pad to ``W``. Nothing is ever cropped at random.

(Indexes built before this rule hold a last window ``[i*H, L)`` repeat-padded to ``W``; their files keep
those windows until they are indexed again.)

``window_audio`` works on a whole array; ``iter_windows`` gives exactly the same windows from streamed
blocks while holding at most about ``W + J`` plus one block of samples. ``window_spans`` is the rule
alone, shared with the video frame windows (``media/video.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from diffgap_search.config import WindowConfig


class AudioWindow(NamedTuple):
    """One window: ``samples`` is ``(P,) float32`` (``cfg.embed_samples``); ``start_s``/``end_s`` are seconds
    into the clip."""

    samples: np.ndarray
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Windows:
    """All windows of one clip: ``samples`` ``(N, P) float32``, ``starts``/``ends`` ``(N,) float64`` seconds."""

    samples: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    def __iter__(self) -> Iterator[AudioWindow]:
        for row, start, end in zip(self.samples, self.starts, self.ends):
            yield AudioWindow(row, float(start), float(end))


def joined_tail(window: int) -> int:
    """``J``: a tail shorter than this many samples joins the window before it (1/40 of the window)."""
    return window // 40


def window_count(length: int, window: int, hop: int) -> int:
    """How many windows a clip of ``length`` samples gives (0 for an empty clip)."""
    return len(window_spans(length, window, hop))


def window_spans(length: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``[(begin, end), ...]`` sample spans of a clip of ``length`` samples (see the module docstring).

    Empty for ``length <= 0``; ``[(0, length)]`` for ``length <= window``; otherwise begins are strictly
    increasing, the first is 0, the last span ends at ``length``, and every span is ``window`` long except
    the last grid window when a tail joins it (``window < end - begin < window + joined_tail(window)``).
    The samples a span embeds are ``[begin, begin + window)``, or the whole span when it is shorter.
    """
    if length <= 0:
        return []
    if length <= window:
        return [(0, length)]
    grid = (length - window) // hop + 1
    spans = [(i * hop, i * hop + window) for i in range(grid)]
    tail = length - spans[-1][1]
    if 0 < tail < joined_tail(window):
        spans[-1] = (spans[-1][0], length)
    elif tail > 0:
        spans.append((length - window, length))
    return spans


def embedded(begin: int, end: int, window: int) -> tuple[int, int]:
    """The samples a span ``[begin, end)`` embeds: at most ``window`` from its start (a joined tail is not)."""
    return begin, min(end, begin + window)


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


def _sizes(cfg: WindowConfig) -> tuple[int, int, int]:
    """``(W, H, P)``: window, hop and embedded length in samples (``P = cfg.embed_samples >= W``)."""
    window, hop = cfg.window_samples, cfg.hop_samples
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be at least one sample at {cfg.sample_rate} Hz")
    return window, hop, cfg.embed_samples


def window_audio(samples: np.ndarray, cfg: WindowConfig) -> Windows:
    """Cut ``samples`` (1-D, at ``cfg.sample_rate``) into windows; see the module docstring for the rule.

    Returns ``Windows`` with ``samples`` ``(N, cfg.embed_samples) float32`` and ``starts``/``ends``
    ``(N,) float64``; ``N == 0`` for empty input.
    """
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {audio.shape}")
    window, hop, padded = _sizes(cfg)
    spans = window_spans(audio.shape[0], window, hop)
    n = len(spans)
    out = np.empty((n, padded), dtype=np.float32)
    starts = np.empty(n, dtype=np.float64)
    ends = np.empty(n, dtype=np.float64)
    for i, (begin, end) in enumerate(spans):
        lo, hi = embedded(begin, end, window)
        out[i] = repeat_pad(audio[lo:hi], padded)
        starts[i] = begin / cfg.sample_rate
        ends[i] = end / cfg.sample_rate
    return Windows(samples=out, starts=starts, ends=ends)


def iter_windows(blocks: Iterable[np.ndarray], cfg: WindowConfig) -> Iterator[AudioWindow]:
    """Stream windows from consecutive 1-D blocks of one clip, identical to ``window_audio`` of their concat.

    Each yielded ``AudioWindow.samples`` is a fresh ``(cfg.embed_samples,) float32`` array. Memory held is
    about one window plus one block: the last ``W`` samples are always kept, since the clip's end (and so
    its end-aligned last window) is known only when the stream ends. Yields nothing for an empty stream.
    """
    window, hop, padded = _sizes(cfg)
    join = joined_tail(window)
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
        # A grid window is final once ``join`` samples past its end have arrived: no tail can join it then.
        while next_i * hop + window + join <= received:
            begin = next_i * hop
            offset = begin - buf_start
            yield AudioWindow(repeat_pad(buf[offset : offset + window], padded), begin / sr, (begin + window) / sr)
            next_i += 1
        drop = min(next_i * hop, received - window - join) - buf_start
        if drop > 0:
            buf = buf[drop:]
            buf_start += drop
    length = buf_start + buf.shape[0]
    for begin, end in window_spans(length, window, hop)[next_i:]:
        lo, hi = embedded(begin, end, window)
        yield AudioWindow(repeat_pad(buf[lo - buf_start : hi - buf_start], padded), begin / sr, end / sr)
