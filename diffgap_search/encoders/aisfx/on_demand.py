"""The aisfx encoder as one query meets it: known by its identity, its network run only for an audio window,
and then without torch where this machine has a checked ONNX export.

An index of ``--model aisfx --text-model wordllama`` answers words with WordLlama (numpy) and, through its bridge,
the stored audio vectors: no aisfx network is run. Loading it anyway imports torch and reads its checkpoint
(about 1.2 s of a 2.3 s query on a 2-core EPYC). ``OnDemandAisfx`` holds what the index checks of the encoder
(``encoders.base.identity_of``: the model, the checkpoint's sha256, its size and rate) and loads the network only
when a window is to be embedded or an attribute of the loaded encoder is asked for. A window is embedded by
ONNX Runtime on the export ``onnx_query.py`` made and checked (with ``--precision auto``, where onnxruntime is
installed and an earlier run made it), else by the torch encoder, loaded then.

For queries only (``load_encoder(..., audio_on_demand=True)``): an indexing run loads the network at once, so a
device or checkpoint error stops the run before any file rather than failing each file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.encoders.aisfx.inputs import checked_windows
from diffgap_search.encoders.aisfx.onnx_query import OnnxAisfx, open_ready, worth_it
from diffgap_search.encoders.aisfx.package import (
    DIM,
    MODEL_ID,
    PREPROCESSING,
    SAMPLE_RATE,
    embeds_own_lengths,
    find_checkpoint,
)
from diffgap_search.encoders.precision import Precision
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
    input_samples: int = 0  # windows of any length (``encoders.base.input_samples``), known without loading

    def __init__(self, load: Callable[[], AisfxEncoder], version: int = PREPROCESSING["audio"],
                 precision: str = Precision.AUTO) -> None:
        self.preprocessing = {"audio": version}  # as the loaded one will make (``load`` makes the same version)
        self.own_lengths = embeds_own_lengths(version)
        self.fingerprint = file_sha256(find_checkpoint())
        self.provenance: dict[str, Any] = {"source": "package"}
        self._load = load
        self._loaded: AisfxEncoder | None = None
        self._version = version
        self._onnx_allowed = Precision(precision) == Precision.AUTO  # fp32 or bf16 asked: the torch network
        self._onnx: OnnxAisfx | None = None

    def loaded(self) -> AisfxEncoder:
        """The ``AisfxEncoder``, loaded on first use (its provenance set as this one's)."""
        if self._loaded is None:
            encoder = self._load()
            encoder.provenance = dict(self.provenance)
            self._loaded = encoder
        return self._loaded

    def embed_audio(self, windows: np.ndarray, durations_s: Sequence[float] | None = None) -> np.ndarray:
        """``(N, S) float32`` windows at 44.1 kHz -> ``(N, 512) float32``, unit rows: ONNX Runtime's on this
        machine's checked export for up to ``onnx_query.QUERY_FRAMES`` frames (one query file), else the loaded
        encoder's."""
        batch = checked_windows(windows)
        runner = self.onnx_runner() if worth_it(batch) else None
        if runner is not None:
            return runner.embed_audio(batch, durations_s)
        return self.loaded().embed_audio(batch, durations_s)

    def for_many(self) -> AisfxEncoder:
        """The encoder for a job of more windows than one query file's (``--pinpoint``'s spans of several hits):
        the torch network, loaded (per window ONNX Runtime is the slower here: module docstring of
        ``onnx_query.py``)."""
        return self.loaded()

    def onnx_runner(self) -> OnnxAisfx | None:
        """The ONNX Runtime session on this machine's checked export (made once), or None: precision other than
        ``auto``, no onnxruntime, no export yet, or the torch network already loaded in this process."""
        if self._onnx is None and self._loaded is None and self._onnx_allowed:
            self._onnx = open_ready(self.fingerprint, self._version)
            self._onnx_allowed = self._onnx is not None  # looked once
        return self._onnx

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded(), name)
