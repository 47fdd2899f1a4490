"""What is known of the aisfx model without loading it (no torch): its name, size and rate, and where the
installed package keeps its checkpoint (found without importing aisfx)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from diffgap_search.encoders.precision import Precision
from diffgap_search.errors import ModelUnavailableError, UsageError

MODEL_ID = "aisfx"
DIM = 512
SAMPLE_RATE = 44_100  # inference.SAMPLE_RATE
# 2: a window shorter than the index's window (a short file) is embedded from its own samples, not repeat-padded
# to the window (1); docs/models.md, "Preprocessing versions"
PREPROCESSING = {"audio": 2}
VERSIONS = (1, 2)  # what this dgsearch can still make


def supported_version(wanted: int) -> int:
    """``wanted`` (an index's version of the ``audio`` space) where this dgsearch can make it, else the current
    one (and the index, recorded at a version from elsewhere, refuses it: ``store/settings.bind_encoder``)."""
    return wanted if wanted in VERSIONS else PREPROCESSING["audio"]


def embeds_own_lengths(version: int) -> bool:
    """Whether ``version`` embeds a short window from its own samples (2) rather than as given, repeat-padded to
    the window (1): the encoder's ``own_lengths``."""
    return version >= 2


PATHS = (Precision.FP32, Precision.BF16)  # what aisfx's network runs (``precision.py``); ``auto`` chooses


def checked_precision(precision: str) -> Precision:
    """``--precision`` for aisfx: ``auto``, ``fp32`` or ``bf16``. Raises UsageError for CLAP's other paths
    (int8, onnx, onnx-int8 quantise or export CLAP's towers; aisfx is a convolutional network)."""
    try:
        chosen = Precision(precision)
    except ValueError:
        chosen = None
    if chosen is None or (chosen != Precision.AUTO and chosen not in PATHS):
        raise UsageError(f"precision '{precision}' is not a path of model 'aisfx': use auto, fp32 or bf16 "
                         "(int8 and the onnx paths are CLAP's)")
    return chosen


CHECKPOINT_IN_PACKAGE = ("models", "checkpoint.pth")
INSTALL_HINT = "pip install --no-deps aisfx==0.1.2 (its model ships inside the package)"


def find_checkpoint() -> Path:
    """``aisfx/models/checkpoint.pth`` of the installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec("aisfx")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelUnavailableError(f"model 'aisfx' needs the aisfx package: {INSTALL_HINT}")
    path = Path(locations[0]).joinpath(*CHECKPOINT_IN_PACKAGE)
    if not path.is_file():
        raise ModelUnavailableError(
            f"model 'aisfx': the aisfx package at '{locations[0]}' has no {'/'.join(CHECKPOINT_IN_PACKAGE)}; "
            f"reinstall it: {INSTALL_HINT}"
        )
    return path
