"""The ``Encoder`` protocol every embedding model implements.

All outputs are ``(N, D) float32`` arrays, each row L2-normalised, deterministic for the same input
(models in ``eval()`` mode, calls under ``torch.inference_mode()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Embeds fixed-length audio windows and texts into one shared contrastive space.

    Attributes:
        model_id: the hub id or local directory the weights came from, as given by the user.
        fingerprint: sha256 hex digest identifying the weights (same weights -> same fingerprint).
        dim: D, the embedding size (512 for CLAP).
        sample_rate: the rate ``embed_audio`` expects (48 000 for CLAP).
    """

    model_id: str
    fingerprint: str
    dim: int
    sample_rate: int

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """``(N, S) float32`` mono windows at ``sample_rate`` (S = window samples) -> ``(N, D) float32``, L2-normalised."""
        ...

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N non-empty strings -> ``(N, D) float32``, L2-normalised."""
        ...


@runtime_checkable
class AudioVisualEncoder(Protocol):
    """Embeds windows of video frames and windows of sound into one shared space (CAVP: ``encoders/cavp/encoder.py``).

    Attributes as ``Encoder``'s, plus ``fps``: the rate a window's frames must be sampled at.
    """

    model_id: str
    fingerprint: str
    dim: int
    sample_rate: int
    fps: float

    def embed_video(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """N windows of ``(F_i, H, W, 3) uint8`` RGB frames -> ``(N, D) float32``, L2-normalised."""
        ...

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """``(N, S) float32`` mono windows at ``sample_rate`` -> ``(N, D) float32``, L2-normalised."""
        ...
