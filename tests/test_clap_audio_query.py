"""An audio query on a CLAP index without torch (``encoders/clap/audio_query.py``): numpy's log-mel equals the
torch one that feeds the ONNX paths, the file ``auto`` runs is recorded for queries once its vectors agree, and a
real ``dgsearch query --audio`` process then imports no torch and finds the torch path's hits. Tiny CLAP models,
random seeded weights; real recordings (Debian's CC0 sonic-pi samples) for the features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from query_process import query_process
from real_sounds import SAMPLES_DIR
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.clap.audio_query import NumpyLogMel, OnnxClapAudio, query_key, ready_audio_file
from diffgap_search.encoders.clap.feature_settings import FeatureSettings
from diffgap_search.encoders.clap.features import TorchLogMel
from diffgap_search.encoders.clap.path_choice import choice_key
from diffgap_search.encoders.clap.record import ClapRecord
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.precision import FILE_NAME, remember_verdict
from diffgap_search.media.audio import load_audio

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'diffgap-search[onnx]'")
pytest.importorskip("onnx", reason="the onnx extra: pip install 'diffgap-search[onnx]'")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clips"
HUB_SETTINGS = {"feature_size": 64, "sampling_rate": 48_000, "hop_length": 480, "max_length_s": 10,
                "fft_window_size": 1024, "frequency_min": 50, "frequency_max": 14_000}  # laion/clap-htsat-*


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_numpy_log_mel_equals_the_float32_torch_one_on_real_recordings(truncation: str) -> None:
    paths = sorted(SAMPLES_DIR.glob("*.flac"))[::11][:12]
    if len(paths) < 12:
        pytest.skip(f"real recordings absent: {SAMPLES_DIR} (apt-get install sonic-pi-samples)")
    settings = FeatureSettings({**HUB_SETTINGS, "truncation": truncation})
    windows = np.stack([np.resize(load_audio(path, 48_000), 480_000) for path in paths]).astype(np.float32)
    channels = 4 if truncation == "fusion" else 1
    ours = NumpyLogMel(settings, channels)(windows)
    theirs = TorchLogMel(settings, channels=channels)(windows, torch.float32)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (12, channels, 1001, 64)
    difference = np.abs(ours - theirs)  # dB; measured max 0.12-0.16 (near the -100 dB floor), mean 2e-4
    assert difference.max() <= 0.3 and difference.mean() <= 1e-3


def _auto_on_onnx(folder: Path) -> Any:
    """An ``auto`` encoder of ``folder`` whose remembered audio path is ``onnx`` (its export written by a forced
    one first), the tiny tower treated as a full-size one; its first window records the file for queries."""
    forced = load_encoder(EncoderConfig(model=str(folder), device="cpu", precision="onnx"), progress=False)
    forced.embed_audio(np.zeros((1, forced.window_samples), np.float32))
    remember_verdict(choice_key(forced.fingerprint, torch.device("cpu"), "audio"), "onnx")
    encoder = load_encoder(EncoderConfig(model=str(folder), device="cpu"), progress=False)
    encoder.min_params_for_lowp = 0
    return encoder


def _windows(n: int = 3) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal((n, 480_000))).astype(np.float32)


def test_an_onnx_path_under_auto_is_recorded_and_a_query_record_embeds_with_it(tiny_clap_dir: Path,
                                                                               cache: Path) -> None:
    encoder = _auto_on_onnx(tiny_clap_dir)
    assert ready_audio_file(encoder.fingerprint) is None  # nothing recorded before the path is taken
    vectors = encoder.embed_audio(_windows())
    assert encoder.audio_path == "onnx"
    assert json.loads((cache / FILE_NAME).read_text())[query_key(encoder.fingerprint)] == "onnx"
    recorded = ready_audio_file(encoder.fingerprint)
    assert recorded is not None and recorded.name.startswith(f"{encoder.fingerprint}-audio-x")
    query = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu"), progress=False, audio_on_demand=True)
    assert isinstance(query, ClapRecord) and isinstance(query.audio_runner, OnnxClapAudio)
    ours = query.embed_audio(_windows())
    assert not query.model_loaded and ours.shape == vectors.shape and ours.dtype == np.float32
    assert np.min(np.sum(ours * vectors, axis=1)) >= 0.9999
    assert query.embed_audio(_windows(0)).shape == (0, encoder.dim)
    with pytest.raises(ValueError, match="windows"):
        query.embed_audio(np.zeros((1, 1000), np.float32))


def test_forced_paths_and_fp32_record_nothing(tiny_clap_dir: Path, cache: Path) -> None:
    forced = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu", precision="onnx"), progress=False)
    forced.embed_audio(_windows(1))
    auto = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu"), progress=False)
    auto.embed_audio(_windows(1))  # a tiny tower under auto: float32
    assert auto.audio_path == "fp32" and ready_audio_file(auto.fingerprint) is None
    assert query_key(auto.fingerprint) not in json.loads((cache / FILE_NAME).read_text())


def test_an_audio_query_process_imports_no_torch(tiny_clap_dir: Path, tmp_path: Path, cache: Path) -> None:
    index = tmp_path / "ix"
    done = CliRunner().invoke(app, ["index", str(EXAMPLES), "--index", str(index), "--model", str(tiny_clap_dir),
                                    "--no-frames", "--workers", "0"])
    assert done.exit_code == 0, done.output
    _auto_on_onnx(tiny_clap_dir).embed_audio(_windows(1))  # this machine's auto path: onnx, recorded
    snare = str(EXAMPLES / "snare.ogg")
    onnx_hits, onnx_torch = query_process(index, cache, "query", "--audio", snare)
    torch_hits, torch_torch = query_process(index, cache, "query", "--audio", snare, "--precision", "onnx")
    assert (onnx_torch, torch_torch) == ([False], [True])  # forced onnx: the same file, through torch
    assert len(onnx_hits) == 3 and [n for n, _ in onnx_hits] == [n for n, _ in torch_hits]
    np.testing.assert_allclose([s for _, s in onnx_hits], [s for _, s in torch_hits], atol=1e-3)
    summary = json.loads(CliRunner().invoke(app, ["info", "--index", str(index), "--json"]).stdout)["summary"]
    assert "audio query on cpu, torch " in summary["precision path"]
    assert ", clap audio onnx 1: onnx" in summary["precision path"]


def test_a_file_whose_numpy_path_disagrees_is_refused_and_not_tried_again(tiny_clap_dir: Path, tmp_path: Path,
                                                                         cache: Path) -> None:
    """A real disagreement: the recorded file checked against another model's vectors (seed 1)."""
    from fixtures_models import make_tiny_clap

    from diffgap_search.encoders.clap import fast_paths
    from diffgap_search.encoders.clap.audio_query import remember_for_queries
    from diffgap_search.encoders.precision import Precision
    from diffgap_search.encoders.weights.layout import processor_settings

    other = load_encoder(EncoderConfig(model=str(make_tiny_clap(tmp_path / "other", seed=1)), device="cpu",
                                       precision="fp32"), progress=False)
    encoder = _auto_on_onnx(tiny_clap_dir)  # its float32 ONNX file written, nothing recorded yet
    onnx_file = fast_paths.onnx_file(encoder.fingerprint, "audio", quantized=False)
    settings = FeatureSettings(processor_settings(tiny_clap_dir, "clap"))
    assert not remember_for_queries(encoder.fingerprint, Precision.ONNX, onnx_file, settings, 1, other.embed_audio,
                                    _windows(2))
    assert json.loads((cache / FILE_NAME).read_text())[query_key(encoder.fingerprint)] == "fp32"
    assert ready_audio_file(encoder.fingerprint) is None
    assert not remember_for_queries(encoder.fingerprint, Precision.ONNX, onnx_file, settings, 1,
                                    lambda w: encoder._forward_audio(encoder._features(w)), _windows(2))
    assert ready_audio_file(encoder.fingerprint) is None  # the verdict stands under these versions
