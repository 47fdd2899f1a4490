"""Load a CLAP model as an ``EncoderConfig`` names it: a hub id, a model directory, or an original LAION-CLAP
checkpoint file.

- a Hugging Face hub id (``laion/clap-htsat-unfused``, ``laion/clap-htsat-fused``, ``laion/larger_clap_*``),
  fetched into the standard cache as published (``encoders/weights/hub.py``), at ``cfg.revision`` when given;
- a local directory in the transformers layout (any weights format, ``preprocessor_config.json`` or
  ``processor_config.json``, any tokenizer layout: ``encoders/weights/layout.py``);
- an original LAION-CLAP checkpoint file (``630k-audioset-best.pt`` …), re-keyed for transformers' ``ClapModel``
  by ``encoders/clap/laion_checkpoint.py``, with the RoBERTa tokenizer LAION-CLAP uses (``roberta-base``, from
  the hub cache).

Every way this can fail ends as one ``ModelUnavailableError``. Importing this module is cheap: torch and
transformers are imported only when a model is loaded.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from diffgap_search.config import Device, EncoderConfig, device_name
from diffgap_search.encoders.precision import Precision
from diffgap_search.encoders.weights.layout import read_config
from diffgap_search.encoders.weights.source import LAYOUT_HINT, ModelSource, is_local_reference, resolve_model
from diffgap_search.errors import DGSearchError, ModelUnavailableError

if TYPE_CHECKING:
    from diffgap_search.encoders.clap.encoder import ClapEncoder
    from diffgap_search.encoders.clap.record import ClapRecord
    from diffgap_search.encoders.weights.progress import DownloadProgress

CHECKPOINT_SUFFIXES = (".pt", ".ckpt", ".pth")
LAION_TOKENIZER = "FacebookAI/roberta-base"  # LAION-CLAP's RobertaTokenizer.from_pretrained("roberta-base")


def load_clap(cfg: EncoderConfig, sink: DownloadProgress, query: bool = False) -> ClapEncoder | ClapRecord:
    """The CLAP encoder ``cfg.model`` names, on ``cfg.device``, its ``provenance`` set; downloads report to ``sink``.
    ``cfg.defer_model`` (a process that records the encoder and embeds nothing): a hub or folder model is a
    ``record.ClapRecord``, read without torch, that builds the encoder only if asked to embed. ``query`` (one
    query's process, ``precision`` auto on the CPU): a record too where this machine holds a checked ONNX file of
    the text tower or the audio tower, so words or windows are embedded without torch (``text_onnx.py``,
    ``audio_query.py``)."""
    if is_checkpoint_file(cfg.model):
        return _load_laion_checkpoint(cfg, sink)
    source = resolve_model(cfg.model, cfg.revision, role="clap", progress=sink)
    check_clap_config(source.folder, _label(cfg.model, source))
    encoder: ClapEncoder | ClapRecord
    if cfg.defer_model:
        encoder = _clap_record(source.folder, cfg)
    elif query and cfg.precision == Precision.AUTO and device_name(cfg.device) in (Device.AUTO, Device.CPU):
        record = _clap_record(source.folder, cfg, query_paths=True)
        encoder = record if record.has_query_sessions else _clap_encoder(source.folder, cfg)
    else:
        encoder = _clap_encoder(source.folder, cfg)
    encoder.provenance = source.provenance()
    return encoder


def _clap_encoder(folder: Path, cfg: EncoderConfig) -> ClapEncoder:
    """``folder``'s ``ClapEncoder``, built now; whatever transformers raises becomes one ModelUnavailableError."""
    from diffgap_search.encoders.clap.encoder import ClapEncoder
    from diffgap_search.encoders.weights.convert import first_line

    try:
        return ClapEncoder.from_folder(
            folder, model_id=cfg.model, device=cfg.device, batch_size=cfg.batch_size, precision=cfg.precision,
        )
    except DGSearchError:
        raise
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds; the user gets one message
        raise ModelUnavailableError(
            f"cannot load the CLAP model in '{folder}' ({type(error).__name__}: {first_line(error)}); {LAYOUT_HINT}"
        ) from error


def _clap_record(folder: Path, cfg: EncoderConfig, query_paths: bool = False) -> ClapRecord:
    """``folder``'s encoder as a ``record.ClapRecord``: its identity read without torch, ``_clap_encoder`` built
    from it only if something asks it to embed."""
    from diffgap_search.encoders.clap.record import ClapRecord
    from diffgap_search.encoders.weights.convert import published_weights

    return ClapRecord(folder, model_id=cfg.model, fingerprint=published_weights(folder)[1],
                      device=cfg.device, batch_size=cfg.batch_size, query_paths=query_paths,
                      build=partial(_clap_encoder, folder, replace(cfg, defer_model=False)))


def check_clap_config(path: Path, label: str) -> None:
    """Raise ``ModelUnavailableError`` unless ``path/config.json`` describes a transformers CLAP model."""
    model_type = read_config(path).get("model_type")
    if model_type != "clap":
        raise ModelUnavailableError(
            f"{label} is not a CLAP model: its config.json has model_type {model_type!r}, expected 'clap' "
            "(a transformers ClapModel such as laion/clap-htsat-unfused)"
        )


def is_checkpoint_file(model: str) -> bool:
    """True when ``model`` names a checkpoint file (``*.pt``, ``*.ckpt``, ``*.pth``), existing or not."""
    path = Path(model).expanduser()
    return path.suffix.lower() in CHECKPOINT_SUFFIXES and not path.is_dir() and is_local_reference(model)


def _load_laion_checkpoint(cfg: EncoderConfig, sink: DownloadProgress) -> ClapEncoder:
    """An original LAION-CLAP checkpoint file with LAION's RoBERTa tokenizer (fetched once into the hub cache)."""
    path = Path(cfg.model).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(f"checkpoint file '{cfg.model}' does not exist")
    if cfg.revision:
        raise ModelUnavailableError(f"--revision applies to hub models, not to the checkpoint file '{cfg.model}'")
    tokenizer = resolve_model(LAION_TOKENIZER, role="tokenizer", progress=sink)
    from diffgap_search.encoders.clap.encoder import ClapEncoder

    encoder = ClapEncoder.from_laion_checkpoint(
        path, tokenizer.folder, model_id=cfg.model, device=cfg.device, batch_size=cfg.batch_size,
        precision=cfg.precision,
    )
    encoder.provenance = {"source": "checkpoint", "repo_id": None, "revision": None, "commit": None,
                          "tokenizer": f"{LAION_TOKENIZER}@{tokenizer.commit}" if tokenizer.commit else LAION_TOKENIZER}
    return encoder


def _label(model: str, source: ModelSource) -> str:
    return f"model '{model}'" if source.kind == "hub" else f"model directory '{model}'"
