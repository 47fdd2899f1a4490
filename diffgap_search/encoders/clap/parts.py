"""Loading the transformers parts of a CLAP model folder: the ``ClapModel``, its ``ClapFeatureExtractor`` and
its tokenizer (``ClapEncoder.from_folder`` eagerly; a deferred start on first use: ``deferred.py``).

Imports transformers only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffgap_search.encoders.runtime import quiet_transformers
from diffgap_search.errors import ModelUnavailableError

_IGNORED_MISSING = ("position_ids", "token_type_ids")  # buffers, not weights


def clap_model(folder: Path, weights_dir: Path) -> Any:
    """The ``ClapModel`` of ``folder``'s config with the safetensors weights in ``weights_dir``; raises
    ModelUnavailableError when tensors the config needs are missing."""
    from transformers import ClapConfig, ClapModel

    with quiet_transformers():
        config = ClapConfig.from_pretrained(str(folder), local_files_only=True)
        model, info = ClapModel.from_pretrained(
            str(weights_dir), config=config, use_safetensors=True, local_files_only=True, output_loading_info=True
        )
    missing = [key for key in info.get("missing_keys", []) if not key.endswith(_IGNORED_MISSING)]
    if missing:
        raise ModelUnavailableError(
            f"the weights in '{folder}' do not fit the CLAP config: {len(missing)} tensor(s) missing "
            f"(first: {sorted(missing)[0]}); re-download the model or re-export it with save_pretrained"
        )
    return model


def feature_extractor(settings: dict[str, Any]) -> Any:
    """A ``ClapFeatureExtractor`` from its settings (a preprocessor config, or a processor config's section)."""
    from transformers import ClapFeatureExtractor

    with quiet_transformers():
        return ClapFeatureExtractor.from_dict(settings)


def tokenizer(folder: Path) -> Any:
    """The tokenizer in ``folder``: ``tokenizer.json``, or ``vocab.json`` + ``merges.txt`` (byte-level BPE);
    the class comes from ``tokenizer_config.json``, else from ``config.json``'s model type."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
