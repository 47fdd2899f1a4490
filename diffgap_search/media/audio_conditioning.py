"""What every decoded block goes through, whichever decoder gave it, and what the decoders share.

- :class:`Conditioner`: frames ``(t, channels)`` at the source's rate -> mono ``(t',) float32`` in [-1, 1] at
  the encoder's rate: downmix by the *mean* over channels, NaN/±inf replaced by 0, clip to [-1, 1], a
  streaming soxr ``HQ`` resampler (deterministic), a final clip (resampling can overshoot by a hair);
- :func:`decode_error`: the ``MediaDecodeError`` every decoder raises (``"<path>: <reason>"``, with ``.path`` and
  ``.reason``);
- :func:`observe` / :func:`stream_facts`: the source stream's rate and channels as its decoder found them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soxr

from diffgap_search.errors import MediaDecodeError
from diffgap_search.media.discover import display_path

RESAMPLE_QUALITY = "HQ"

# The source stream's (sample rate, channels) as the decoder found them, per path decoded in this process:
# what ``dgsearch query --sample-rate/--channels`` filter on (``stream_facts``), read where the file is
# decoded anyway. Only the last few paths are kept.
_FACTS: dict[str, tuple[int, int]] = {}


def observe(path: Path, sample_rate: int, channels: int) -> None:
    if len(_FACTS) > 64:
        _FACTS.clear()
    _FACTS[os.fspath(path)] = (int(sample_rate), int(channels))


def stream_facts(path: Path) -> tuple[int, int] | None:
    """``(sample_rate, channels)`` of ``path``'s audio stream as its decoder in this process last found them
    (None if it was not decoded here)."""
    return _FACTS.get(os.fspath(Path(os.path.abspath(os.fspath(path)))))


def decode_error(path: Path, reason: str) -> MediaDecodeError:
    """A ``MediaDecodeError`` for ``path`` with a one-line message, carrying ``.path`` and ``.reason``."""
    reason = " ".join(reason.split()) or "cannot decode"
    err = MediaDecodeError(f"{display_path(path)}: {reason}")
    err.path = path  # type: ignore[attr-defined]
    err.reason = reason  # type: ignore[attr-defined]
    return err


def downmix(frames: np.ndarray) -> np.ndarray:
    """``(t,) float32``, a new array: the mean of ``frames (t, channels)``'s channels summed in float64, as
    ``frames.mean(axis=1, dtype=float64)`` gives it (a float64 sum of a few float32 samples is exact in any
    order), in a quarter of its time for stereo (NumPy reduces a short axis element by element)."""
    channels = frames.shape[1]
    if channels == 1:
        return np.array(frames[:, 0], dtype=np.float32)
    acc = frames[:, 0].astype(np.float64)
    for c in range(1, channels):
        acc += frames[:, c]
    acc /= channels
    return acc.astype(np.float32)


class Conditioner:
    """Frames ``(t, channels)`` at ``in_rate`` -> clean mono float32 at ``out_rate``, streaming."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY
        )

    def push(self, frames: np.ndarray, last: bool = False) -> np.ndarray:
        mono = downmix(frames)
        if not np.isfinite(mono).all():  # one pass; nan_to_num's three (isnan, isposinf, isneginf) only when needed
            mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0, copy=False)
        np.clip(mono, -1.0, 1.0, out=mono)
        if self._stream is None:
            return mono
        out = np.asarray(self._stream.resample_chunk(mono, last=last), dtype=np.float32)
        return np.clip(out, -1.0, 1.0, out=out if out.flags.writeable else None)

    def finish(self) -> np.ndarray:
        return self.push(np.zeros((0, 1), dtype=np.float32), last=True)


