"""The CLAP towers' precision: the choices (``Precision``), and the remembered bf16-vs-float32 probe
verdicts, so a cold process does not re-run the agreement probe.

The verdict for a tower depends only on its weights, the device type and the torch build, so it is kept
in ``<cache_dir>/precision-probes.json`` under the key ``"<weights sha256>|<tower>|<device>|torch <ver>"``.
A missing or unreadable file only means the probe runs again.
"""

from __future__ import annotations

import json

from diffgap_search.atomic_files import write_text
from diffgap_search.config import Choice
from diffgap_search.encoders.weights.fingerprint import cache_dir

FILE_NAME = "precision-probes.json"


class Precision(Choice):
    """What a CLAP tower runs in: ``auto`` (bf16 where native, large enough and agreeing with float32 on a
    fixed probe, else float32), ``fp32`` or ``bf16`` (forced)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


def _read() -> dict[str, bool]:
    try:
        data = json.loads((cache_dir() / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, bool)} if isinstance(data, dict) else {}


def cached_verdict(key: str) -> bool | None:
    """The remembered verdict for ``key`` (True: bf16 agrees with float32), or None."""
    return _read().get(key)


def remember_verdict(key: str, ok: bool) -> None:
    """Store a verdict (atomic rewrite of the small JSON file; failures to write are ignored)."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = _read()
        data[key] = ok
        write_text(folder / FILE_NAME, json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass
