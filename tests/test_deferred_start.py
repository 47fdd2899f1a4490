"""A CLAP encoder whose audio tower runs from a cached ONNX file starts without its torch model
(``encoders/clap/deferred.py``) and is the same encoder: the same numbers, the same vectors bit for bit, the
model loaded on first need (text), never before; a fresh process embeds audio without importing transformers.

Tiny CLAP (seed 0) in today's layout and the default model as LAION published it (pickled weights, 2023
config); the other published variants in the slow suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixtures_published import CLAP_DEFAULT, CLAP_VARIANTS, publish_clap

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.clap import fast_paths
from diffgap_search.encoders.clap.deferred import ModelNumbers
from diffgap_search.encoders.clap.path_choice import choice_key
from diffgap_search.encoders.precision import remember_verdict
from diffgap_search.encoders.loading import load_encoder

pytestmark = pytest.mark.skipif(not fast_paths.onnx_available(), reason="onnxruntime not installed (the onnx extra)")
SAME = ("dim", "sample_rate", "window_samples", "input_samples", "text_max_tokens", "mel_channels", "fingerprint",
        "preprocessing", "int16_round_trip")
TEXTS = ["a dog barking", "rain on a tin roof"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh dgsearch cache: no remembered choice, no ONNX export."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


def _windows() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((3, 480_000))).astype(np.float32)


def _encoder(model_dir: Path, precision: str) -> Any:
    return load_encoder(EncoderConfig(model=str(model_dir), device="cpu", batch_size=2, precision=precision),
                        progress=False)


def _same_encoder(model_dir: Path, precision: str = "onnx-int8") -> None:
    eager = _encoder(model_dir, precision)  # no export in the cache yet: loads everything, then exports
    assert eager.model_loaded
    audio, text = eager.embed_audio(_windows()), eager.embed_text(TEXTS)
    deferred = _encoder(model_dir, precision)
    assert not deferred.model_loaded
    assert {n: getattr(deferred, n) for n in SAME} == {n: getattr(eager, n) for n in SAME}
    assert deferred.audio_tower_size() == eager.audio_tower_size()  # from the headers vs the state dict
    np.testing.assert_array_equal(deferred.embed_audio(_windows()), audio)
    assert not deferred.model_loaded and deferred.audio_path == eager.audio_path == precision
    np.testing.assert_array_equal(deferred.embed_text(TEXTS), text)  # text needs the model: loaded now
    assert deferred.model_loaded


def test_a_cached_onnx_export_starts_without_the_model_and_gives_the_same_vectors(tiny_clap_dir: Path,
                                                                                   cache: Path) -> None:
    _same_encoder(tiny_clap_dir)


def test_the_default_model_as_published_starts_deferred_too(tmp_path: Path, cache: Path) -> None:
    folder = publish_clap(tmp_path / "repo", CLAP_VARIANTS[CLAP_DEFAULT])  # pytorch_model.bin only
    _same_encoder(folder, "onnx")


@pytest.mark.slow
@pytest.mark.parametrize("repo", [r for r in CLAP_VARIANTS if r != CLAP_DEFAULT])
def test_every_published_variant_starts_deferred(tmp_path: Path, cache: Path, repo: str) -> None:
    _same_encoder(publish_clap(tmp_path / "repo", CLAP_VARIANTS[repo]))


def test_auto_starts_deferred_only_with_a_remembered_onnx_path_whose_export_exists(tiny_clap_dir: Path,
                                                                                   cache: Path) -> None:
    reference = _encoder(tiny_clap_dir, "onnx")
    vectors = reference.embed_audio(_windows())  # writes the float32 export
    key = choice_key(reference.fingerprint, torch.device("cpu"), "audio")
    assert _encoder(tiny_clap_dir, "auto").model_loaded  # nothing remembered yet
    remember_verdict(key, "onnx-int8")
    assert _encoder(tiny_clap_dir, "auto").model_loaded  # remembered, but its export is not written
    remember_verdict(key, "onnx")
    encoder = _encoder(tiny_clap_dir, "auto")
    encoder.min_params_for_lowp = 0  # the tiny tower is treated as a full-size one would be
    assert not encoder.model_loaded
    np.testing.assert_array_equal(encoder.embed_audio(_windows()), vectors)
    assert encoder.audio_path == "onnx" and not encoder.model_loaded
    small = _encoder(tiny_clap_dir, "auto")  # the same remembered choice, but the tower is below the bar:
    assert not small.model_loaded
    small.embed_audio(_windows())
    assert small.audio_path == "fp32" and small.model_loaded  # float32, as an eager start chooses


def test_model_numbers_from_config_json_equal_transformers_config(tiny_clap_dir: Path, tmp_path: Path) -> None:
    from transformers import ClapConfig

    published = publish_clap(tmp_path / "repo", CLAP_VARIANTS["laion/clap-htsat-fused"])
    for folder in (tiny_clap_dir, published):
        assert ModelNumbers.of_folder(folder) == ModelNumbers.of_config(ClapConfig.from_pretrained(str(folder)))
    sparse = tmp_path / "sparse"  # a config.json silent on all four: ClapConfig's defaults
    sparse.mkdir()
    (sparse / "config.json").write_text(json.dumps({"model_type": "clap", "text_config": {}, "audio_config": {}}))
    assert ModelNumbers.of_folder(sparse) == ModelNumbers.of_config(ClapConfig.from_pretrained(str(sparse)))


def test_a_fresh_process_embeds_audio_without_importing_transformers(tiny_clap_dir: Path, cache: Path) -> None:
    vectors = _encoder(tiny_clap_dir, "onnx-int8").embed_audio(_windows())
    script = (
        "import sys, numpy as np\n"
        "from diffgap_search.config import EncoderConfig\n"
        "from diffgap_search.encoders.loading import load_encoder\n"
        f"e = load_encoder(EncoderConfig(model={str(tiny_clap_dir)!r}, device='cpu', batch_size=2,"
        " precision='onnx-int8'), progress=False)\n"
        "rng = np.random.default_rng(0)\n"
        "v = e.embed_audio((0.1 * rng.standard_normal((3, 480_000))).astype(np.float32))\n"
        f"np.save({str(cache / 'v.npy')!r}, v)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'), e.model_loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DGSEARCH_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] False"
    np.testing.assert_array_equal(np.load(cache / "v.npy"), vectors)
