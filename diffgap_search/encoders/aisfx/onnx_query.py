"""An audio query on an aisfx index without torch: the network exported once to ONNX, run by ONNX Runtime.

A cold ``dgsearch query --audio`` on an aisfx index spent 2.3 s (2-core Zen 4 EPYC), of which importing torch
1.56 s and reading the checkpoint most of the rest, to embed one file. Once the network has been exported here,
a query needs numpy and ONNX Runtime alone: the log-mel in numpy (``spectrogram.log_mel``, within 2e-5 of the
torch one), the windows cut and scaled by the same code as the torch encoder's (``inputs.py``), the network an
ONNX Runtime session on the cached file.

The export is made, and checked, by the first process that loads the torch network with ``--precision auto``
and finds onnxruntime and onnx installed (usually ``dgsearch index``; ``export_checked``): the float32 network
through torch's TorchScript exporter (opset 17, batch and frames dynamic), written to a temporary name, run on
the bf16 probe's two windows (noise and a tone sweep, 3 s each), and kept only if every vector is within cosine
``MIN_LOW_PRECISION_COSINE`` (0.999) of the torch network's float32 one. The verdict is remembered in
``precision-probes.json`` as an ``auto`` choice (``dgsearch info`` lists it: ``audio query on cpu, ...: onnx``,
or ``fp32`` where the check failed and queries keep loading torch). The file is keyed by the weights' sha256,
this module's ``EXPORT_VERSION`` and the torch and onnxruntime versions, so an upgrade exports again.

Measured (2026-12-06, the 2-core Zen 4 EPYC, avx512_bf16; ``benchmarks/bench_audio_query_cold.py``, sonic-pi's
165 files indexed, 7 fresh processes each): a cold query of a 0.9 s one-shot 2.46 -> 0.80 s, of a 10.7 s loop
2.62 -> 1.07 s, of 120 s of loops 3.39 -> 3.16 s, the same top 10 in the same order each time; the export's
vectors agree with torch's float32 ones to cosine 0.9999 or closer on real recordings
(``tests/test_aisfx_onnx_query.py``). Per window ONNX Runtime is slower than the torch network (a 10 s window
137 ms against 94 ms float32 and 50 ms bf16, 2 threads): torch's import is what it saves. Hence only a process
that embeds one query file takes this path (``OnDemandAisfx``: ``dgsearch query``, and ``dgsearch similar`` of a
file the index does not hold), and only for up to ``QUERY_FRAMES`` (twelve 10 s windows, where the two were
level); indexing and ``serve`` run torch.

Imports neither torch nor onnxruntime at import; ``OnnxAisfx`` imports onnxruntime, ``export_checked`` torch.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.atomic_files import temporary_beside
from diffgap_search.encoders.aisfx.inputs import (
    BLOCK_FRAMES,
    checked_windows,
    chunks,
    input_frames,
    length_groups,
    peak_normalised,
    window_lengths,
)
from diffgap_search.encoders.aisfx.package import DIM, PREPROCESSING, embeds_own_lengths
from diffgap_search.encoders.aisfx.spectrogram import log_mel
from diffgap_search.encoders.onnx_session import cpu_session, installed_version, runtime_version
from diffgap_search.encoders.precision import (
    MIN_LOW_PRECISION_COSINE,
    Precision,
    cached_choice,
    settle_export,
)
from diffgap_search.encoders.weights.fingerprint import cache_dir

if TYPE_CHECKING:
    from torch import nn

EXPORT_VERSION = 1  # 1 (2026-12-06): the float32 AisfxNet, opset 17, input (batch, frames, 96) dynamic
INPUT_NAME = "spectrogram"
FRAMES_PER_RUN = 4 * 432  # at most this many input frames per session run (the torch encoder's CPU budget)
QUERY_FRAMES = 12 * 432  # up to twelve 10 s windows a query runs here; more load torch (module docstring)
log = logging.getLogger(__name__)


def query_key(fingerprint: str) -> str:
    """``"<sha256>|audio query|cpu|torch <ver>|ort <ver>|aisfx onnx <n>|auto"``: where the export's verdict is
    remembered (an ``auto`` choice: ``encoders/precision.remembered_paths`` shows it in ``dgsearch info``)."""
    return f"{fingerprint}|audio query|cpu|torch {installed_version('torch')}|ort {runtime_version()}|aisfx onnx {EXPORT_VERSION}|auto"


def onnx_file(fingerprint: str) -> Path:
    """Where the export of these weights lives: ``<cache_dir>/onnx/<sha256>-aisfx-x<n>-torch<v>-ort<v>.onnx``."""
    name = f"{fingerprint}-aisfx-x{EXPORT_VERSION}-torch{installed_version('torch')}-ort{runtime_version()}.onnx"
    return cache_dir() / "onnx" / name.replace("+", "_")


def open_ready(fingerprint: str, version: int) -> OnnxAisfx | None:
    """A session on the checked export of these weights (``ready_file``), or None. A file ONNX Runtime cannot
    open (damaged in the cache, a broken install) is logged and removed, so the next run that loads the torch
    network exports it again: the query goes on with torch."""
    path = ready_file(fingerprint)
    if path is None:
        return None
    try:
        return OnnxAisfx(path, version)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own classes; torch answers instead
        log.warning("aisfx: ONNX Runtime cannot open %s (%s); this query loads torch", path, error)
        path.unlink(missing_ok=True)
        return None


def ready_file(fingerprint: str) -> Path | None:
    """The checked export of these weights, when onnxruntime is installed and it was made and kept on this
    machine; else None (the caller loads the torch network)."""
    if runtime_version() is None or cached_choice(query_key(fingerprint)) != Precision.ONNX:
        return None
    path = onnx_file(fingerprint)
    return path if path.is_file() else None


def worth_it(windows: np.ndarray) -> bool:
    """Whether ``(N, S)`` windows are few enough for this path to beat loading torch: ``N`` windows of ``S``
    samples give at most ``QUERY_FRAMES`` frames of network input."""
    return windows.shape[0] * input_frames(max(1, windows.shape[1])) <= QUERY_FRAMES


class OnnxAisfx:
    """aisfx's ``embed_audio`` on an ONNX Runtime session (CPU execution provider), numpy around it.

    ``embed_audio`` takes and returns what ``AisfxEncoder.embed_audio`` does, at preprocessing ``version``."""

    def __init__(self, path: Path, version: int = PREPROCESSING["audio"], threads: int | None = None) -> None:
        self.own_lengths = embeds_own_lengths(version)
        self._session = cpu_session(path, threads)

    def embed_audio(self, windows: np.ndarray, durations_s: Sequence[float] | None = None) -> np.ndarray:
        """``(N, S) float32`` mono windows at 44.1 kHz -> ``(N, 512) float32``, unit rows; a short window (its
        ``durations_s`` below S, preprocessing version 2) from its own samples, as ``AisfxEncoder``'s."""
        batch = checked_windows(windows)
        out = np.zeros((batch.shape[0], DIM), dtype=np.float32)
        if batch.shape[0] == 0:
            return out
        if durations_s is None or not self.own_lengths:
            groups = [np.arange(batch.shape[0])]
            lengths = np.full(batch.shape[0], batch.shape[1], dtype=np.int64)
        else:
            lengths = window_lengths(durations_s, batch.shape)
            groups = length_groups(lengths)
        for rows in groups:
            out[rows] = self.embed_equal(batch[rows, : lengths[rows[0]]])
        return out

    def embed_equal(self, batch: np.ndarray) -> np.ndarray:
        """``(N, S) float32`` checked windows of one length -> ``(N, 512) float32`` unit rows."""
        per_run = max(1, FRAMES_PER_RUN // input_frames(batch.shape[1]))
        parts = [self._session.run(None, {INPUT_NAME: model_input(chunk)})[0] for chunk in chunks(batch, per_run)]
        vectors = np.concatenate(parts, axis=0).astype(np.float32, copy=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, np.float32(1e-12))


def model_input(windows: np.ndarray) -> np.ndarray:
    """``(N, S) float32`` windows -> ``(N, max(T, 100), 96) float32``: ``AisfxEncoder.model_input`` in numpy."""
    spec = log_mel(peak_normalised(windows))
    frames = spec.shape[1]
    return np.pad(spec, ((0, 0), (0, BLOCK_FRAMES - frames), (0, 0))) if frames < BLOCK_FRAMES else spec


def export_checked(net: nn.Module, fingerprint: str, reference: Callable[[np.ndarray], np.ndarray],
                   windows: np.ndarray) -> Path | None:
    """Export ``net`` (aisfx's network, weights of sha256 ``fingerprint``) here once and keep the file if it agrees
    with float32 (module docstring); the kept file's path, or None (onnx missing, the check failed now or before,
    the export itself failed).

    ``reference``: ``(N, S) float32`` windows -> ``(N, 512)`` unit rows of the torch network in float32;
    ``windows``: ``(N, S) float32`` to check on. Never raises for a failed export: queries then load torch as
    before, and the reason is logged."""
    key = query_key(fingerprint)
    target = onnx_file(fingerprint)
    remembered = cached_choice(key)
    if runtime_version() is None or importlib.util.find_spec("onnx") is None or remembered == Precision.FP32:
        return None
    if remembered == Precision.ONNX and target.is_file():
        return target
    tmp = temporary_beside(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _export(net, tmp)
        cosine = float(np.min(np.sum(reference(windows) * OnnxAisfx(tmp).embed_equal(windows), axis=1)))
    except Exception as error:  # noqa: BLE001 - an optional speed-up: any failure leaves queries on torch
        log.warning("aisfx: the ONNX export for queries failed (%s); audio queries load torch", error)
        return settle_export(key, tmp, target, kept=False)
    kept = cosine >= MIN_LOW_PRECISION_COSINE
    if not kept:
        log.warning("aisfx: the ONNX export's vectors are at cosine %.6f of float32's; audio queries load torch", cosine)
    return settle_export(key, tmp, target, kept)


def _export(net: nn.Module, path: Path) -> None:
    """The float32 network (a CPU copy in the default layout) to ``path``, batch and frames dynamic."""
    import copy
    import warnings

    import torch

    net = copy.deepcopy(net).to(device="cpu", dtype=torch.float32, memory_format=torch.contiguous_format)
    example = torch.zeros(1, 2 * BLOCK_FRAMES, 96)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net.eval(), (example,), str(path), input_names=[INPUT_NAME], output_names=["embedding"],
                          dynamic_axes={INPUT_NAME: {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)

