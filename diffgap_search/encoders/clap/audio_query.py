"""An audio query on a CLAP index without torch, where ``auto`` runs the audio tower from an ONNX file.

On a CPU without native bfloat16 (AVX2 laptops, AVX-512 EPYCs) ``auto`` takes ``onnx`` or ``onnx-int8`` for the
audio tower, and a cold ``dgsearch query --audio FILE`` started the encoder deferred (``deferred.py``): no
transformers, but torch's import (1.2-1.9 s of a 3-4 s query on 2 cores) for the log-mel and the tensors around
the ONNX Runtime session. Here the log-mel is numpy (``NumpyLogMel``: ``features.TorchLogMel`` with the float32
STFT that every path but ``fp32`` feeds its tower) and the session is opened on the same file.

What a torch-free process cannot compute is which file ``auto`` chose: its choice is keyed by torch's CPU
capability, and the int8 file's name by whether this CPU's int8 products saturate (both asked of torch). So the
torch process that takes the ONNX path under ``auto`` (``ClapEncoder._choose_audio_dtype``) writes it down for
queries: ``remember_for_queries`` checks, on the bf16 probe's windows, that numpy's features through a session
on the file give the torch path's vectors within cosine 0.999, and then records the path under a key of versions
alone (``dgsearch info``: ``audio query on cpu, ..., clap audio onnx 1: onnx-int8``) and the file's name beside the
exports (``<cache>/onnx/<sha256>-audio-query.json``).

Imports neither torch nor onnxruntime at import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.atomic_files import write_text
from diffgap_search.encoders.clap.feature_settings import FeatureSettings, periodic_hann
from diffgap_search.encoders.onnx_session import cpu_session, installed_version, runtime_version
from diffgap_search.encoders.precision import MIN_LOW_PRECISION_COSINE, Precision, cached_choice, remember_verdict
from diffgap_search.encoders.weights.fingerprint import cache_dir

QUERY_VERSION = 1  # 1 (2026-12-06): NumpyLogMel (float32 STFT) into the audio tower's ONNX file
ONNX_PATHS = (Precision.ONNX, Precision.ONNX_INT8)
MEL_FLOOR = 1e-10  # as features.MEL_FLOOR
DB_MIN_VALUE = 1e-10  # as features.DB_MIN_VALUE
INPUT_NAME = "input_features"  # as fast_paths.INPUT_NAME
log = logging.getLogger(__name__)


class NumpyLogMel:
    """``features.TorchLogMel`` with ``stft_dtype=torch.float32``, in numpy: ``(B, S) float32`` windows, S ==
    ``nb_max_samples`` -> ``(B, C, T, M) float32`` (centred reflect-padded STFT, periodic Hann, power, the
    extractor's mel bank, ``10·log10`` dB)."""

    def __init__(self, settings: FeatureSettings, channels: int) -> None:
        if settings.truncation not in ("rand_trunc", "fusion"):
            raise ValueError(f"unsupported truncation {settings.truncation!r}")
        self.n_fft, self.hop, self.samples = settings.fft_window_size, settings.hop_length, settings.nb_max_samples
        self.channels = channels
        bank = settings.mel_filters if settings.truncation == "fusion" else settings.mel_filters_slaney
        self.filters = np.ascontiguousarray(bank, dtype=np.float32)  # (freq, mel)
        self.window = periodic_hann(self.n_fft).astype(np.float32)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(windows, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.samples:
            raise ValueError(f"expected (B, {self.samples}) windows, got {tuple(batch.shape)}")
        half = self.n_fft // 2
        padded = np.pad(batch, ((0, 0), (half, half)), mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=1)[:, :: self.hop]
        spec = np.fft.rfft(frames * self.window, axis=-1).astype(np.complex64)  # (B, T, freq)
        power = spec.real**2 + spec.imag**2
        mel = np.maximum(power @ self.filters, np.float32(MEL_FLOOR))  # (B, T, mel)
        db = np.float32(10.0) * np.log10(np.maximum(mel, np.float32(DB_MIN_VALUE)))
        out = db.astype(np.float32, copy=False)[:, None]
        return np.ascontiguousarray(np.repeat(out, self.channels, axis=1) if self.channels > 1 else out)


class OnnxClapAudio:
    """CLAP's ``embed_audio`` on an ONNX Runtime session of the audio tower's export, numpy features in front."""

    def __init__(self, path: Path, settings: FeatureSettings, channels: int, batch_size: int = 16) -> None:
        self.log_mel, self.batch_size = NumpyLogMel(settings, channels), batch_size
        self._session = cpu_session(path)
        width = self._session.get_outputs()[0].shape[-1]
        self.dim = width if isinstance(width, int) else 0  # the projection's size (static in the export)

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """``(N, S) float32`` windows, S == ``nb_max_samples`` -> ``(N, D) float32`` unit rows. ValueError for
        another shape or NaN/inf samples (``ClapEncoder.embed_audio``'s checks)."""
        batch = np.asarray(windows, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.log_mel.samples:
            raise ValueError(f"expected (N, {self.log_mel.samples}) windows, got an array of shape {batch.shape}")
        if not np.isfinite(batch).all():
            raise ValueError("windows contain NaN or infinite samples")
        parts = [self._session.run(None, {INPUT_NAME: self.log_mel(batch[lo : lo + self.batch_size])})[0]
                 for lo in range(0, len(batch), self.batch_size)]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.float32(1e-12))


def query_key(fingerprint: str) -> str:
    """``"<sha256>|audio query|cpu|torch <v>|tf <v>, ort <v>|clap audio onnx <n>|auto"`` (seven parts: an
    ``auto`` choice ``dgsearch info`` lists)."""
    versions = f"torch {installed_version('torch')}|tf {installed_version('transformers')}, ort {runtime_version()}"
    return f"{fingerprint}|audio query|cpu|{versions}|clap audio onnx {QUERY_VERSION}|auto"


def _sidecar(fingerprint: str) -> Path:
    return cache_dir() / "onnx" / f"{fingerprint}-audio-query.json"


def remember_for_queries(fingerprint: str, path: Precision, onnx_file: Path, settings: FeatureSettings,
                         channels: int, reference: Callable[[np.ndarray], np.ndarray], windows: np.ndarray) -> bool:
    """Record ``onnx_file`` (the export ``auto``'s ``path`` runs) for torch-free audio queries, once its vectors
    from numpy's features agree with ``reference`` (the torch path's unit rows) within cosine 0.999 on
    ``windows``. Returns whether it is recorded; a failure is logged and remembered as ``fp32`` (not tried again
    under these versions)."""
    key = query_key(fingerprint)
    remembered = cached_choice(key)
    if remembered == Precision.FP32:  # checked before and refused under these versions: not at every load
        return False
    if remembered == path and _recorded_file(fingerprint) == onnx_file:
        return True
    try:
        ours = OnnxClapAudio(onnx_file, settings, channels).embed_audio(windows)
        cosine = float(np.min(np.sum(ours * reference(windows), axis=1)))
        agrees = cosine >= MIN_LOW_PRECISION_COSINE
        if agrees:
            _sidecar(fingerprint).parent.mkdir(parents=True, exist_ok=True)
            write_text(_sidecar(fingerprint), json.dumps({"file": onnx_file.name, "path": str(path)}))
    except Exception as error:  # noqa: BLE001 - an optional speed-up: any failure leaves audio queries on torch
        log.warning("CLAP: the audio tower's ONNX file cannot serve queries without torch (%s)", error)
        agrees = False
    remember_verdict(key, str(path) if agrees else str(Precision.FP32))
    return agrees


def _recorded_file(fingerprint: str) -> Path | None:
    try:
        name = json.loads(_sidecar(fingerprint).read_text(encoding="utf-8"))["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    path = cache_dir() / "onnx" / str(name)
    return path if path.parent == cache_dir() / "onnx" and path.is_file() else None


def ready_audio_file(fingerprint: str) -> Path | None:
    """The audio tower's file recorded for queries (``remember_for_queries``) under these versions, when
    onnxruntime is here and the file is; else None. Opens nothing."""
    if runtime_version() is None or cached_choice(query_key(fingerprint)) not in ONNX_PATHS:
        return None
    return _recorded_file(fingerprint)


def open_ready_audio(fingerprint: str, settings: FeatureSettings, channels: int,
                     batch_size: int = 16) -> OnnxClapAudio | None:
    """A session on ``ready_audio_file``'s file, or None. A file ONNX Runtime cannot open is logged and its record
    removed (the next run that takes the path records it again)."""
    path = ready_audio_file(fingerprint)
    if path is None:
        return None
    try:
        return OnnxClapAudio(path, settings, channels, batch_size)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own classes
        log.warning("CLAP: ONNX Runtime cannot open %s (%s); this query loads torch", path, error)
        _sidecar(fingerprint).unlink(missing_ok=True)
        return None


def record_encoder_path(encoder: Any) -> None:
    """After ``encoder`` (a ``ClapEncoder`` with ``precision`` auto, on the CPU) chose its audio path: where it is
    an ONNX one, record its file for torch-free audio queries (``remember_for_queries``; a no-op once recorded).
    LAION ``.pt`` checkpoints (whose windows take an int16 round trip first) are left out."""
    if not (encoder.precision == Precision.AUTO and encoder.audio_path in ONNX_PATHS and encoder.device.type == "cpu"
            and not encoder.int16_round_trip):
        return
    from diffgap_search.encoders.clap import fast_paths
    from diffgap_search.encoders.clap.batches import probe_windows

    onnx_file = fast_paths.onnx_file(encoder.fingerprint, "audio", encoder.audio_path == Precision.ONNX_INT8)
    windows = probe_windows(encoder.window_samples, encoder.sample_rate)
    remember_for_queries(encoder.fingerprint, encoder.audio_path, onnx_file, encoder._feature_extractor,
                         encoder.mel_channels, lambda w: encoder._forward_audio(encoder._features(w)), windows)
