"""The on-disk form of a DiffGAP bridge: one ``.safetensors`` file (never pickle).

The tensors are the denoiser's weights and, since format 2, the training record's ``record.*`` tensors
(the keys of the groups trained on and the fitted baselines, ``record``); the header's ``__metadata__`` holds one key, ``"diffgap"``,
whose value is canonical JSON (sorted keys) with:

- ``format_version`` (``FORMAT_VERSION``; a newer one is refused),
- ``denoiser`` / ``schedule`` / ``sample`` / ``train`` configurations,
- ``encoder_fingerprints``: modality name -> sha256 of the encoder weights it was trained on,
- ``directions`` served and per-direction ``fusion`` weights,
- ``record`` (format 2): group counts and the baselines' description (``record.TrainingRecord.meta``).

Format 1 files (no record) still load and serve queries; evaluating one needs a bridge trained again.
Format 3 adds the denoiser's linear anchor (``denoiser.anchor``, its ``anchor_*`` buffers) and the sampler's
``samples``; format 1 and 2 files lack both keys and load as the plain network sampling once.
Format 4 adds ``selection``: what validation chose (the checkpoint kept, the residual scale alpha of each
direction, the counterparts' fusion weights) and the validation scores behind it (``gap.selection``), and
the denoiser's ``dropout``; files of formats 1 to 3 lack both and serve with alpha = 1, as before.
Format 5 chooses alpha per task and role (issue 20): ``selection.residual_scale`` is each direction's alpha for
queries bridged at search time and ``selection.residual_scale_items`` its alpha for indexed items bridged at
index time, so one task's choice no longer binds the other task's; format-4 files keep one alpha per direction
for both roles.

``fingerprint(tensors, meta)`` is the sha256 of the canonical JSON plus every tensor's name, dtype,
shape and bytes in name order: it identifies the bridge before it is saved and after it is loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open

from ..atomic_files import replacing
from ..errors import BridgeMismatchError, BridgeUnavailableError, CorruptIndexError

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 5
META_KEY = "diffgap"


def canonical_json(meta: Mapping[str, Any]) -> str:
    """Deterministic JSON text of ``meta`` (sorted keys, no whitespace)."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))


def fingerprint(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> str:
    """sha256 hex digest of the metadata and the tensors (name, dtype, shape, bytes), in name order."""
    import torch

    h = hashlib.sha256(canonical_json(meta).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# numpy's name of a dtype -> torch's, as ``fingerprint`` writes it into the digest
TORCH_DTYPE_NAMES = {"float32": "torch.float32", "float64": "torch.float64", "float16": "torch.float16",
                     "int64": "torch.int64", "int32": "torch.int32", "int16": "torch.int16", "int8": "torch.int8",
                     "uint8": "torch.uint8", "bool": "torch.bool"}


def fingerprint_arrays(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> str:
    """``fingerprint`` of the same tensors held as numpy arrays (``load_checkpoint_arrays``), without torch: the
    same digest, byte for byte. Raises KeyError for a dtype numpy and torch do not share."""
    h = hashlib.sha256(canonical_json(meta).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{TORCH_DTYPE_NAMES[a.dtype.name]}|{tuple(a.shape)}".encode())
        h.update(a.view(np.uint8).tobytes() if a.size else b"")
    return h.hexdigest()


def save_checkpoint(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write ``tensors`` and ``meta`` (``format_version`` added unless given) to ``path`` atomically and durably.

    A temporary file is written and fsynced, ``os.replace``d onto ``path``, then the folder is fsynced so
    the rename itself survives a crash: once this returns, ``path`` holds the whole new checkpoint (a
    catalog record naming it may be committed); before, it holds the previous file or none.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"format_version": FORMAT_VERSION, **meta}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with replacing(path, durable=True, tmp=path.with_name(path.name + ".tmp")) as tmp:
        save_file(tensors, str(tmp), {META_KEY: canonical_json(full)})


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a bridge file -> ``(tensors, meta)``.

    Raises ``BridgeUnavailableError`` if the file is missing, ``CorruptIndexError`` if it is not a bridge
    checkpoint, ``BridgeMismatchError`` if it was written by a newer format version.
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_checkpoint_meta(path)
    return load_file(str(path)), meta


def load_checkpoint_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``load_checkpoint`` without torch: ``(arrays, meta)``, the tensors as numpy arrays (same names, dtypes,
    shapes, bytes). The same errors, and CorruptIndexError for a tensor numpy cannot hold (bfloat16)."""
    from safetensors.numpy import load_file

    path = Path(path)
    meta = read_checkpoint_meta(path)
    try:
        return load_file(str(path)), meta
    except (SafetensorError, TypeError, ValueError, OSError) as exc:
        raise CorruptIndexError(f"{path}: its tensors cannot be read as numpy arrays ({exc})") from exc


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """The JSON metadata of a bridge file, checked. Raises ``BridgeUnavailableError`` if the file is missing,
    ``CorruptIndexError`` if it is not a bridge checkpoint, ``BridgeMismatchError`` if it was written by a newer
    format version."""
    if not path.is_file():
        raise BridgeUnavailableError(f"no DiffGAP bridge at {path}: train one with `dgsearch train`")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            header = fh.metadata() or {}
        meta = json.loads(header[META_KEY])
        version = int(meta["format_version"])
    except (SafetensorError, KeyError, ValueError, TypeError, OSError) as exc:
        raise CorruptIndexError(f"{path} is not a DiffGAP bridge checkpoint ({exc.__class__.__name__})") from exc
    if version > FORMAT_VERSION:
        raise BridgeMismatchError(
            f"bridge {path} has format version {version}, newer than this diffgap-search reads ({FORMAT_VERSION}): "
            "upgrade diffgap-search"
        )
    return meta


def check_fingerprints(path: Path, trained: Mapping[str, str], expected: Mapping[str, str] | None) -> None:
    """Refuse a bridge whose encoder fingerprints differ from ``expected`` on any modality both name.

    ``trained`` / ``expected``: modality name -> encoder weights sha256. Modalities only one side names are
    ignored (an index without video can use an audio-text-video bridge), but at least one must be shared.
    Raises ``BridgeMismatchError``.
    """
    if expected is None:
        return
    if not trained:
        raise BridgeMismatchError(
            f"bridge {path} was trained on pairs from unrecorded encoders (a pairs file, before this index had"
            " any media): train it again with `dgsearch train` now that the index records its encoders"
        )
    shared = sorted(set(trained) & set(expected))
    if not shared:
        raise BridgeMismatchError(
            f"bridge {path} covers modalities {sorted(trained)}, none of which this index uses ({sorted(expected)})"
        )
    for modality in shared:
        if trained[modality] != expected[modality]:
            raise BridgeMismatchError(
                f"bridge {path} was trained on {modality} embeddings from encoder {trained[modality][:12]}, "
                f"but this index uses encoder {expected[modality][:12]}: train a new bridge with `dgsearch train`"
            )
