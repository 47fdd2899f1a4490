"""An audio-only encoder joined with a text encoder of its own (``--model aisfx --text-model wordllama``).

The two were trained apart: their spaces are unrelated, so a text vector is only comparable with audio
vectors through a DiffGAP bridge trained on the index's own captions (``dgsearch train``). The pair keeps
the audio encoder's identity (an index's audio vectors are the audio encoder's, whatever text side it
has); the text side has its own, recorded as the index's ``text_encoder`` (``text_identity_of``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from diffgap_search.config import EncoderIdentity
from diffgap_search.encoders.base import AudioEncoder, TextEncoder, identity_of


class PairedEncoder:
    """``embed_audio`` by ``audio``, ``embed_text`` by ``text`` (both ``(N, D) float32`` unit rows, one D).

    Attributes as the audio encoder's (``model_id``, ``fingerprint``, ``dim``, ``sample_rate``,
    ``modalities``, ``provenance``); ``text``: the text encoder."""

    def __init__(self, audio: AudioEncoder, text: TextEncoder) -> None:
        if text.dim != audio.dim:
            raise ValueError(f"text vectors are {text.dim}-d, audio ones {audio.dim}-d: pad the text side")
        self.audio, self.text = audio, text
        self.model_id, self.fingerprint, self.dim = audio.model_id, audio.fingerprint, audio.dim
        self.sample_rate = audio.sample_rate
        self.modalities: tuple[str, ...] = tuple(getattr(audio, "modalities", ("audio",)))
        self.provenance: dict[str, Any] = dict(getattr(audio, "provenance", None) or {})

    def embed_audio(self, windows: np.ndarray, durations_s: Sequence[float] | None = None) -> np.ndarray:
        """``(N, S) float32`` windows -> ``(N, D) float32``, L2-normalised (the audio encoder's; ``durations_s``
        for one that embeds windows at their own lengths, ``own_lengths``)."""
        if durations_s is None:
            return self.audio.embed_audio(windows)
        return self.audio.embed_audio(windows, durations_s)  # type: ignore[call-arg]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N strings -> ``(N, D) float32``, L2-normalised, in the text encoder's own space."""
        return self.text.embed_text(texts)

    def __getattr__(self, name: str) -> Any:  # the audio encoder's extras (batch_size, device ...)
        if name in ("audio", "text"):
            raise AttributeError(name)
        return getattr(self.audio, name)


def text_identity_of(encoder: object) -> EncoderIdentity | None:
    """The identity of ``encoder``'s separate text side (an index's ``text_encoder`` record), or None when
    its text, if any, is its own (CLAP)."""
    text = getattr(encoder, "text", None) if isinstance(encoder, PairedEncoder) else None
    return None if text is None else identity_of(text)
