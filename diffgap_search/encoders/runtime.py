"""Where a torch model runs: the device named by ``--device`` and a CPU thread count that fits the machine;
helpers every encoder shares (``prepare_device``, ``l2_rows``).

Imports torch, so it is only imported once a model is being loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from diffgap_search.config import Device, device_name
from diffgap_search.errors import ModelUnavailableError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cpu``; ``cuda`` or ``cuda:N`` (an error without a GPU).
    Raises UsageError for an unknown name (``config.device_name``)."""
    name = device_name(name)
    if name == Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == Device.CPU:
        return torch.device("cpu")
    if not torch.cuda.is_available():  # cuda or cuda:N
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


def prepare_device(name: str) -> torch.device:
    """Where an encoder being loaded runs: ``resolve_device(name)``, with torch's CPU threads capped at the CPUs
    this process may use (``limit_cpu_threads``: its pre- and post-processing run on the CPU even beside a GPU).

    Raises UsageError (an unknown name) or ModelUnavailableError (CUDA asked for, none there)."""
    device = resolve_device(name)
    limit_cpu_threads()
    return device


def l2_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``(N, D)`` scaled to unit L2 norm (zero rows stay zero), in ``x``'s dtype."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


def available_cpus() -> int:
    """CPUs this process may run on (affinity / cgroup cpuset aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def limit_cpu_threads(wanted: int | None = None) -> int:
    """Torch's intra-op threads: ``wanted`` (default: as many as now: never raised), at least one and at most
    the CPUs actually available; returns the count. (A Ray actor starts with ``OMP_NUM_THREADS`` = the CPUs
    it holds, one for an embedding actor: ``indexing/ray_engine/work.py`` asks for its share of the node.)"""
    threads = max(1, min(torch.get_num_threads() if wanted is None else wanted, available_cpus()))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def native_bf16(device: torch.device) -> bool:
    """True where bfloat16 matrix products run natively (CUDA with bf16, or a CPU with AVX512-BF16 or AMX),
    so a bfloat16 model is faster than float32 there; False elsewhere (emulated bf16 is slower), and where
    torch's kernels are capped below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``, how an AVX2-only CPU is approximated)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):  # ATEN_CPU_CAPABILITY caps it below
        return False
    try:
        cpu = torch.cpu
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return False


def int8_products_saturate() -> bool:
    """True on an x86 CPU without VNNI (no AVX512-VNNI, AVX-VNNI or AMX-INT8: AVX2-only CPUs, AVX-512 before
    Cascade Lake). There ONNX Runtime's int8 matrix products multiply unsigned by signed bytes with
    ``vpmaddubsw``, whose pairwise sums saturate at 32767 when both bytes are large, so weights need 7-bit
    ranges (``reduce_range``): measured on an AVX2-only EPYC (2026-12-03), the tiny test CLAP's int8 tower fell
    to cosine 0.981 to float32 with 8-bit weights, and held 0.999 with 7-bit ones. False elsewhere (VNNI's
    ``vpdpbusd`` and AMX accumulate in 32 bits; ARM's dot products do not saturate)."""
    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # an older torch: assume the worst on x86
        import platform

        return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    if not str(caps.get("architecture", "")).startswith(("x86", "i386", "i686", "amd64")):
        return False
    return not any(caps.get(flag, False) for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off for a local load (instant; its bars would clutter stderr)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
