"""The aisfx encoder as a text query meets it: known by its identity, loaded at its first audio window.

An index of ``--model aisfx --text-model wordllama`` answers words with WordLlama (numpy) and, through its bridge,
the stored audio vectors: no aisfx network is run. Loading it anyway imports torch and reads its checkpoint
(about 1.2 s of a 2.3 s query on a 2-core EPYC). ``OnDemandAisfx`` holds what the index checks of the encoder
(``encoders.base.identity_of``: the model, the checkpoint's sha256, its size and rate) and loads the network only
when a window is to be embedded or an attribute of the loaded encoder is asked for.

For queries only (``load_encoder(..., audio_on_demand=True)``): an indexing run loads the network at once, so a
device or checkpoint error stops the run before any file rather than failing each file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.encoders.aisfx.package import (
    DIM,
    MODEL_ID,
    PREPROCESSING,
    SAMPLE_RATE,
    embeds_own_lengths,
    find_checkpoint,
)
from diffgap_search.encoders.weights.fingerprint import file_sha256

if TYPE_CHECKING:
    from diffgap_search.encoders.aisfx.encoder import AisfxEncoder


class OnDemandAisfx:
    """An ``AisfxEncoder`` not loaded yet. ``model_id``, ``modalities``, ``dim``, ``sample_rate``, ``fingerprint``
    (sha256 of the package's checkpoint), ``provenance``, ``preprocessing`` and ``own_lengths`` as the loaded one
    has them;
    ``embed_audio`` and any other attribute load it (``load``: returns the ``AisfxEncoder``) once."""

    model_id: str = MODEL_ID
    modalities: tuple[str, ...] = ("audio",)
    dim: int = DIM
    sample_rate: int = SAMPLE_RATE
    def __init__(self, load: Callable[[], AisfxEncoder], version: int = PREPROCESSING["audio"]) -> None:
        self.preprocessing = {"audio": version}  # as the loaded one will make (``load`` makes the same version)
        self.own_lengths = embeds_own_lengths(version)
        self.fingerprint = file_sha256(find_checkpoint())
        self.provenance: dict[str, Any] = {"source": "package"}
        self._load = load
        self._loaded: AisfxEncoder | None = None

    def loaded(self) -> AisfxEncoder:
        """The ``AisfxEncoder``, loaded on first use (its provenance set as this one's)."""
        if self._loaded is None:
            encoder = self._load()
            encoder.provenance = dict(self.provenance)
            self._loaded = encoder
        return self._loaded

    def embed_audio(self, windows: np.ndarray, durations_s: Sequence[float] | None = None) -> np.ndarray:
        """``(N, S) float32`` windows at 44.1 kHz -> ``(N, 512) float32``, unit rows (the loaded encoder's)."""
        return self.loaded().embed_audio(windows, durations_s)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded(), name)
