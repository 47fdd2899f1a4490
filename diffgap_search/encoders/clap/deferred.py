"""Starting a ``ClapEncoder`` without its torch model, when its audio tower will run from an ONNX file.

A cold process that builds transformers' ``ClapModel`` spends ~6.5 s (2 cores, AVX2 EPYC): ~4 s importing
transformers' modelling code, the rest building both towers (RoBERTa-base and HTSAT, 600 MB of float32).
When the audio tower's path is an ONNX one whose export is already in the cache
(``path_choice.ready_onnx_path``: forced, or remembered by ``auto`` on this machine), embedding audio needs
none of that: the log-mel is ``features.TorchLogMel`` on the extractor's numbers
(``feature_settings.FeatureSettings``), the tower is an ONNX Runtime session on the cached file. Such an
encoder starts from ``config.json`` and the preprocessor settings alone (~2.5 s: torch's import, the
session) and loads the ``ClapModel``, the ``ClapFeatureExtractor`` and the tokenizer the first time anything
needs them (text, the float32 reference, a probe, an export), once, under a lock.

Nothing else changes: the weights' sha256 (the index's fingerprint) is read as before, and since the ONNX
file is keyed by that sha256, a deferred start only happens for weights this machine has already loaded and
exported; the vectors are the same ONNX session's either way (tests/test_deferred_start.py).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffgap_search.encoders.weights.layout import SAFETENSORS, SAFETENSORS_INDEX, read_config, shard_names

# ClapConfig's defaults for what a config.json may leave out (transformers/models/clap/configuration_clap.py)
DEFAULT_PROJECTION_DIM = 512
DEFAULT_TEXT_POSITIONS = 514
DEFAULT_TEXT_PAD_ID = 1
AUDIO_PREFIX = "audio_model."  # the audio tower's tensors in a ClapModel state dict
TEXT_MAX_TOKENS = 77  # LAION-CLAP tokenises text to 77 tokens, padded to that length


@dataclass(frozen=True)
class ModelNumbers:
    """What ``ClapEncoder`` reads of a ``ClapConfig``: the projection size D, the text tower's position count
    and padding id (the longest text), and whether the audio tower is the fused one (4 mel channels)."""

    projection_dim: int
    text_positions: int
    text_pad_id: int
    enable_fusion: bool

    @property
    def text_max_tokens(self) -> int:
        """Tokens a text is cut at: 77 (LAION-CLAP's), fewer where the tower has fewer positions (RoBERTa's
        positions start after the padding index)."""
        return min(TEXT_MAX_TOKENS, self.text_positions - self.text_pad_id - 1)

    @classmethod
    def of_config(cls, config: Any) -> ModelNumbers:
        """From a transformers ``ClapConfig``."""
        return cls(int(config.projection_dim), int(config.text_config.max_position_embeddings),
                   int(config.text_config.pad_token_id or 0), bool(getattr(config.audio_config, "enable_fusion", False)))

    @classmethod
    def of_folder(cls, folder: Path) -> ModelNumbers:
        """From ``folder/config.json`` (ClapConfig's defaults where it is silent), without transformers."""
        config = read_config(folder)
        text, audio = config.get("text_config") or {}, config.get("audio_config") or {}
        return cls(int(config.get("projection_dim", DEFAULT_PROJECTION_DIM)),
                   int(text.get("max_position_embeddings", DEFAULT_TEXT_POSITIONS)),
                   int(text.get("pad_token_id", DEFAULT_TEXT_PAD_ID) or 0), bool(audio.get("enable_fusion", False)))


def tower_size(weights_dir: Path, prefix: str = AUDIO_PREFIX) -> int:
    """Elements of the tensors under ``prefix`` in the safetensors weights of ``weights_dir`` (one file or an
    index's shards), read from the files' headers alone: a tower's state-dict size without loading it."""
    files = [weights_dir / SAFETENSORS]
    if not files[0].is_file():
        files = [weights_dir / name for name in shard_names(weights_dir / SAFETENSORS_INDEX)]
    total = 0
    for file in files:
        with open(file, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        total += sum(math.prod(entry["shape"]) for key, entry in header.items()
                     if key.startswith(prefix) and isinstance(entry, dict))
    return total


@dataclass(frozen=True)
class Deferred:
    """How a ``ClapEncoder`` started without its model gets the rest: its numbers now, the parts on first use.

    ``load_model`` returns the float32 ``ClapModel`` (raising ``ModelUnavailableError`` as an eager load would),
    ``load_feature_extractor`` the ``ClapFeatureExtractor``, ``load_tokenizer`` the tokenizer;
    ``audio_size`` is ``tower_size`` of the weights (what ``auto`` compares with ``min_params_for_lowp``);
    ``on_model``, when set, is called with the encoder once the model is built (the text tower's export)."""

    numbers: ModelNumbers
    audio_size: int
    load_model: Callable[[], Any]
    load_feature_extractor: Callable[[], Any]
    load_tokenizer: Callable[[], Any]
    on_model: Callable[[Any], None] | None = None
