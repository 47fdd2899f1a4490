"""ONNX Runtime as the ONNX paths open it: its version and the versions an export is keyed by, read from the
installed packages' metadata (nothing imported: the query paths that run without torch decide with them before
importing anything), and a CPU session with every graph optimisation, one inter-op thread and onnxruntime's own
logging quiet."""

from __future__ import annotations

import importlib.util
import logging
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from diffgap_search.threads import idle_cores

RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu")  # distributions that provide the onnxruntime module


def installed_version(package: str) -> str:
    """``package``'s installed version from its metadata (``"none"`` without it): what an export's key records of
    torch and transformers without importing them."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def runtime_version() -> str | None:
    """The installed onnxruntime's version, or None without it (read from the package's metadata)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    for name in RUNTIME_PACKAGES:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def cpu_session(path: Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``path`` (CPU execution provider, all graph optimisations) with
    ``threads`` intra-op threads (default: the cores idle now, ``threads.idle_cores``)."""
    import onnxruntime as ort

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or idle_cores(os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
