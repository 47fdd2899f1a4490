"""The protocols of the encoders, one per role, and the identity an index records of each.

Roles (what a caller needs, not which model provides it):

- ``AudioEncoder``: fixed-length audio windows -> vectors (CLAP, aisfx; an indexing run needs only this);
- ``TextEncoder``: texts -> vectors in the same space (CLAP's text tower);
- ``Encoder``: both, the index's audio encoder as a query sees it (aisfx refuses texts with
  ``QueryNotSupportedError``);
- ``FrameEncoder``: windows of video frames -> vectors (CLIP frames mean-pooled per window, CAVP);
- ``AudioVisualEncoder``: a ``FrameEncoder`` that also embeds sound into the same space (CAVP).

All outputs are ``(N, D) float32`` arrays, each row L2-normalised, deterministic for the same input
(models in ``eval()`` mode, calls under ``torch.inference_mode()``). Importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from diffgap_search.config import EncoderConfig, EncoderIdentity, FrameFit, VideoConfig, WindowConfig
from diffgap_search.errors import UsageError

AUDIO_TEXT = ("audio", "text")  # what an encoder embeds when it does not say (CLAP, recorded before modalities)


@runtime_checkable
class AudioEncoder(Protocol):
    """Embeds fixed-length mono audio windows.

    Attributes:
        model_id: the hub id, local directory or checkpoint the weights came from, as given by the user.
        fingerprint: sha256 hex digest identifying the weights (same weights -> same fingerprint).
        dim: D, the embedding size (512 for CLAP and aisfx).
        sample_rate: the rate ``embed_audio`` expects (48 000 for CLAP, 44 100 for aisfx).
    """

    model_id: str
    fingerprint: str
    dim: int
    sample_rate: int

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """``(N, S) float32`` mono windows at ``sample_rate`` (S samples) -> ``(N, D) float32``, L2-normalised."""
        ...


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds texts into an audio encoder's space (attributes as ``AudioEncoder``'s identity)."""

    model_id: str
    fingerprint: str
    dim: int

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N non-empty strings -> ``(N, D) float32``, L2-normalised."""
        ...


@runtime_checkable
class Encoder(AudioEncoder, TextEncoder, Protocol):
    """Embeds fixed-length audio windows and texts into one shared contrastive space (CLAP; aisfx's
    ``embed_text`` raises ``QueryNotSupportedError``)."""


@runtime_checkable
class FrameEncoder(Protocol):
    """Embeds windows of video frames (CLIP: ``encoders/clip/encoder.py``; CAVP: ``encoders/cavp/encoder.py``).

    Attributes:
        model_id, fingerprint, dim: as ``AudioEncoder``'s.
        fps: the rate a window's frames are (to be) sampled at.
        fit: how a frame becomes the model's square (``crop`` for CLIP, ``squash`` for CAVP).
    """

    model_id: str
    fingerprint: str
    dim: int
    fps: float
    fit: FrameFit

    def embed_video(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """N windows of ``(F_i, H, W, 3) uint8`` RGB frames -> ``(N, D) float32``, L2-normalised."""
        ...


@runtime_checkable
class AudioVisualEncoder(FrameEncoder, Protocol):
    """Embeds windows of video frames and windows of sound into one shared space (CAVP: ``encoders/cavp/encoder.py``).

    Attributes as ``FrameEncoder``'s, plus ``sample_rate``: the model's own audio rate (``embed_audio``
    resamples from the rate it is told).
    """

    sample_rate: int

    def embed_audio(self, windows: np.ndarray, *, sample_rate: int | None = None,
                    durations_s: Sequence[float] | None = None) -> np.ndarray:
        """``(N, S) float32`` mono windows at ``sample_rate`` (default the model's) -> ``(N, D) float32``,
        L2-normalised. ``durations_s``: the seconds each window spans (default ``S / sample_rate``)."""
        ...


def embed_windows(encoder: AudioEncoder, windows: np.ndarray, durations_s: Sequence[float]) -> np.ndarray:
    """``(N, S) float32`` windows as an index embeds them -> ``(N, D) float32``, L2-normalised: with each window's
    seconds (``durations_s``, its end minus its start) for an encoder that embeds a short window from its own
    samples (``own_lengths``: aisfx), as given to any other (CLAP hears a repeat-padded short clip)."""
    if getattr(encoder, "own_lengths", False):
        return encoder.embed_audio(windows, durations_s)  # type: ignore[call-arg]
    return encoder.embed_audio(windows)


def for_many_windows(encoder: AudioEncoder) -> AudioEncoder:
    """The encoder to embed many windows with: a query process's on-demand encoder hands over its loaded
    network where its torch-free path is for one file's windows only (``for_many``: aisfx), else ``encoder``."""
    for_many = getattr(encoder, "for_many", None)
    return for_many() if callable(for_many) else encoder


def input_samples(encoder: object) -> int:
    """The samples an audio encoder hears at once (its ``input_samples``: 480 000 for CLAP, 10 s at 48 kHz);
    0 for one that takes windows of any length (aisfx, CAVP)."""
    return int(getattr(encoder, "input_samples", 0) or 0)


def fit_window(window: WindowConfig, encoder: AudioEncoder) -> WindowConfig:
    """``window`` for ``encoder``: its ``model_samples`` set to what the encoder hears at once, so a shorter
    window is repeat-padded to it (``WindowConfig.embed_samples``). Raises UsageError for a window longer than
    that: its vector would be of its first seconds only, while its hit would claim all of them."""
    heard = input_samples(encoder)
    if heard and window.window_samples > heard:
        limit = heard / window.sample_rate
        raise UsageError(
            f"--window {window.window_s:g} is longer than the {limit:g} s that {encoder.model_id} hears at once:"
            f" use --window "
            f"{limit:g} or less (a longer sound is found through its {limit:g} s windows; --hop sets their overlap)")
    return replace(window, model_samples=heard)


# Loaders, as the use-cases receive them (``encoders/loading.py`` has the real ones; tests pass counting ones).
EncoderLoader = Callable[[EncoderConfig], Encoder]
VideoEncoderLoader = Callable[[VideoConfig, str], FrameEncoder]  # (config, device) -> the video encoder
QueryVideoLoader = Callable[[str, str, str | None], FrameEncoder]  # (model, device, revision) -> encoder


def identity_of(encoder: AudioEncoder | TextEncoder | FrameEncoder) -> EncoderIdentity:
    """What an index records of ``encoder`` (``store/settings.bind_encoder``): its model, fingerprint and
    dim, its audio rate (None for frames only), what it embeds (``modalities``, default audio and text) and
    where its weights came from (``provenance``, set by its loader) and the version of its preprocessing per
    space (``preprocessing``, default 1 for every space)."""
    provenance: dict[str, Any] = dict(getattr(encoder, "provenance", None) or {})
    return EncoderIdentity(
        model=encoder.model_id,
        fingerprint=encoder.fingerprint,
        dim=encoder.dim,
        sample_rate=getattr(encoder, "sample_rate", None),
        modalities=tuple(getattr(encoder, "modalities", AUDIO_TEXT)),
        provenance=provenance,
        preprocessing=dict(getattr(encoder, "preprocessing", None) or {}),
    )


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` (items per forward pass), or ValueError below 1."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return batch_size


def checked_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of non-empty strings (what every ``embed_text`` takes). Raises TypeError for one string
    (a sequence of its characters, by mistake) and ValueError for an empty or non-string item."""
    if isinstance(texts, str):
        raise TypeError("embed_text takes a sequence of strings, not one string")
    items = list(texts)
    for text in items:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"texts must be non-empty strings, got {text!r}")
    return items
