"""LAION-CLAP through transformers: ``ClapModel`` + ``ClapFeatureExtractor`` + its RoBERTa tokenizer. Imports
torch and transformers, so it is only imported once a model is being loaded (see ``clap/load.py``).

Determinism: the model is in ``eval()``, every call runs under ``torch.inference_mode()``, and the feature
extractor's two random paths are closed off. Windows must be exactly ``window_samples`` long (the caller
repeat-pads short clips the way LAION-CLAP's ``repeatpad`` does), so ``rand_trunc`` never crops; and the
``is_longer`` flag, which transformers sets at random on one item of a batch of short clips (a training
trick for fused models), is forced to ``False``, as LAION-CLAP does for clips of at most 10 s. The numpy
global random state is saved and restored around the extractor, so callers' seeded streams are untouched.

Original LAION ``.pt`` checkpoints get LAION-CLAP's int16 round trip on their waveforms
(``features.int16_round_trip``, as laion_clap does); hub models do not (transformers' pipeline; docs/models.md
says why and what it is worth). Each space's preprocessing version is recorded in an index (``preprocessing``).

Speed (see benchmarks/bench_indexing.py): the log-mel features are computed in torch by
``fast_features.TorchLogMel`` (equal to the extractor's within ~1e-5 dB) when the extractor's settings are
the supported ones; the audio tower runs on a precision path (``precision.Precision``: fp32, bf16, torch
int8, ONNX Runtime fp32 or int8): ``precision="auto"`` takes the fastest one this machine runs natively whose
vectors equal float32's within cosine ``MIN_LOW_PRECISION_COSINE`` (0.999) on a fixed probe, remembered per
machine (``path_choice.py``); any other value forces its path. The text tower chooses among fp32, bf16 and
torch int8 the same way on its own probe texts (``text_path.py``); texts are padded to the longest in the batch,
not to 77 tokens (the padding is masked out: same vectors, fewer positions). A text query uses every
torch thread: RoBERTa-base is memory-bound even for a few tokens, and on a quiet 2-core machine two
threads embed one query in 25 ms against 39 ms on one (measured; a busy machine reverses it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffgap_search.config import Device
from diffgap_search.encoders.base import check_batch_size, checked_texts
from diffgap_search.encoders.clap import parts
from diffgap_search.encoders.clap.audio_query import record_encoder_path
from diffgap_search.encoders.clap.batches import even_chunks, stack_rows, unit_rows
from diffgap_search.encoders.clap.deferred import Deferred, ModelNumbers, tower_size
from diffgap_search.encoders.clap.feature_settings import AUDIO_PREPROCESSING, TEXT_PREPROCESSING, FeatureSettings
from diffgap_search.encoders.clap.features import TorchLogMel
from diffgap_search.encoders.clap.lanes import LANE_WINDOWS, LANES, Lanes, index_in_lanes, lane_chunks
from diffgap_search.encoders.clap.text_onnx import export_for_queries
from diffgap_search.encoders.precision import (
    MIN_LOW_PRECISION_COSINE, Precision, cached_verdict, remember_verdict,
)
from diffgap_search.encoders.runtime import prepare_device, quiet_transformers
from diffgap_search.encoders.weights.layout import processor_settings

PRECISIONS = tuple(str(p) for p in Precision)
MIN_PARAMS_FOR_BF16 = 5_000_000  # below this (test-sized towers) bf16 saves nothing: stay exact


class ClapEncoder:
    """Embeds 10 s audio windows and texts into CLAP's joint space (an ``encoders.base.Encoder``).

    Attributes:
        model_id: the hub id or local directory, as the user gave it.
        fingerprint: sha256 hex digest of the weights.
        dim: D, the projection size from the model config (512 for LAION-CLAP).
        sample_rate: the rate ``embed_audio`` expects (48 000).
        window_samples: S, the exact window length ``embed_audio`` accepts (480 000 = 10 s); ``input_samples``
            says the same to the windowing (``encoders.base.fit_window``: shorter windows are repeat-padded to it).
        device: the ``torch.device`` the model runs on.
        batch_size: items per forward pass.
        precision: a ``Precision`` as asked; ``audio_path`` is the audio tower's path and ``audio_dtype`` its
            float type (bfloat16 for bf16, else float32), decided on the first ``embed_audio`` call.
        provenance: where the weights came from (set by the loader, recorded in the index).
        int16_round_trip: whether waveforms go through LAION-CLAP's int16 quantisation before their features
            (``features.int16_round_trip``): True for original LAION ``.pt`` checkpoints, as laion_clap does.
        preprocessing: ``{space: version}`` of the pipeline behind each space's vectors (recorded in an index).
    """

    modalities = ("audio", "text")

    def __init__(
        self,
        model: Any,
        feature_extractor: Any,
        tokenizer: Any,
        *,
        model_id: str,
        fingerprint: str,
        device: torch.device,
        batch_size: int = 16,
        precision: str = Precision.AUTO,
        owns_model: bool = False,
        int16_round_trip: bool = False,
        deferred: Deferred | None = None,
    ) -> None:
        """``model``, ``feature_extractor`` and ``tokenizer`` may be None with ``deferred`` (``deferred.py``):
        they are loaded on first use, and ``feature_extractor`` is then the extractor's numbers
        (``feature_settings.FeatureSettings``) until the real one is asked for."""
        check_batch_size(batch_size)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if model is None and deferred is None:
            raise ValueError("a ClapEncoder needs its model, or how to load it (deferred)")
        self._model = None if model is None else model.to(device=device, dtype=torch.float32).eval()
        self._feature_extractor = feature_extractor
        self._tokenizer = tokenizer
        self._deferred = deferred
        self._loading = threading.Lock()
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.provenance: dict[str, Any] = {}
        self.device = device
        self.batch_size = batch_size
        numbers = ModelNumbers.of_config(model.config) if model is not None else deferred.numbers  # type: ignore[union-attr]
        self.dim = numbers.projection_dim
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.window_samples = int(feature_extractor.nb_max_samples)
        self.input_samples = self.window_samples  # what the model hears at once (encoders.base.input_samples)
        self.text_max_tokens = numbers.text_max_tokens
        self.precision = Precision(precision)
        self.audio_dtype: torch.dtype | None = None  # decided on first use (see _choose_audio_dtype)
        self.audio_path: Precision | None = None  # the audio tower's precision path (encoders/clap/path_choice.py)
        self._audio_run: Any = None  # its runner: (B, C, T, M) float32 features -> (B, D) float32
        self.lanes: Lanes | None = None  # an indexing run's long calls on bf16 (encoders/clap/lanes.py)
        self.lanes_wanted = False
        self.probe_report: dict[str, float] = {}  # path -> min cosine to float32 on the probe (auto, this process)
        self.min_params_for_lowp = MIN_PARAMS_FOR_BF16  # smaller towers stay in float32 under auto
        self.text_dtype: torch.dtype | None = None  # bfloat16 on the bf16 text path, else float32 (first use)
        self.text_path: Precision | None = None  # the text tower's precision path (encoders/clap/text_path.py)
        self._text_run: Any = None  # its runner: (input_ids, attention_mask) -> (B, D)
        self._text_converted = False  # the float32 text tower was converted in place (no float32 path left)
        self.text_serving = False  # set by a long-lived process before its first text: auto may take int8 there
        self._owns_model = owns_model  # loaded for this encoder alone: its towers may be converted in place
        self.int16_round_trip = int16_round_trip
        self.preprocessing = {"audio": AUDIO_PREPROCESSING[int16_round_trip], "text": TEXT_PREPROCESSING}
        self._fast_features: Any = None
        # the STFT of the torch log-mel: float64 (the extractor's numbers) on the fp32 path, float32 on the others
        self.stft_dtype = torch.float64
        # A fused model (``enable_fusion``) reads 4 mel channels; for a window of at most 10 s they are 4
        # copies of the same mel (the extractor's "fusion" path for short audio, LAION-CLAP's too), and with
        # ``is_longer`` False only the first goes through the patch embedding. Unfused models read 1.
        self.mel_channels = 4 if numbers.enable_fusion else 1
        if TorchLogMel.supports(feature_extractor) and int(feature_extractor.nb_max_samples) == self.window_samples:
            self._fast_features = TorchLogMel(feature_extractor, channels=self.mel_channels)

    @property
    def model(self) -> Any:
        """The float32 ``ClapModel`` on ``device`` (loaded now if this encoder started without it; then, before any
        text converts it, ``Deferred.on_model`` runs: the text tower's export for word queries)."""
        built = False
        if self._model is None:
            with self._loading:
                if self._model is None:
                    model = self._deferred.load_model()  # type: ignore[union-attr]
                    self._model = model.to(device=self.device, dtype=torch.float32).eval()
                    built = True
        if built and self._deferred is not None and self._deferred.on_model is not None:
            self._deferred.on_model(self)
        return self._model

    @property
    def model_loaded(self) -> bool:
        """Whether the torch model is in memory (False for a deferred start until something needs it)."""
        return self._model is not None

    @property
    def feature_extractor(self) -> Any:
        """transformers' ``ClapFeatureExtractor`` (loaded now if this encoder started without it)."""
        if self._deferred is not None and not self._extractor_loaded():
            with self._loading:
                if not self._extractor_loaded():
                    self._feature_extractor = self._deferred.load_feature_extractor()
        return self._feature_extractor

    def _extractor_loaded(self) -> bool:
        return not isinstance(self._feature_extractor, FeatureSettings)

    @property
    def tokenizer(self) -> Any:
        """The text tower's tokenizer (loaded now if this encoder started without it)."""
        if self._tokenizer is None:
            with self._loading:
                if self._tokenizer is None:
                    self._tokenizer = self._deferred.load_tokenizer()  # type: ignore[union-attr]
        return self._tokenizer

    def audio_tower_size(self) -> int:
        """Elements of the audio tower's state dict (parameters and saved buffers): what ``auto`` compares
        with ``min_params_for_lowp``; read from the weights' headers while the model is not loaded."""
        if self._model is None and self._deferred is not None:
            return self._deferred.audio_size
        return sum(t.numel() for t in self.model.audio_model.state_dict().values())

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        model_id: str,
        device: str = Device.AUTO,
        batch_size: int = 16,
        precision: str = Precision.AUTO,
    ) -> ClapEncoder:
        """Load a folder in any layout transformers reads (``encoders/weights/layout.py``): safetensors or pickled
        weights (the latter converted once, ``encoders/weights/convert.py``), ``preprocessor_config.json`` or
        ``processor_config.json``, ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``. Never the network.

        The torch model is built on first use instead of now (``deferred.py``) where the audio tower runs from
        a cached ONNX export; its numbers and fingerprint are read now either way. (A process that records the
        encoder but embeds nothing, the Ray engine's driver, uses ``record.ClapRecord`` instead: no torch.)"""
        from diffgap_search.encoders.clap.path_choice import ready_onnx_path
        from diffgap_search.encoders.weights.convert import prepared_weights

        torch_device = prepare_device(device)
        weights_dir, fingerprint = prepared_weights(folder)
        settings = processor_settings(folder, "clap")
        numbers = FeatureSettings(settings)
        ready = precision in PRECISIONS and ready_onnx_path(fingerprint, torch_device, Precision(precision))
        export_text = partial(export_for_queries, folder=folder)  # once per machine: word queries without torch
        if ready and TorchLogMel.supports(numbers):  # the audio tower runs from a cached ONNX file
            deferred = Deferred(ModelNumbers.of_folder(folder), tower_size(weights_dir),  # deferred.py
                                partial(parts.clap_model, folder, weights_dir),
                                partial(parts.feature_extractor, settings), partial(parts.tokenizer, folder),
                                on_model=export_text)
            return cls(None, numbers, None, model_id=model_id, fingerprint=fingerprint, device=torch_device,
                       batch_size=batch_size, precision=precision, owns_model=True, deferred=deferred)
        model, feature_extractor, tokenizer = (parts.clap_model(folder, weights_dir),
                                               parts.feature_extractor(settings), parts.tokenizer(folder))
        encoder = cls(model, feature_extractor, tokenizer, model_id=model_id, fingerprint=fingerprint,
                      device=torch_device, batch_size=batch_size, precision=precision, owns_model=True)
        export_text(encoder)
        return encoder

    @classmethod
    def from_laion_checkpoint(
        cls,
        path: Path,
        tokenizer_folder: Path,
        *,
        model_id: str,
        device: str = Device.AUTO,
        batch_size: int = 16,
        precision: str = Precision.AUTO,
    ) -> ClapEncoder:
        """An original LAION-CLAP checkpoint (``encoders/clap/laion_checkpoint.py``: re-keyed, variant read from the tensors'
        shapes, ``weights_only`` unpickling), with LAION's settings for the log-mel and the RoBERTa tokenizer
        in ``tokenizer_folder``. The fingerprint is the sha256 of the checkpoint file. Waveforms get LAION-CLAP's
        int16 round trip before their features, as ``laion_clap`` does (``features.int16_round_trip``)."""
        from diffgap_search.encoders.weights.fingerprint import file_sha256
        from diffgap_search.encoders.clap.laion_checkpoint import build_clap_model, read_laion_checkpoint

        torch_device = prepare_device(device)
        checkpoint = read_laion_checkpoint(path)
        model = build_clap_model(checkpoint)
        with quiet_transformers():
            feature_extractor = parts.feature_extractor(dict(checkpoint.feature_extractor_kwargs))
            tokenizer = parts.tokenizer(tokenizer_folder)
        return cls(model, feature_extractor, tokenizer, model_id=model_id, fingerprint=file_sha256(path),
                   device=torch_device, batch_size=batch_size, precision=precision, owns_model=True,
                   int16_round_trip=True)

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """``(N, S) float32`` mono windows at ``sample_rate``, S == ``window_samples`` -> ``(N, D) float32``, unit rows.

        Raises ValueError for another shape or window length, or for NaN/inf samples.
        """
        batch = np.asarray(windows)
        if batch.ndim != 2:
            raise ValueError(f"expected (N, S) mono windows, got an array of shape {batch.shape}")
        if batch.shape[1] != self.window_samples:
            raise ValueError(
                f"windows must be exactly {self.window_samples} samples "
                f"({self.window_samples / self.sample_rate:g} s at {self.sample_rate} Hz), got {batch.shape[1]}"
            )
        if not np.issubdtype(batch.dtype, np.floating):
            raise ValueError(f"windows must be floating point samples in [-1, 1], got dtype {batch.dtype}")
        batch = batch.astype(np.float32, copy=False)
        if not np.isfinite(batch).all():
            raise ValueError("windows contain NaN or infinite samples")
        if self.audio_dtype is None:
            self._choose_audio_dtype()
        if self.lanes is not None and len(batch) >= LANES * LANE_WINDOWS:
            parts = self.lanes.map(self._audio_batch, lane_chunks(batch))
        else:
            parts = [self._audio_batch(chunk) for chunk in even_chunks(batch, self.batch_size)]
        return stack_rows(parts, self.dim)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N non-empty strings -> ``(N, D) float32``, unit rows. Texts are cut at 77 tokens, like LAION-CLAP."""
        items = checked_texts(texts)
        if self.text_dtype is None:
            self._choose_text_dtype()
        parts = [self._text_batch(chunk) for chunk in even_chunks(items, self.batch_size)]
        return stack_rows(parts, self.dim)

    def _features(self, windows: np.ndarray, stft_dtype: torch.dtype | None = None) -> torch.Tensor:
        """``(B, S) float32`` -> the model's ``input_features`` ``(B, C, T, M) float32`` on the device;
        ``stft_dtype`` (default ``self.stft_dtype``) applies to the torch log-mel only."""
        if self.int16_round_trip:
            from diffgap_search.encoders.clap.features import int16_round_trip

            windows = int16_round_trip(windows)
        if self._fast_features is not None:
            features = self._fast_features(windows, stft_dtype or self.stft_dtype)
        else:
            state = np.random.get_state()
            try:
                features = self.feature_extractor(
                    list(windows), sampling_rate=self.sample_rate, return_tensors="np"
                )["input_features"]
            finally:
                np.random.set_state(state)
            features = _with_channels(np.asarray(features), self.mel_channels)
        return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)

    def _forward_audio(self, input_features: torch.Tensor, run: Any = None) -> np.ndarray:
        """``(B, C, T, M)`` features -> ``(B, D) float32`` unit rows, by ``run`` (default: the chosen path's)."""
        with torch.inference_mode():
            return unit_rows((run or self._audio_run)(input_features))

    def _audio_batch(self, windows: np.ndarray) -> np.ndarray:
        """``(B, S) float32`` -> ``(B, D) float32``."""
        return self._forward_audio(self._features(windows))

    def _choose_audio_dtype(self) -> None:
        """The audio tower's precision path (``path_choice.choose_audio_path``: forced, remembered or probed)."""
        from diffgap_search.encoders.clap.path_choice import choose_audio_path

        self.audio_path, self._audio_run = choose_audio_path(self)
        self.audio_dtype = torch.bfloat16 if self.audio_path == Precision.BF16 else torch.float32
        self.stft_dtype = torch.float64 if self.audio_path == Precision.FP32 else torch.float32
        if self.lanes_wanted:
            index_in_lanes(self)
        record_encoder_path(self)  # an ONNX path under auto: audio queries then run without torch (audio_query.py)

    def _low_precision_agrees(self, tower: str, agreement: Callable[[], float]) -> bool:
        """Whether the bf16 copy of ``tower`` may serve: forced by ``precision="bf16"``, else the probe's
        verdict (min cosine to float32 >= ``MIN_LOW_PRECISION_COSINE``), remembered per weights, tower,
        device type and torch build so a cold process skips the probe."""
        verdict = self._known_verdict(tower)
        if verdict is None:
            verdict = agreement() >= MIN_LOW_PRECISION_COSINE
            remember_verdict(self._verdict_key(tower), verdict)
        return verdict

    def _verdict_key(self, tower: str) -> str:
        return f"{self.fingerprint}|{tower}|{self.device.type}|torch {torch.__version__}"

    def _known_verdict(self, tower: str) -> bool | None:
        """True when ``precision="bf16"`` forces the bf16 copy of ``tower``, else the remembered probe verdict
        (None: not probed yet on these weights, device type and torch build)."""
        return True if self.precision == Precision.BF16 else cached_verdict(self._verdict_key(tower))

    def _tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """B strings -> ``(input_ids, attention_mask)``, each ``(B, L) int64`` on the device, L <= 77."""
        tokens = self.tokenizer(
            texts,
            padding="longest",  # masked padding changes nothing but the cost
            truncation=True,
            max_length=self.text_max_tokens,
            return_tensors="pt",
        )
        return tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)

    def _text_batch(self, texts: list[str], run: Any = None) -> np.ndarray:
        """B strings -> ``(B, D) float32`` unit rows, by ``run`` (default: the chosen text path's runner)."""
        ids, mask = self._tokens(texts)
        with torch.inference_mode():
            return unit_rows((run or self._text_run)(ids, mask))

    def _choose_text_dtype(self) -> None:
        """The text tower's precision path (``text_path``: forced, remembered or probed) and its runner. A path
        known before any text is embedded, on a model this encoder loaded itself (``owns_model``), converts the
        tower in place instead of copying it; its float32 path then raises if called."""
        from diffgap_search.encoders.clap import text_path

        path = text_path.remembered(self)
        if path is None:
            path, self._text_run = text_path.probe(self, self._tokens)
        else:
            self._text_run = text_path.runner(self.model, path, in_place=self._owns_model)
            self._text_converted = self._owns_model and path != Precision.FP32
        self.text_path = path
        self.text_dtype = torch.bfloat16 if path == Precision.BF16 else torch.float32

    def _exact_text_run(self) -> Any:
        """The float32 text runner (for comparisons). Raises RuntimeError once the tower was converted in place."""
        from diffgap_search.encoders.clap import text_path

        if self._text_converted:
            raise RuntimeError(f"this encoder's float32 text tower was converted to {self.text_path} in place")
        return text_path.runner(self.model, Precision.FP32)


def _with_channels(features: np.ndarray, channels: int) -> np.ndarray:
    """``(B, C, T, M)`` features with ``channels`` mel channels: the first one, repeated (they are copies for
    windows of at most 10 s, whichever of "fusion" or "rand_trunc" the extractor was set to)."""
    if features.shape[1] == channels:
        return features
    return np.repeat(features[:, :1], channels, axis=1)

