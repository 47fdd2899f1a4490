"""Which precision path aisfx's network runs: ``fp32``, or ``bf16`` (torch autocast to bfloat16: the convolutions
in bfloat16 with float32 accumulation, batch norm and the pooling in float32), and ``auto``'s choice.

``auto`` takes bf16 only where this device runs bfloat16 natively (``runtime.native_bf16``: AVX512-BF16 or AMX
CPUs, CUDA with bf16) and only when, on a fixed probe of two 3 s windows (seeded noise and a tone sweep:
``clap.batches.probe_windows``, through the whole preprocessing), every bf16 vector is within cosine
``MIN_LOW_PRECISION_COSINE`` (0.999) of float32's and bf16 is the faster of the two (best of two timed runs).
The choice is remembered per weights, device type, torch build and CPU capability in
``precision-probes.json`` (``encoders/precision.py``), so a cold process skips the probe; elsewhere ``auto`` is
float32 without a probe (emulated bfloat16 is slower), and is remembered too, so ``dgsearch info`` can say so.

Measured before taking it (``benchmarks/bench_aisfx_precision.py``, 2026-12-06, the 2-core Zen 4 EPYC:
avx512_bf16, no AMX; one torch thread; the package's real weights; each file embedded once as the index does):
bf16's per-file cosine to float32 min 0.99990 on the 130 sonic-pi recordings, 0.99981 on Debian's 743
described sounds (none below 0.999); the network 2.30x and 1.99x as fast as before, of which channels-last
alone gives float32 1.19x and 1.07x (1.09x under AVX2 caps, float32's vectors within 1e-6 of cosine). White
noise is the hardest input measured (min 0.99958), hence the probe's noise window.

An index's vectors stay comparable across paths (the probe's tolerance, not another space): an index built
in bf16 on one machine answers queries embedded in float32 on another, and grows with them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from diffgap_search.encoders.aisfx.package import PATHS, checked_precision
from diffgap_search.encoders.clap.batches import probe_windows
from diffgap_search.encoders.clap.path_choice import best_time, device_capability, weights_key
from diffgap_search.encoders.precision import (
    MIN_LOW_PRECISION_COSINE,
    Precision,
    cached_choice,
    remember_verdict,
)
from diffgap_search.encoders.runtime import native_bf16

# Part of a remembered choice's key: the paths as the probe judges them. 1 (2026-12-06): bf16 autocast, the
# network in channels-last layout.
PATHS_STAMP = "aisfx paths 1"
PROBE_SECONDS = 3.0


def choice_key(fingerprint: str, device: torch.device) -> str:
    """``"<sha256>|audio|<device type>|torch <ver>|<cpu capability>|aisfx paths <n>|auto"``: where ``auto``'s
    choice for these weights on this machine is remembered (``encoders/precision.remembered_paths`` reads it)."""
    return f"{weights_key(fingerprint, device, 'audio')}|{device_capability(device)}|{PATHS_STAMP}|auto"


Embed = Callable[[np.ndarray, Precision], np.ndarray]  # (N, S) float32 windows, a path -> (N, 512) unit rows


def choose_path(precision: str, fingerprint: str, device: torch.device, embed: Embed,
                sample_rate: int, batch_size: int = 16) -> tuple[Precision, dict[str, float]]:
    """The path for ``precision`` (checked by ``checked_precision``) and the probe's report (``{"bf16": min
    cosine to float32, "fp32 s": ..., "bf16 s": ...}``, empty when no probe ran). ``embed`` runs the
    encoder's network on windows in a given path. On a GPU the two probe windows are timed repeated to
    ``batch_size`` (at two windows a GPU runs launch-bound and every path takes the same time, as CLAP's probe
    found on an H200)."""
    asked = checked_precision(precision)
    if asked != Precision.AUTO:
        return asked, {}
    key = choice_key(fingerprint, device)
    remembered = cached_choice(key)
    if remembered in PATHS and (remembered == Precision.FP32 or native_bf16(device)):
        return Precision(remembered), {}
    if not native_bf16(device):
        remember_verdict(key, str(Precision.FP32))
        return Precision.FP32, {}
    copies = max(1, batch_size // 2) if device.type != "cpu" else 1
    path, report = probe(embed, sample_rate, copies)
    remember_verdict(key, str(path))
    return path, report


def probe(embed: Embed, sample_rate: int, timing_copies: int = 1) -> tuple[Precision, dict[str, float]]:
    """bf16 when its vectors of the probe windows are all within cosine 0.999 of float32's and it is faster
    (best of two runs after one untimed each, on ``timing_copies`` copies of the two windows); else float32.
    Returns the path and the figures behind it."""
    windows = probe_windows(int(PROBE_SECONDS * sample_rate), sample_rate)
    reference = embed(windows, Precision.FP32)
    low = embed(windows, Precision.BF16)
    cosine = float(np.min(np.sum(reference * low, axis=1)))
    report = {"bf16": cosine}
    if cosine < MIN_LOW_PRECISION_COSINE:
        return Precision.FP32, report
    timed = np.tile(windows, (timing_copies, 1))
    report["fp32 s"] = best_time(lambda: embed(timed, Precision.FP32))
    report["bf16 s"] = best_time(lambda: embed(timed, Precision.BF16))
    return (Precision.BF16 if report["bf16 s"] < report["fp32 s"] else Precision.FP32), report


def path_context(path: Precision, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """What a forward pass of the network runs under for ``path``: autocast to bfloat16 on the device for
    ``bf16``, nothing for ``fp32``."""
    if path == Precision.BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
