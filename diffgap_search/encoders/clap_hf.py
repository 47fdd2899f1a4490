"""LAION-CLAP through transformers: ``ClapModel`` + ``ClapFeatureExtractor`` + its RoBERTa tokenizer.

Imports torch and transformers, so it is only imported once a model is being loaded (see ``loading.py``).

Determinism: the model is in ``eval()``, every call runs under ``torch.inference_mode()``, and the feature
extractor's two random paths are closed off. Windows must be exactly ``window_samples`` long (the caller
repeat-pads short clips the way LAION-CLAP's ``repeatpad`` does), so ``rand_trunc`` never crops; and the
``is_longer`` flag, which transformers sets at random on one item of a batch of short clips (a training
trick for fused models), is forced to ``False``, as LAION-CLAP does for clips of at most 10 s. The numpy
global random state is saved and restored around the extractor, so callers' seeded streams are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffgap_search.encoders.runtime import limit_cpu_threads, resolve_device
from diffgap_search.errors import ModelUnavailableError

TEXT_MAX_TOKENS = 77  # LAION-CLAP tokenises text to 77 tokens, padded to that length
_IGNORED_MISSING = ("position_ids", "token_type_ids")  # buffers, not weights


class ClapEncoder:
    """Embeds 10 s audio windows and texts into CLAP's joint space (implements ``encoders.base.Encoder``).

    Attributes:
        model_id: the hub id or local directory, as the user gave it.
        fingerprint: sha256 hex digest of the weights.
        dim: D, the projection size from the model config (512 for LAION-CLAP).
        sample_rate: the rate ``embed_audio`` expects (48 000).
        window_samples: S, the exact window length ``embed_audio`` accepts (480 000 = 10 s).
        device: the ``torch.device`` the model runs on.
        batch_size: items per forward pass.
    """

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
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.model = model.to(device=device, dtype=torch.float32).eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.device = device
        self.batch_size = batch_size
        self.dim = int(model.config.projection_dim)
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.window_samples = int(feature_extractor.nb_max_samples)
        max_positions = int(model.config.text_config.max_position_embeddings)
        pad_id = int(model.config.text_config.pad_token_id or 0)
        # RoBERTa positions start after the padding index.
        self.text_max_tokens = min(TEXT_MAX_TOKENS, max_positions - pad_id - 1)

    @classmethod
    def from_directory(
        cls,
        path: Path,
        *,
        model_id: str,
        fingerprint: str,
        device: str = "auto",
        batch_size: int = 16,
    ) -> ClapEncoder:
        """Load a folder in the Hugging Face layout (safetensors only, never pickles, never the network)."""
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel
        from transformers.utils import logging as hf_logging

        torch_device = resolve_device(device)
        if torch_device.type == "cpu":
            limit_cpu_threads()
        verbosity = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # a local load is instant; its bar would only clutter stderr
        try:
            model, info = ClapModel.from_pretrained(
                str(path), use_safetensors=True, local_files_only=True, output_loading_info=True
            )
            feature_extractor = ClapFeatureExtractor.from_pretrained(str(path), local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        missing = [key for key in info.get("missing_keys", []) if not key.endswith(_IGNORED_MISSING)]
        if missing:
            raise ModelUnavailableError(
                f"the weights in '{path}' do not fit the CLAP config: {len(missing)} tensor(s) missing "
                f"(first: {sorted(missing)[0]}); re-download the model or re-export it with save_pretrained"
            )
        return cls(
            model,
            feature_extractor,
            tokenizer,
            model_id=model_id,
            fingerprint=fingerprint,
            device=torch_device,
            batch_size=batch_size,
        )

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
        parts = [self._audio_batch(chunk) for chunk in _chunks(batch, self.batch_size)]
        return _stack(parts, self.dim)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N non-empty strings -> ``(N, D) float32``, unit rows. Texts are cut at 77 tokens, like LAION-CLAP."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a sequence of strings, not one string")
        items = list(texts)
        for text in items:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"texts must be non-empty strings, got {text!r}")
        parts = [self._text_batch(chunk) for chunk in _chunks(items, self.batch_size)]
        return _stack(parts, self.dim)

    def _audio_batch(self, windows: np.ndarray) -> np.ndarray:
        """``(B, S) float32`` -> ``(B, D) float32``."""
        state = np.random.get_state()
        try:
            features = self.feature_extractor(
                list(windows), sampling_rate=self.sample_rate, return_tensors="np"
            )["input_features"]
        finally:
            np.random.set_state(state)
        input_features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
        is_longer = torch.zeros((len(windows), 1), dtype=torch.bool, device=self.device)
        with torch.inference_mode():
            output = self.model.get_audio_features(input_features=input_features, is_longer=is_longer)
        return _to_numpy(output)

    def _text_batch(self, texts: list[str]) -> np.ndarray:
        """B strings -> ``(B, D) float32``."""
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.text_max_tokens,
            return_tensors="pt",
        )
        with torch.inference_mode():
            output = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
        return _to_numpy(output)


def _chunks(items: Any, size: int) -> Iterator[Any]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _to_numpy(output: Any) -> np.ndarray:
    """transformers 4.x returns the normalised embeddings, 5.x a ModelOutput holding them in ``pooler_output``."""
    embeds = output if isinstance(output, torch.Tensor) else output.pooler_output
    embeds = torch.nn.functional.normalize(embeds.float(), dim=-1)
    return embeds.cpu().numpy().astype(np.float32, copy=False)


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    if not parts:
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)
