"""Where a torch model runs: the device named by ``--device`` and a CPU thread count that fits the machine.

Imports torch, so it is only imported once a model is being loaded.
"""

from __future__ import annotations

import os

import torch

from diffgap_search.errors import ModelUnavailableError, UsageError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cpu``; ``cuda`` or ``cuda:N`` (an error without a GPU)."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelUnavailableError(
                f"device '{name}' was requested but no CUDA GPU is available to torch "
                f"(torch {torch.__version__}): use --device cpu or --device auto"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelUnavailableError(
                f"device '{name}' does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    raise UsageError(f"unknown device '{name}': use one of {', '.join(DEVICES)} (or cuda:N)")


def available_cpus() -> int:
    """CPUs this process may run on (affinity / cgroup cpuset aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def limit_cpu_threads() -> int:
    """Cap torch's intra-op threads at the CPUs actually available (never raise it); returns the count."""
    threads = min(torch.get_num_threads(), available_cpus())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
