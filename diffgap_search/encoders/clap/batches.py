"""Batching helpers of the CLAP encoder (``encoders/clap/encoder.py``): near-equal chunks, unit rows out of a tower's
output, stacking, and the fixed audio probe of the bf16 agreement check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def probe_windows(samples: int, rate: int) -> np.ndarray:
    """``(2, samples) float32``: a seeded noise burst and a sweep over tones, the bf16 agreement probe."""
    rng = np.random.default_rng(0)
    t = np.arange(samples, dtype=np.float64) / rate
    sweep = 0.4 * np.sin(2 * np.pi * (100 * t + 400 * t**2)) + 0.2 * np.sin(2 * np.pi * 1000 * t)
    noise = 0.3 * rng.standard_normal(samples) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    return np.clip(np.stack([noise, sweep]), -1.0, 1.0).astype(np.float32)


def even_chunks(items: Any, size: int) -> Iterator[Any]:
    """``items`` in ``ceil(n / size)`` chunks of near-equal length (at most ``size``): 18 windows at batch
    size 16 run as 9 + 9, not 16 + 2, whose lone pair would run at a fraction of the batch's speed."""
    n = len(items)
    count = max(1, -(-n // size))
    bounds = [round(i * n / count) for i in range(count + 1)]
    for lo, hi in zip(bounds, bounds[1:]):
        if hi > lo:
            yield items[lo:hi]


def unit_rows(output: Any) -> np.ndarray:
    """A tower's output -> ``(B, D) float32`` L2-normalised rows (transformers 4.x returns the embeddings,
    5.x a ModelOutput holding them in ``pooler_output``)."""
    embeds = output if isinstance(output, torch.Tensor) else output.pooler_output
    embeds = torch.nn.functional.normalize(embeds.float(), dim=-1)
    return embeds.cpu().numpy().astype(np.float32, copy=False)


def stack_rows(parts: list[np.ndarray], dim: int) -> np.ndarray:
    """Row blocks ``(n_i, dim)`` -> one ``(sum n_i, dim) float32`` array (``(0, dim)`` for none)."""
    if not parts:
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)
