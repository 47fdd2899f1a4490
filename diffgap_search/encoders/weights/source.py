"""Where a model's files are: a local directory as given, or the Hugging Face cache snapshot of a hub id.

``resolve_model`` checks a local directory's files for the model's role (``weights/layout.py``) or fetches a
hub id as published (``weights/hub.py``), and returns a ``ModelSource`` whose ``provenance()`` the index
records. Every failure is one ``ModelUnavailableError`` saying what is wrong and what to do. Importing this
module is cheap: huggingface_hub is imported only when a hub id is fetched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffgap_search.encoders.weights.layout import Role, missing_in_folder
from diffgap_search.errors import ModelUnavailableError

if TYPE_CHECKING:
    from diffgap_search.encoders.weights.progress import DownloadProgress

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
