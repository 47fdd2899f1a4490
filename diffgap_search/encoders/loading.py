"""Turn an ``EncoderConfig`` into a loaded audio encoder: find or fetch the weights, check them, load them.

``cfg.model`` is one of:

- a Hugging Face hub id (``laion/clap-htsat-unfused``, ``laion/clap-htsat-fused``, ``laion/larger_clap_*``),
  fetched into the standard cache as published (``encoders/weights/hub.py``), at ``cfg.revision`` when given;
- a local directory in the transformers layout (any weights format, ``preprocessor_config.json`` or
  ``processor_config.json``, any tokenizer layout: ``encoders/weights/layout.py``);
- an original LAION-CLAP checkpoint file (``630k-audioset-best.pt`` …), re-keyed for transformers' ``ClapModel``
  by ``encoders/clap/laion_checkpoint.py``, with the RoBERTa tokenizer LAION-CLAP uses (``roberta-base``, from the hub cache);
- ``aisfx``: the sound-effects embedding network that ships inside the ``aisfx`` package (audio only).

Every way this can fail ends as one ``ModelUnavailableError`` whose message says what is wrong and what
to do. Importing this module is cheap: torch and transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.weights.layout import Role, missing_in_folder, read_config
from diffgap_search.errors import DGSearchError, ModelUnavailableError

if TYPE_CHECKING:
    from diffgap_search.encoders.base import Encoder
    from diffgap_search.encoders.weights.progress import DownloadProgress

AISFX = "aisfx"
CHECKPOINT_SUFFIXES = (".pt", ".ckpt", ".pth")
LAION_TOKENIZER = "FacebookAI/roberta-base"  # LAION-CLAP's RobertaTokenizer.from_pretrained("roberta-base")
LAYOUT_HINT = (
    "a model directory must hold config.json, the weights (model.safetensors or pytorch_model.bin), the "
    "tokenizer files (tokenizer.json, or vocab.json and merges.txt) and preprocessor_config.json (or "
    "processor_config.json), as written by save_pretrained"
)
LAYOUT_HINTS: dict[str, str] = {
    "clap": LAYOUT_HINT,
    "clip_vision": "a CLIP model directory must hold config.json, the weights (model.safetensors or "
                   "pytorch_model.bin) and preprocessor_config.json (or processor_config.json)",
    "tokenizer": "a tokenizer directory must hold tokenizer.json, or vocab.json and merges.txt",
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files were found, recorded in the index as its provenance.

    ``folder`` holds config, preprocessing and tokenizer files; ``kind`` is ``hub`` (a snapshot of the
    Hugging Face cache: ``repo_id``, the ``revision`` asked for and the ``commit`` it resolved to) or
    ``directory`` (a local folder, as given).
    """

    folder: Path
    kind: str
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def provenance(self) -> dict[str, Any]:
        """The JSON-able record an index keeps of where its weights came from."""
        return {"source": self.kind, "repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def load_encoder(cfg: EncoderConfig, *, progress: bool = True) -> Encoder:
    """Load the audio encoder ``cfg`` names, downloading it into the Hugging Face cache on first use.

    ``progress`` shows download progress on stderr. Raises ``ModelUnavailableError`` (any reason the
    weights cannot be had) or ``UsageError`` (an unknown ``cfg.device``).
    """
    if cfg.model == AISFX:
        from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder

        return _with_provenance(load_aisfx_encoder(cfg.device, cfg.batch_size), {"source": "package"})
    from diffgap_search.encoders.weights.progress import stderr_download_progress

    sink = stderr_download_progress(progress)
    if _is_checkpoint_file(cfg.model):
        return _load_laion_checkpoint(cfg, sink)
    source = resolve_model(cfg.model, cfg.revision, role="clap", progress=sink)
    check_clap_config(source.folder, _label(cfg.model, source))
    from diffgap_search.encoders.clap.encoder import ClapEncoder

    try:
        encoder = ClapEncoder.from_folder(
            source.folder, model_id=cfg.model, device=cfg.device, batch_size=cfg.batch_size
        )
    except DGSearchError:
        raise
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds; the user gets one message
        raise ModelUnavailableError(
            f"cannot load the CLAP model in '{source.folder}' ({type(error).__name__}: {_first_line(error)}); "
            f"{LAYOUT_HINT}"
        ) from error
    return _with_provenance(encoder, source.provenance())


def resolve_model(
    model: str, revision: str | None = None, *, role: Role = "clap", progress: DownloadProgress | None = None
) -> ModelSource:
    """The checked local folder holding ``model``: the directory itself, or its Hugging Face cache snapshot."""
    if is_local_reference(model):
        if revision:
            raise ModelUnavailableError(f"--revision applies to hub models, not to the local directory '{model}'")
        path, hint = Path(model).expanduser(), LAYOUT_HINTS[role]
        if not path.exists():
            raise ModelUnavailableError(f"model directory '{model}' does not exist; {hint}")
        if not path.is_dir():
            raise ModelUnavailableError(f"model path '{model}' is not a directory; {hint}")
        missing = missing_in_folder(path, role)
        if missing:
            raise ModelUnavailableError(f"model directory '{model}' is missing {', '.join(missing)}; {hint}")
        return ModelSource(path, "directory")
    from diffgap_search.encoders.weights.hub import fetch_model

    snapshot = fetch_model(model, revision, role=role, progress=progress)
    return ModelSource(snapshot.path, "hub", snapshot.repo_id, snapshot.revision, snapshot.commit)


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


def check_clap_config(path: Path, label: str) -> None:
    """Raise ``ModelUnavailableError`` unless ``path/config.json`` describes a transformers CLAP model."""
    model_type = read_config(path).get("model_type")
    if model_type != "clap":
        raise ModelUnavailableError(
            f"{label} is not a CLAP model: its config.json has model_type {model_type!r}, expected 'clap' "
            "(a transformers ClapModel such as laion/clap-htsat-unfused)"
        )


def _is_checkpoint_file(model: str) -> bool:
    """True when ``model`` names a checkpoint file (``*.pt``, ``*.ckpt``, ``*.pth``), existing or not."""
    path = Path(model).expanduser()
    return path.suffix.lower() in CHECKPOINT_SUFFIXES and not path.is_dir() and is_local_reference(model)


def _load_laion_checkpoint(cfg: EncoderConfig, sink: DownloadProgress) -> Encoder:
    """An original LAION-CLAP checkpoint file with LAION's RoBERTa tokenizer (fetched once into the hub cache)."""
    path = Path(cfg.model).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(f"checkpoint file '{cfg.model}' does not exist")
    if cfg.revision:
        raise ModelUnavailableError(f"--revision applies to hub models, not to the checkpoint file '{cfg.model}'")
    tokenizer = resolve_model(LAION_TOKENIZER, role="tokenizer", progress=sink)
    from diffgap_search.encoders.clap.encoder import ClapEncoder

    encoder = ClapEncoder.from_laion_checkpoint(
        path, tokenizer.folder, model_id=cfg.model, device=cfg.device, batch_size=cfg.batch_size
    )
    provenance = {"source": "checkpoint", "repo_id": None, "revision": None, "commit": None,
                  "tokenizer": f"{LAION_TOKENIZER}@{tokenizer.commit}" if tokenizer.commit else LAION_TOKENIZER}
    return _with_provenance(encoder, provenance)


def _with_provenance(encoder: Any, provenance: dict[str, Any]) -> Any:
    encoder.provenance = provenance
    return encoder


def _label(model: str, source: ModelSource) -> str:
    return f"model '{model}'" if source.kind == "hub" else f"model directory '{model}'"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
