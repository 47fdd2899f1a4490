"""Which precision path a ``ClapEncoder``'s audio tower takes (``precision.Precision``), and its runner.

Forced paths are used as asked. ``auto`` takes a path remembered for these weights on this machine, else
probes: every candidate this device runs natively (bf16 where native; on the CPU torch ``int8``, and
``onnx-int8`` and ``onnx`` where onnxruntime is installed) embeds two fixed probe windows; a candidate whose
vectors fall below cosine ``MIN_LOW_PRECISION_COSINE`` (0.999) to float32's on either window is rejected; of
float32 and the accepted ones, the fastest on the probe batch (best of two timed runs; on a GPU the batch is
repeated to the encoder's batch size and each run waited for) wins, and is
remembered under the weights, tower, device type, torch build and CPU capability, onnxruntime's version and
``PATHS_VERSION`` (``precision.py``). Each path is judged with the features it runs on (float32's with the float64
STFT, the others with the float32 one: ``ClapEncoder.stft_dtype``). Towers below ``encoder.min_params_for_lowp``
parameters stay in float32 (nothing to gain).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch

from diffgap_search.encoders.clap import fast_paths
from diffgap_search.encoders.clap.batches import probe_windows, unit_rows
from diffgap_search.encoders.clap.fast_paths import Runner
from diffgap_search.encoders.precision import (
    CPU_ONLY, MIN_LOW_PRECISION_COSINE, PATHS_VERSION, Precision, cached_choice, remember_verdict,
)
from diffgap_search.encoders.runtime import native_bf16
from diffgap_search.errors import ModelUnavailableError, UsageError
from diffgap_search.notices import notice



class ClapEncoder(Protocol):
    """What this module reads of an ``encoder.ClapEncoder`` (a protocol: that module imports this one)."""

    model: Any
    fingerprint: str
    device: torch.device
    precision: Precision
    window_samples: int
    sample_rate: int
    batch_size: int
    min_params_for_lowp: int
    probe_report: dict[str, float]

    def audio_tower_size(self) -> int: ...

    def _features(self, windows: np.ndarray, stft_dtype: torch.dtype | None = None) -> torch.Tensor: ...

    def _low_precision_agrees(self, tower: str, agreement: Callable[[], float]) -> bool: ...


def base_key(encoder: ClapEncoder, tower: str) -> str:
    """``"<weights sha256>|<tower>|<device type>|torch <ver>"``: the bf16 verdict's key, the others' stem."""
    return weights_key(encoder.fingerprint, encoder.device, tower)


def weights_key(fingerprint: str, device: torch.device, tower: str) -> str:
    """``base_key`` from the weights' sha256 and the device alone (no encoder built yet)."""
    return f"{fingerprint}|{tower}|{device.type}|torch {torch.__version__}"


def runtime_stamp() -> str:
    """``"ort <onnxruntime version, or none>, paths <PATHS_VERSION>"``: the part of a remembered ``auto``
    choice's key that changes with onnxruntime and with the paths themselves (their versions probe again)."""
    return f"ort {fast_paths.onnx_runtime_version() or 'none'}, paths {PATHS_VERSION}"


def auto_key(encoder: ClapEncoder, tower: str) -> str:
    """The key of ``auto``'s remembered choice: the stem, torch's CPU capability, ``runtime_stamp``."""
    return choice_key(encoder.fingerprint, encoder.device, tower)


def choice_key(fingerprint: str, device: torch.device, tower: str) -> str:
    """``auto_key`` from the weights' sha256 and the device alone (no encoder built yet)."""
    return f"{weights_key(fingerprint, device, tower)}|{device_capability(device)}|{runtime_stamp()}|auto"


def device_capability(device: torch.device) -> str:
    """The part of a remembered ``auto`` choice's key that names what the device can run: torch's CPU
    capability (``AVX2``, ``AVX512``, ...) on the CPU; ``"<type> synced"`` on a GPU (its choices are keyed apart
    from those made before its probe timed synchronised, full batches)."""
    return torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else f"{device.type} synced"


def ready_onnx_path(fingerprint: str, device: torch.device, precision: Precision) -> Precision | None:
    """The ONNX path the audio tower of these weights will take on ``device``, when its runner needs nothing
    but the exported file: ``precision`` forces an ONNX path, or ``auto`` remembers one for this machine,
    and that path's export is in the cache. None otherwise (the path needs the torch model: float32, bf16,
    torch int8, a probe, or an export still to write). ``deferred.py`` starts an encoder without its model
    then."""
    if device.type != "cpu" or not fast_paths.onnx_available():
        return None
    if precision == Precision.AUTO:
        remembered = cached_choice(choice_key(fingerprint, device, "audio"))
        path = Precision(remembered) if remembered is not None else None
    else:
        path = precision
    if path not in (Precision.ONNX, Precision.ONNX_INT8):
        return None
    return path if fast_paths.onnx_file(fingerprint, "audio", path == Precision.ONNX_INT8).is_file() else None


def auto_candidates(encoder: ClapEncoder) -> list[Precision]:
    """The paths ``auto`` tries on the audio tower, fastest expected first (float32 is always the fallback)."""
    if encoder.audio_tower_size() < encoder.min_params_for_lowp:
        return []
    out = [Precision.BF16] if native_bf16(encoder.device) else []
    if encoder.device.type == "cpu":
        out.append(Precision.INT8)
        if fast_paths.onnx_available():
            out += [Precision.ONNX_INT8, Precision.ONNX]
    return out


def audio_runner(encoder: ClapEncoder, path: Precision, example: torch.Tensor | None = None) -> Runner:
    """The runner of ``path`` for the encoder's audio tower. Raises UsageError for a CPU-only path on a GPU,
    ModelUnavailableError for an ONNX path without onnxruntime."""
    if path in CPU_ONLY and encoder.device.type != "cpu":
        raise UsageError(f"precision '{path}' runs on the CPU only: use --device cpu, or --precision auto")
    if path == Precision.FP32:
        return fast_paths.fp32_runner(encoder.model)
    if path == Precision.BF16:
        return fast_paths.bf16_runner(encoder.model)
    if path == Precision.INT8:
        return fast_paths.torch_int8_runner(encoder.model)
    if not fast_paths.onnx_available():
        raise ModelUnavailableError(
            f"precision '{path}' needs ONNX Runtime, which is not installed: "
            "pip install 'diffgap-search[onnx]' (or use --precision auto)"
        )
    file = fast_paths.onnx_file(encoder.fingerprint, "audio", path == Precision.ONNX_INT8)
    if not file.is_file():  # exported once per weights and versions; a cold process only opens the file
        if example is None:
            example = encoder._features(probe_windows(encoder.window_samples, encoder.sample_rate)[:1])
        file = fast_paths.export_audio_onnx(encoder.model, encoder.fingerprint, example, path == Precision.ONNX_INT8)
    return fast_paths.onnx_runner(file)


def choose_audio_path(encoder: ClapEncoder) -> tuple[Precision, Runner]:
    """The audio tower's path and runner for ``encoder.precision`` (see the module's docstring)."""
    if encoder.precision != Precision.AUTO:
        return encoder.precision, audio_runner(encoder, encoder.precision)
    candidates = auto_candidates(encoder)
    if not candidates:
        return Precision.FP32, audio_runner(encoder, Precision.FP32)
    key = auto_key(encoder, "audio")
    remembered = cached_choice(key)
    if remembered is not None and (remembered == Precision.FP32 or remembered in candidates):
        path = Precision(remembered)
        return path, audio_runner(encoder, path)  # a remembered ONNX path never touches the torch model
    notice("CLAP, first use on this machine: timing the audio tower's precision paths against float32 and keeping"
           f" the fastest that agrees ({', '.join(candidates)}), once (about 10 s on 2 cores)")
    path, run = probe_paths(encoder, audio_runner(encoder, Precision.FP32), candidates)
    remember_verdict(key, str(path))
    return path, run


def agreement(reference: np.ndarray, run: Runner, features: torch.Tensor) -> float:
    """The lowest cosine between ``run``'s unit rows and ``reference``'s (``(B, D) float32`` unit rows)."""
    with torch.inference_mode():
        rows = unit_rows(run(features))
    return float(np.min(np.sum(reference * rows, axis=1)))


def best_time(call: Callable[[], object], repeats: int = 2) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``call`` (after one untimed call), in inference mode. Where
    CUDA is in use each call is waited for (its kernels run asynchronously: unsynchronised, a GPU path's time is
    its launches'); the audio and the text probes both time through here."""

    def run() -> None:
        call()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    best = float("inf")
    with torch.inference_mode():
        run()
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    return best


def timing_batch(encoder: ClapEncoder, features: torch.Tensor) -> torch.Tensor:
    """The features a path is timed on: the probe's own on the CPU, where time grows with the batch; on a GPU
    they are repeated up to the encoder's batch size, since at two windows every path runs launch-bound and
    takes the same time (measured on an H200: ``auto`` kept fp32 there)."""
    if encoder.device.type == "cpu" or encoder.batch_size <= len(features):
        return features
    reps = -(-encoder.batch_size // len(features))
    return features.repeat(reps, *([1] * (features.dim() - 1)))[: encoder.batch_size]


def probe_paths(encoder: ClapEncoder, exact: Runner, candidates: list[Precision]) -> tuple[Precision, Runner]:
    """Probe ``candidates`` against float32 on the fixed windows; the fastest agreeing path (or float32).

    Each path is judged end to end as it would run: float32 with the float64 STFT, every candidate with the
    float32 STFT it takes (``ClapEncoder.stft_dtype``); a path's time is its tower's alone."""
    windows = probe_windows(encoder.window_samples, encoder.sample_rate)
    features = encoder._features(windows, torch.float64)
    lowp_features = encoder._features(windows, torch.float32)
    with torch.inference_mode():
        reference = unit_rows(exact(features))
    best: tuple[float, Precision, Runner] = (best_time(partial(exact, timing_batch(encoder, features))),
                                             Precision.FP32, exact)
    for path in candidates:
        try:
            run = audio_runner(encoder, path, lowp_features[:1])
        except Exception as error:  # noqa: BLE001 - a path that cannot be built here is skipped, said once
            print(f"precision probe: skipping {path} ({type(error).__name__}: {error})", file=sys.stderr)
            continue
        cosine = agreement(reference, run, lowp_features)
        if path == Precision.BF16:  # the bf16 verdict keeps its old key (and a remembered one still counts)
            ok = encoder._low_precision_agrees("audio", lambda: cosine)
        else:
            ok = cosine >= MIN_LOW_PRECISION_COSINE
            remember_verdict(f"{base_key(encoder, 'audio')}|{path}", ok)
        encoder.probe_report[str(path)] = cosine
        if ok:
            seconds = best_time(partial(run, timing_batch(encoder, lowp_features)))
            if seconds < best[0]:
                best = (seconds, path, run)
    return best[1], best[2]
