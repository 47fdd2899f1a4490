"""The encoders' precision paths: the choices (``Precision``), and the remembered probe verdicts, so a cold
process does not re-run the agreement probe. CLAP's towers take any path (``encoders/clap/path_choice.py``);
aisfx's network fp32 or bf16 (``encoders/aisfx/precision.py``).

A verdict depends only on the weights, the tower, the device type and the runtime builds, so it is kept in
``<cache_dir>/precision-probes.json``. Keys (values):

- ``"<weights sha256>|<tower>|<device>|torch <ver>"`` (bool): the bf16 copy agrees with float32 (the key
  predates the other paths and is kept as it was, so old verdicts stay valid);
- ``"... |torch <ver>|<path>"`` (bool), ``path`` one of ``int8``, ``onnx``, ``onnx-int8``: that path agrees;
- ``"... |torch <ver>|<cpu capability>|<runtime stamp>|auto"`` (str): the path ``auto`` chose there (CLAP's
  stamp ``ort <ver or none>, paths <n>``, aisfx's ``aisfx paths <n>``).

A missing or unreadable file only means the probe runs again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from diffgap_search.atomic_files import write_text
from diffgap_search.config import Choice
from diffgap_search.encoders.weights.fingerprint import cache_dir

FILE_NAME = "precision-probes.json"
MIN_LOW_PRECISION_COSINE = 0.999  # every path's vectors must stay this close to float32's, per window
# The version of the paths as the probe judges them, part of a remembered ``auto`` choice's key: a choice made
# on older paths is probed again. 2 (2026-12-03): ONNX export 2 (time stretch as gathers, 7-bit int8 weights
# without VNNI) and the float32 STFT on every path but fp32.
PATHS_VERSION = 2


class Precision(Choice):
    """What a CLAP tower runs in: ``auto`` (the fastest of the paths below that this machine runs natively and
    whose vectors agree with float32's on a fixed probe: cosine >= 0.999 per window; float32 when none does),
    or one path forced: ``fp32``; ``bf16`` (a bfloat16 copy); ``int8`` (torch dynamic int8 on the Linear
    layers); ``onnx`` (ONNX Runtime, float32, all graph optimisations); ``onnx-int8`` (ONNX Runtime, dynamic
    int8 MatMuls, per-channel weight scales). The ONNX paths need the ``onnx`` extra (onnxruntime)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"


CPU_ONLY = (Precision.INT8, Precision.ONNX, Precision.ONNX_INT8)  # paths that run on the CPU alone


def _read() -> dict[str, bool | str]:
    try:
        data = json.loads((cache_dir() / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, (bool, str))} if isinstance(data, dict) else {}


def cached_verdict(key: str) -> bool | None:
    """The remembered verdict for ``key`` (True: that path agrees with float32), or None."""
    value = _read().get(key)
    return value if isinstance(value, bool) else None


def cached_choice(key: str) -> str | None:
    """The path ``auto`` chose under ``key`` (a ``Precision`` string), or None."""
    value = _read().get(key)
    return value if isinstance(value, str) and value in {str(p) for p in Precision} else None


def remember_verdict(key: str, ok: bool | str) -> None:
    """Store a verdict or a choice (atomic rewrite of the small JSON file; failures to write are ignored)."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = _read()
        data[key] = ok
        write_text(folder / FILE_NAME, json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass


def settle_export(key: str, tmp: Path, target: Path, kept: bool) -> Path | None:
    """The end of an ONNX export checked against torch before a query path may use it: where ``kept``, ``tmp``
    becomes ``target`` and ``onnx`` is remembered under ``key`` (the kept file's path is returned); else ``tmp``
    is removed and ``fp32`` remembered, so the export is not tried again at every load (a torch or ONNX Runtime
    upgrade changes the key and retries it), and None is returned."""
    if kept:
        os.replace(tmp, target)
        remember_verdict(key, str(Precision.ONNX))
        return target
    tmp.unlink(missing_ok=True)
    remember_verdict(key, str(Precision.FP32))
    return None


def remembered_paths(fingerprint: str) -> dict[str, str]:
    """``{"<tower> on <device>, torch <ver>, <cpu capability>, ort <ver>, paths <n>": path}`` of every
    ``auto`` choice remembered for these weights on this machine (``dgsearch info`` shows them without loading
    the model)."""
    out: dict[str, str] = {}
    for key, value in sorted(_read().items()):
        parts = key.split("|")
        if parts[0] == fingerprint and parts[-1] == "auto" and isinstance(value, str) and len(parts) == 7:
            out[f"{parts[1]} on {parts[2]}, {parts[3]}, {parts[4]}, {parts[5]}"] = value
    return out
