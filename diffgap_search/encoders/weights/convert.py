"""Model weights as safetensors, whatever format they were published in; pickles never run code.

Safetensors files are used where they are. Where a folder has only pickled weights (``pytorch_model.bin``,
single or sharded), they are read once with ``torch.load(..., weights_only=True)`` — PyTorch's restricted
unpickler, which rebuilds tensors and plain containers and refuses any other global, so a hostile file
cannot run code — and written to a safetensors copy in our own cache:

    $DGSEARCH_CACHE_DIR (default ~/.cache/diffgap-search)/safetensors/<sha256>/model.safetensors

``<sha256>`` is the fingerprint of the pickled weights as published, and the copy's header records it
(``source_sha256``): other weights never find it, a copy whose header disagrees (or that cannot be read) is
rewritten, and deleting the folder at any time only costs one conversion. Later loads read the copy
(memory-mapped, no unpickling at all).

Imports torch and safetensors inside functions only.
"""

from __future__ import annotations

import contextlib
import re
import warnings
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

from diffgap_search.atomic_files import replacing
from diffgap_search.encoders.weights.fingerprint import cache_dir
from diffgap_search.encoders.weights.layout import SAFETENSORS, WeightsChoice, shard_names
from diffgap_search.errors import ModelUnavailableError

COPY_DIR = "safetensors"
WEIGHTS_ONLY_REFUSAL = "Weights only load failed"


def prepared_weights(folder: Path) -> tuple[Path, str]:
    """``(weights folder, fingerprint)`` of a model folder: where ``from_pretrained`` finds safetensors
    (``folder`` or our converted copy) and the sha256 of the weights as published."""
    weights, fingerprint = published_weights(folder)
    return safetensors_folder(folder, weights, fingerprint), fingerprint


def published_weights(folder: Path) -> tuple[WeightsChoice, str]:
    """The weights a model folder holds (``layout.choose_weights``) and their sha256 as published, converting
    nothing (a process that records the model without loading it: ``encoders/clap/record.py``)."""
    from diffgap_search.encoders.weights.fingerprint import weights_fingerprint
    from diffgap_search.encoders.weights.layout import choose_weights, folder_names

    weights = choose_weights(folder_names(folder))
    if weights is None:
        raise ModelUnavailableError(f"'{folder}' holds no weights (model.safetensors or pytorch_model.bin)")
    return weights, weights_fingerprint(folder, weights)


def safetensors_folder(folder: Path, weights: WeightsChoice, fingerprint: str) -> Path:
    """A folder whose weights are safetensors: ``folder`` itself, or the converted copy of its pickles."""
    if weights.format == "safetensors":
        return folder
    target = cache_dir() / COPY_DIR / fingerprint
    copy = target / SAFETENSORS
    if _copy_matches(copy, fingerprint):
        return target
    files = [folder / name for name in shard_names(folder / weights.file)] if weights.sharded else [folder / weights.file]
    state: dict[str, Any] = {}
    for path in files:
        state.update(read_pickled_state_dict(path))
    _write_copy(state, copy, fingerprint, weights.file)
    return target


def converted_state(path: Path, fingerprint: str, read: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """The tensors of the checkpoint file ``path`` (sha256 ``fingerprint``): from its safetensors copy in our
    cache when that exists, else ``read(path)`` (a restricted unpickling), written to the copy once."""
    from safetensors.torch import load_file

    copy = cache_dir() / COPY_DIR / fingerprint / SAFETENSORS
    if _copy_matches(copy, fingerprint):
        return load_file(str(copy))
    state = read(path)
    _write_copy(state, copy, fingerprint, path.name)
    return state


def read_pickled_state_dict(path: Path) -> dict[str, Any]:
    """``{name: tensor}`` from a pickled checkpoint, read with ``torch.load(weights_only=True)`` only.

    Raises ``ModelUnavailableError`` for a file that needs anything beyond tensors and plain containers
    (it is refused, never unpickled in full), that cannot be read, or that holds no flat tensor mapping.
    """
    state = load_restricted(path)
    if not isinstance(state, dict) or not state:
        raise ModelUnavailableError(f"'{path}' does not hold a mapping of tensor names to tensors")
    import torch

    bad = [key for key, value in state.items() if not isinstance(key, str) or not isinstance(value, torch.Tensor)]
    if bad:
        raise ModelUnavailableError(f"'{path}' holds entries that are not named tensors (first: {bad[0]!r})")
    return state


def load_restricted(path: Path, *, allow: Callable[[], ContextManager[None]] | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, memory-mapped for zip-format files (a
    checkpoint's optimizer state is then never read into memory), with every refusal or read error turned
    into one ``ModelUnavailableError``. ``allow`` is a context that allow-lists extra globals for this one
    load (``laion_checkpoint``'s inert NumPy stand-ins); nothing else is ever unpickled."""
    import torch

    if not path.is_file():
        raise ModelUnavailableError(f"checkpoint '{path}' does not exist or is not a file")
    try:
        with (allow or contextlib.nullcontext)(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # noqa: BLE001 - the safe loader's refusal, or zip, EOF and storage errors
        if WEIGHTS_ONLY_REFUSAL in str(error) and not _not_a_pickle(str(error)):  # pickle.UnpicklingError
            raise ModelUnavailableError(f"'{path}' was not loaded: {_refusal_reason(str(error))}") from None
        raise ModelUnavailableError(
            f"cannot read '{path}' as a PyTorch checkpoint (truncated, damaged or not a .pt file: {first_line(error)})"
        ) from None


def _copy_matches(copy: Path, fingerprint: str) -> bool:
    """True when ``copy`` is a readable safetensors file converted from the weights ``fingerprint`` names."""
    from safetensors import safe_open

    try:
        with safe_open(str(copy), framework="pt") as handle:
            return (handle.metadata() or {}).get("source_sha256") == fingerprint
    except Exception:  # noqa: BLE001 - missing, truncated or foreign: convert again
        return False


def _write_copy(state: dict[str, Any], copy: Path, fingerprint: str, source: str) -> None:
    """Write ``state`` as safetensors at ``copy`` (temporary file, fsync, rename): never half a file."""
    from safetensors.torch import save_file

    tensors = {key: value.detach().contiguous().clone() for key, value in state.items()}  # no shared storage
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        with replacing(copy, durable=True) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt", "source_sha256": fingerprint, "source": source})
    except OSError as error:
        raise ModelUnavailableError(f"cannot write the safetensors copy of the weights in '{copy.parent}' ({error})") from None


def _not_a_pickle(text: str) -> bool:
    """True when the safe loader stopped at a byte that is no pickle opcode at all (a damaged or foreign
    file), rather than at one of the opcodes protocols 4 and 5 added (140-152), which it does not read."""
    match = re.search(r"Unsupported operand (\d+)", text)
    return match is not None and not 140 <= int(match.group(1)) <= 152


def _refusal_reason(text: str) -> str:
    """One line from PyTorch's multi-line weights_only refusal (its advice to load with ``weights_only=False``
    is left out on purpose)."""
    match = re.search(r"GLOBAL ([\w.]+)", text)
    if match:
        return (
            f"it needs the Python object {match.group(1)}, which PyTorch's safe loader (weights_only) refuses to "
            "create; only checkpoints of tensors and plain data are read"
        )
    detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    reason = detail.group(1).strip() if detail else (text.strip().splitlines() or ["unknown error"])[0]
    hint = ""
    if reason.startswith("Unsupported operand"):
        hint = "; it was pickled with a protocol newer than the safe loader reads (torch.save's default is 2)"
    return f"PyTorch's safe loader (weights_only) refused it ({reason}){hint}"


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none), for a one-line error."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
