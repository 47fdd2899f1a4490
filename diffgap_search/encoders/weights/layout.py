"""Which files of a model repository or folder a loader needs, in every layout transformers reads.

A Hugging Face model is published in more than one shape, and we load them as published:

- weights as ``model.safetensors``, sharded safetensors (``model.safetensors.index.json`` + shards), a
  pickled ``pytorch_model.bin`` (the default CLAP and CLIP repositories have only that) or sharded pickles
  (``pytorch_model.bin.index.json``). Safetensors are preferred; a pickle is used only where no safetensors
  exist, and then only through ``torch.load(weights_only=True)`` (``encoders/weights/convert.py``). One format is
  chosen, never both; TF (``tf_model.h5``), Flax (``flax_model.msgpack``) and ONNX files are never wanted.
- the audio or image preprocessing settings in ``preprocessor_config.json`` (older ``save_pretrained``) or
  inside ``processor_config.json`` (transformers ≥ 5 writes the feature extractor there, under
  ``"feature_extractor"``; the image processor under ``"image_processor"``).
- a tokenizer as ``tokenizer.json`` (fast) or ``vocab.json`` + ``merges.txt`` (byte-level BPE), with
  ``tokenizer_config.json``, ``special_tokens_map.json`` and ``added_tokens.json`` where present.

Pure functions over file names and small JSON files: no torch, no network.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from diffgap_search.errors import ModelUnavailableError

Role = Literal["clap", "clip_vision", "tokenizer"]

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
PREPROCESSOR = "preprocessor_config.json"
PROCESSOR = "processor_config.json"
FAST_TOKENIZER = "tokenizer.json"
BPE_FILES = ("vocab.json", "merges.txt")
TOKENIZER_EXTRAS = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# The section of processor_config.json that holds each role's preprocessing settings.
PROCESSOR_SECTION: dict[Role, str] = {"clap": "feature_extractor", "clip_vision": "image_processor"}
# What each role is, in messages.
ROLE_NAME: dict[Role, str] = {"clap": "CLAP model", "clip_vision": "CLIP image model", "tokenizer": "tokenizer"}


@dataclass(frozen=True)
class WeightsChoice:
    """The one weights format a loader reads from a folder or repository.

    ``format`` is ``"safetensors"`` or ``"pickle"``; ``file`` is the single weights file, or the shard index
    (``*.index.json``) when ``sharded``.
    """

    format: Literal["safetensors", "pickle"]
    file: str
    sharded: bool = False


def choose_weights(names: Collection[str]) -> WeightsChoice | None:
    """The weights to read among file ``names``: safetensors first (single, then sharded), else the pickle."""
    for choice in (
        WeightsChoice("safetensors", SAFETENSORS),
        WeightsChoice("safetensors", SAFETENSORS_INDEX, sharded=True),
        WeightsChoice("pickle", PICKLE),
        WeightsChoice("pickle", PICKLE_INDEX, sharded=True),
    ):
        if choice.file in names:
            return choice
    return None


def shard_names(index_file: Path) -> list[str]:
    """The shard file names a ``*.index.json`` lists (sorted, unique); a bad index is a ModelUnavailableError."""
    try:
        weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted({str(name) for name in weight_map.values()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelUnavailableError(f"the shard index '{index_file}' cannot be read ({error})") from error
    if not shards or any("/" in name or name.startswith(".") for name in shards):
        raise ModelUnavailableError(f"the shard index '{index_file}' lists no usable shard files")
    return shards


def wanted_files(names: Collection[str], role: Role) -> list[str]:
    """The files a ``role`` loader fetches among a repository's ``names`` (shards come later, from the index).

    Raises ``ModelUnavailableError`` naming what the repository lacks (weights in a loadable format, a
    config, the preprocessing settings, a tokenizer).
    """
    missing = missing_names(names, role)
    if missing:
        raise ModelUnavailableError(f"lacks {', '.join(missing)}")
    tokenizer = [FAST_TOKENIZER] if FAST_TOKENIZER in names else list(BPE_FILES)
    tokenizer += [name for name in TOKENIZER_EXTRAS if name in names]
    if role == "tokenizer":  # config.json tells AutoTokenizer the class when tokenizer_config.json does not
        return ([CONFIG] if CONFIG in names else []) + tokenizer
    weights = choose_weights(names)
    assert weights is not None
    wanted = [CONFIG, weights.file, PREPROCESSOR if PREPROCESSOR in names else PROCESSOR]
    return wanted + tokenizer if role == "clap" else wanted


def missing_names(names: Collection[str], role: Role) -> list[str]:
    """What a ``role`` loader needs and ``names`` lacks, in a fixed order (empty when complete)."""
    has_tokenizer = FAST_TOKENIZER in names or all(name in names for name in BPE_FILES)
    tokenizer_missing = [] if has_tokenizer else [f"{FAST_TOKENIZER} (or {' and '.join(BPE_FILES)})"]
    if role == "tokenizer":
        return tokenizer_missing
    missing = [] if CONFIG in names else [CONFIG]
    if choose_weights(names) is None:
        missing.append(f"weights ({SAFETENSORS} or {PICKLE})")
    if PREPROCESSOR not in names and PROCESSOR not in names:
        missing.append(f"{PREPROCESSOR} (or {PROCESSOR})")
    return missing + tokenizer_missing if role == "clap" else missing


def folder_names(folder: Path) -> set[str]:
    """The file names directly in ``folder`` (symlinks to files count, as in the Hugging Face cache)."""
    try:
        return {entry.name for entry in folder.iterdir() if entry.is_file()}
    except OSError:
        return set()


def missing_in_folder(folder: Path, role: Role) -> list[str]:
    """What ``folder`` lacks for ``role``, shards of a sharded checkpoint included."""
    names = folder_names(folder)
    missing = missing_names(names, role)
    weights = choose_weights(names)
    if not missing and weights is not None and weights.sharded:
        missing = [name for name in shard_names(folder / weights.file) if name not in names]
    return missing


def processor_settings(folder: Path, role: Role) -> dict[str, Any]:
    """The preprocessing settings of ``role``: ``preprocessor_config.json``, else its section of
    ``processor_config.json`` (a flat file without sections is read whole, as older processors wrote it)."""
    preprocessor = folder / PREPROCESSOR
    source = preprocessor if preprocessor.is_file() else folder / PROCESSOR
    data = _json_object(source, f"the preprocessing settings in '{source}'")
    if source.name == PROCESSOR and isinstance(data.get(PROCESSOR_SECTION[role]), dict):
        data = data[PROCESSOR_SECTION[role]]
    return dict(data)


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` as a dict; unreadable or not an object -> ModelUnavailableError."""
    return _json_object(folder / CONFIG, f"the config.json of '{folder}'")


def _json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``ModelUnavailableError`` naming ``what`` when unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(f"cannot read {what} ({error})") from error
    if not isinstance(data, dict):
        raise ModelUnavailableError(f"{what} is not a JSON object")
    return data
