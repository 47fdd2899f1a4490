"""Turn an ``EncoderConfig`` into a loaded encoder: find or fetch the weights, check them, load them.

``cfg.model`` is a local directory in the Hugging Face layout or a hub id (``laion/clap-htsat-unfused``).
Every way this can fail ends as one ``ModelUnavailableError`` whose message says what is wrong and what
to do. Importing this module is cheap: torch and transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.fingerprint import WEIGHTS_FILE, WEIGHTS_INDEX, weights_fingerprint
from diffgap_search.errors import DGSearchError, ModelUnavailableError

if TYPE_CHECKING:
    from diffgap_search.encoders.clap_hf import ClapEncoder

REQUIRED_FILES = ("config.json", WEIGHTS_FILE, "preprocessor_config.json")
LAYOUT_HINT = (
    "a model directory must hold config.json, model.safetensors, the tokenizer files (tokenizer.json, "
    "or vocab.json and merges.txt) and preprocessor_config.json, as written by save_pretrained"
)


def load_encoder(cfg: EncoderConfig, *, progress: bool = True) -> ClapEncoder:
    """Load the CLAP encoder ``cfg`` names, downloading it into the Hugging Face cache on first use.

    ``progress`` shows a download progress bar on stderr. Raises ``ModelUnavailableError`` (any reason the
    weights cannot be had) or ``UsageError`` (an unknown ``cfg.device``).
    """
    model_dir = resolve_model_dir(cfg.model, cfg.revision, progress=progress)
    fingerprint = weights_fingerprint(model_dir)
    from diffgap_search.encoders.clap_hf import ClapEncoder

    try:
        return ClapEncoder.from_directory(
            model_dir, model_id=cfg.model, fingerprint=fingerprint, device=cfg.device, batch_size=cfg.batch_size
        )
    except DGSearchError:
        raise
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds; the user gets one message
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelUnavailableError(
            f"cannot load the CLAP model in '{model_dir}' ({type(error).__name__}: {first_line}); {LAYOUT_HINT}"
        ) from error


def resolve_model_dir(model: str, revision: str | None = None, *, progress: bool = True) -> Path:
    """The checked local folder holding ``model``: the directory itself, or its Hugging Face cache snapshot."""
    if is_local_reference(model):
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelUnavailableError(f"model directory '{model}' does not exist; {LAYOUT_HINT}")
        if not path.is_dir():
            raise ModelUnavailableError(f"model path '{model}' is not a directory; {LAYOUT_HINT}")
        missing = missing_files(path)
        if missing:
            raise ModelUnavailableError(f"model directory '{model}' is missing {', '.join(missing)}; {LAYOUT_HINT}")
        check_clap_config(path, f"model directory '{model}'")
        return path
    from diffgap_search.encoders.hub import LOCAL_COPY_HINT, fetch_snapshot

    path = fetch_snapshot(model, revision, progress=progress)
    missing = missing_files(path)
    if missing:
        raise ModelUnavailableError(
            f"model '{model}' on the Hugging Face hub lacks {', '.join(missing)} (pickled *.bin weights are "
            f"never loaded): use a model with safetensors weights, or {LOCAL_COPY_HINT}"
        )
    check_clap_config(path, f"model '{model}'")
    return path


def is_local_reference(model: str) -> bool:
    """True when ``model`` names a path (it exists, or looks like one) rather than a hub id ``owner/name``."""
    if Path(model).expanduser().exists():
        return True
    return (
        model.startswith((".", "~"))
        or os.path.isabs(model)
        or model.count("/") > 1
        or model.endswith("/")
        or (os.sep != "/" and os.sep in model)
    )


def missing_files(path: Path) -> list[str]:
    """Names of the files a CLAP model folder needs and lacks (in a fixed order)."""
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if WEIGHTS_FILE in missing and (path / WEIGHTS_INDEX).is_file():
        missing.remove(WEIGHTS_FILE)  # sharded safetensors
    has_tokenizer = (path / "tokenizer.json").is_file() or all(
        (path / name).is_file() for name in ("vocab.json", "merges.txt")
    )
    if not has_tokenizer:
        missing.append("tokenizer.json (or vocab.json and merges.txt)")
    return missing


def check_clap_config(path: Path, label: str) -> None:
    """Raise ``ModelUnavailableError`` unless ``path/config.json`` describes a transformers CLAP model."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(f"{label} has an unreadable config.json ({error})") from error
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != "clap":
        raise ModelUnavailableError(
            f"{label} is not a CLAP model: its config.json has model_type {model_type!r}, expected 'clap' "
            "(a transformers ClapModel such as laion/clap-htsat-unfused)"
        )
