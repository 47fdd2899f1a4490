"""A CLAP folder's encoder for a process that records it but embeds nothing: no torch, no model.

The Ray engine's driver binds the run's encoder to the index (``encoders.base.identity_of``: model,
fingerprint, D, sample rate, preprocessing, provenance) and fits the windows to what it hears; its actors
embed. All of that comes from the folder's ``config.json`` (``deferred.ModelNumbers``), its preprocessor
settings (``feature_settings.FeatureSettings``) and the weights' sha256, so the driver needs neither torch's
import (~1 s of a core, measured before the actors could start: ``docs/ray.md``) nor transformers' model.

Asked to embed after all, a record builds the real ``ClapEncoder`` once (``encoder()``) and hands the call to
it: the same vectors as an encoder loaded eagerly (``tests/test_indexing_models_defer.py``).

A query process (``load_clap(..., query=True)``) gets a record too where this machine holds a checked ONNX export
of the text tower (``text_onnx.py``) or a recorded ONNX file of the audio tower (``audio_query.py``): words, or
windows, are then embedded by that session without torch, and only what has no session builds the encoder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.config import device_name
from diffgap_search.encoders.base import check_batch_size
from diffgap_search.encoders.clap.deferred import ModelNumbers
from diffgap_search.encoders.clap.feature_settings import AUDIO_PREPROCESSING, TEXT_PREPROCESSING, FeatureSettings
from diffgap_search.encoders.weights.layout import processor_settings

if TYPE_CHECKING:
    from diffgap_search.encoders.clap.encoder import ClapEncoder
    from diffgap_search.encoders.clap.audio_query import OnnxClapAudio
    from diffgap_search.encoders.clap.text_onnx import OnnxClapText

class ClapRecord:
    """What an index records of a CLAP folder's encoder, and what the windows need of it (an
    ``encoders.base.Encoder`` whose embedding builds the ``ClapEncoder``).

    Attributes:
        model_id, fingerprint, dim, sample_rate, provenance, preprocessing: as ``ClapEncoder``'s.
        window_samples, input_samples: the samples the model hears at once (480 000 = 10 s at 48 kHz).
        device: the device as asked (``auto``, ``cpu``, ``cuda[:N]``), checked by name only: whether it exists
            is for the process that embeds to say.
    """

    modalities = ("audio", "text")

    def __init__(self, folder: Path, *, model_id: str, fingerprint: str, build: Callable[[], ClapEncoder],
                 device: str = "auto", batch_size: int = 16, query_paths: bool = False) -> None:
        """``build``: the folder's ``ClapEncoder`` on the same settings (``load._clap_encoder``), called once if
        this record is asked to embed. ``query_paths`` (a query process): embed texts and windows with this
        machine's checked ONNX files where it has them (``text_onnx.open_ready_text``,
        ``audio_query.open_ready_audio``), else by ``encoder()``."""
        numbers, settings = ModelNumbers.of_folder(folder), FeatureSettings(processor_settings(folder, "clap"))
        self.text_max_tokens = numbers.text_max_tokens
        self.model_id, self.fingerprint, self._build = model_id, fingerprint, build
        self.device, self.batch_size = device_name(device), check_batch_size(batch_size)
        self.dim = numbers.projection_dim
        self.sample_rate = int(settings.sampling_rate)
        self.window_samples = int(settings.nb_max_samples)
        self.input_samples = self.window_samples
        self.provenance: dict[str, Any] = {}
        # a folder's weights: transformers' preprocessing, no int16 round trip (LAION .pt checkpoints only)
        self.preprocessing = {"audio": AUDIO_PREPROCESSING[False], "text": TEXT_PREPROCESSING}
        self._encoder: ClapEncoder | None = None
        self._loading = threading.Lock()
        # A query's sessions on this machine's checked ONNX files, opened at first use (a word query never opens
        # the audio tower's, nor an audio query the 500 MB text tower's); False: none, or it failed to open.
        self._folder, self._settings, self._channels = folder, settings, 4 if numbers.enable_fusion else 1
        self._sessions: dict[str, Any] = {}
        if query_paths:
            from diffgap_search.encoders.clap.audio_query import ready_audio_file
            from diffgap_search.encoders.clap.text_onnx import ready_text_file

            self._sessions = {"text": None if ready_text_file(folder, fingerprint) else False,
                              "audio": None if ready_audio_file(fingerprint) else False}

    @property
    def has_query_sessions(self) -> bool:
        """Whether a text or audio session on this machine's ONNX files is ready to open (``query_paths``)."""
        return any(session is not False for session in self._sessions.values())

    @property
    def text_runner(self) -> OnnxClapText | None:
        """The text tower's ONNX session (opened now), or None (none here, it failed to open, or the model is built)."""
        from diffgap_search.encoders.clap.text_onnx import open_ready_text

        return self._session("text", lambda: open_ready_text(self._folder, self.fingerprint, self.text_max_tokens,
                                                             self.batch_size))

    @property
    def audio_runner(self) -> OnnxClapAudio | None:
        """The audio tower's ONNX session on numpy features (opened now), or None (as ``text_runner``)."""
        from diffgap_search.encoders.clap.audio_query import open_ready_audio

        return self._session("audio", lambda: open_ready_audio(self.fingerprint, self._settings, self._channels,
                                                               self.batch_size))

    def _session(self, tower: str, open_session: Callable[[], Any]) -> Any:
        """``tower``'s query session: opened by ``open_session`` on first use if one was ready (None: it failed,
        remembered as False); None once the model is built (it answers everything then)."""
        if self._sessions.get(tower, False) is None:
            opened = open_session()
            self._sessions[tower] = opened if opened is not None else False
        found = self._sessions.get(tower, False)
        return found if found is not False and self._encoder is None else None

    @property
    def model_loaded(self) -> bool:
        """Whether the torch model has been built (only once something asked this record to embed)."""
        return self._encoder is not None and bool(self._encoder.model_loaded)

    def encoder(self) -> ClapEncoder:
        """The real encoder of the same folder and settings (``build``), built on the first call, once."""
        if self._encoder is None:
            with self._loading:
                if self._encoder is None:
                    encoder = self._build()
                    encoder.provenance = self.provenance
                    self._encoder = encoder
        return self._encoder

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """``(N, S) float32`` windows at ``sample_rate`` -> ``(N, D) float32``, L2-normalised: the ONNX audio
        tower's on numpy features (``audio_runner``), else ``encoder()``'s."""
        runner = self.audio_runner
        return runner.embed_audio(windows) if runner is not None else self.encoder().embed_audio(windows)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N non-empty strings -> ``(N, D) float32``, L2-normalised: the ONNX text tower's (``text_runner``),
        else ``encoder()``'s."""
        runner = self.text_runner
        return runner.embed_text(texts) if runner is not None else self.encoder().embed_text(texts)
