"""HTSAT's time stretch as four gathers, for the ONNX export of CLAP's audio tower.

``ClapAudioEncoder.reshape_mel2img`` stretches the log-mel frames to the Swin input's width (1001 -> 1024 for
``laion/clap-htsat-*``) with ``F.interpolate(mode="bicubic", align_corners=True)``. Exported, that is one ONNX
``Resize`` node, which ONNX Runtime's CPU provider ran in 7.4 ms a window (7 % of the int8 tower, 2026-12-03,
AVX2-only EPYC) where torch takes 0.75 ms. Along time only (the frequency axis keeps its size, so its bicubic
weights are exactly ``(0, 1, 0, 0)``) the stretch is ``out[t] = sum_k w_k[t] * in[i_k[t]]`` with four taps per
output frame: exported as four ``Gather``s, ``Mul``s and ``Add``s, it costs a fraction of a millisecond a window
and agrees with torch's bicubic to float32 rounding (``tests/test_time_stretch.py``).

Used while exporting only (``gathered_stretch``); the torch paths keep transformers' own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

CUBIC_A = -0.75  # torch's bicubic coefficient (upsample_bicubic2d)


def bicubic_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The taps of a 1-D bicubic stretch from ``n_in`` to ``n_out >= 2`` samples with ``align_corners=True``, as
    torch computes them: ``(indices (4, n_out) int64, weights (4, n_out) float32)``, indices clamped to the
    border, weights in float32 arithmetic (torch's for float32 input)."""
    if n_in < 1 or n_out < 2:
        raise ValueError(f"a bicubic stretch needs n_in >= 1 and n_out >= 2, got {n_in} -> {n_out}")
    f32 = np.float32
    scale = f32(n_in - 1) / f32(n_out - 1) if n_in > 1 else f32(0)
    real = scale * np.arange(n_out, dtype=f32)
    base = np.floor(real).astype(np.int64)
    t = (real - base.astype(f32)).astype(f32)
    a = f32(CUBIC_A)

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + f32(2)) * x - (a + f32(3))) * x * x + f32(1)

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - f32(5) * a) * x + f32(8) * a) * x - f32(4) * a

    weights = np.stack([far(t + f32(1)), near(t), near(f32(1) - t), far(f32(2) - t)]).astype(f32)
    indices = np.clip(base[None, :] + np.arange(-1, 3)[:, None], 0, n_in - 1)
    return indices, weights


def stretch_time(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """``x`` ``(B, C, T, F)`` stretched along T to ``n_out`` frames by ``bicubic_taps`` (four gathers, a
    weighted sum in the order torch sums them) -> ``(B, C, n_out, F)``, ``x``'s dtype."""
    indices, weights = bicubic_taps(int(x.shape[2]), n_out)
    out: torch.Tensor | None = None
    for k in range(4):
        tap = torch.index_select(x, 2, torch.from_numpy(indices[k]).to(x.device))
        term = tap * torch.from_numpy(weights[k]).to(device=x.device, dtype=x.dtype).view(1, 1, n_out, 1)
        out = term if out is None else out + term
    assert out is not None
    return out


def reshape_mel2img(encoder: Any, features: torch.Tensor) -> torch.Tensor:
    """``ClapAudioEncoder.reshape_mel2img`` with the time stretch by ``stretch_time``; any other case (a
    frequency axis to stretch, nothing to stretch) goes to transformers' own method unchanged."""
    _, _, time_length, freq_length = features.shape
    spec_width = int(encoder.spec_size * encoder.freq_ratio)
    spec_height = encoder.spec_size // encoder.freq_ratio
    if not (1 < time_length < spec_width and freq_length == spec_height):
        return type(encoder).reshape_mel2img(encoder, features)
    features = stretch_time(features, spec_width)
    batch, channels, time, freq = features.shape
    ratio = encoder.freq_ratio
    features = features.reshape(batch, channels * ratio, time // ratio, freq).permute(0, 1, 3, 2).contiguous()
    return features.reshape(batch, channels, freq * ratio, time // ratio)


@contextmanager
def gathered_stretch(model: Any) -> Iterator[None]:
    """While inside, ``model``'s (a ``ClapModel``'s) audio encoder stretches time by ``reshape_mel2img`` above
    (for an export); transformers' method is back on exit. A model without that encoder is left alone."""
    encoder = getattr(getattr(model, "audio_model", None), "audio_encoder", None)
    if encoder is None or not hasattr(type(encoder), "reshape_mel2img"):
        yield
        return
    encoder.reshape_mel2img = lambda features: reshape_mel2img(encoder, features)
    try:
        yield
    finally:
        del encoder.reshape_mel2img
