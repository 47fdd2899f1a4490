"""load_encoder: local folders, the hub download path against a loopback server, offline mode, errors.

The hub tests run ``load_encoder`` in a subprocess: huggingface_hub reads HF_ENDPOINT, HF_HOME and
HF_HUB_OFFLINE when it is imported, so a fresh interpreter with its own environment is the honest test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_models import make_tiny_clap
from hub_server import HubServer, free_port

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.weights.fingerprint import config_dim, file_sha256, weights_fingerprint
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.weights.source import is_local_reference
from diffgap_search.errors import ModelUnavailableError, UsageError

REPO = "tiny/clap"
LOCAL_HINT = "pass --model DIR with a local copy (config.json, the weights, tokenizer and preprocessor files)"
LAYOUT_HINT = (
    "a model directory must hold config.json, the weights (model.safetensors or pytorch_model.bin), the "
    "tokenizer files (tokenizer.json, or vocab.json and merges.txt) and preprocessor_config.json (or "
    "processor_config.json), as written by save_pretrained"
)
TEXTS = ["dog barking", "rain on a window"]

# Runs in a fresh interpreter: load, embed fixed inputs, save them; or print the error and exit 3.
_SCRIPT = """
import sys, numpy as np
from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.errors import ModelUnavailableError
try:
    enc = load_encoder(EncoderConfig(model=sys.argv[1], device="cpu"))
except ModelUnavailableError as error:
    print(error)
    print("torch imported:", "torch" in sys.modules)
    raise SystemExit(3)
rng = np.random.default_rng(0)
windows = (0.1 * rng.standard_normal((2, enc.window_samples))).astype(np.float32)
np.savez(sys.argv[2], audio=enc.embed_audio(windows), text=enc.embed_text(%r))
print(enc.fingerprint)
""" % (TEXTS,)


def _run(model: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, model, str(out)], env=env, capture_output=True, text=True, timeout=120
    )


def _hub_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        DGSEARCH_CACHE_DIR=str(tmp_path / "dgsearch-cache"),
        TOKENIZERS_PARALLELISM="false",
        **extra,
    )
    return env


def _local_embeddings(encoder: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    windows = (0.1 * rng.standard_normal((2, encoder.window_samples))).astype(np.float32)
    return encoder.embed_audio(windows), encoder.embed_text(TEXTS)


def test_hub_download_then_offline_cache(
    tmp_path: Path, tiny_clap_dir: Path, tiny_encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_dir = tmp_path / "repo"
    shutil.copytree(tiny_clap_dir, repo_dir)
    (repo_dir / "pytorch_model.bin").write_bytes(b"pickles must never be fetched")
    audio, text = _local_embeddings(tiny_encoder)

    with HubServer({REPO: repo_dir}) as server:
        online = _run(REPO, tmp_path / "online.npz", _hub_env(tmp_path, server.url))
        requested = [path for _, path in server.requests]
    assert online.returncode == 0, online.stdout + online.stderr
    assert online.stdout.strip() == tiny_encoder.fingerprint
    # stderr is not a terminal: one line when the weights start and one when they are done, no bar codes.
    assert re.fullmatch(r"downloading tiny/clap: model\.safetensors \(157\.\d kB\)\n  done: tiny/clap: "
                        r"model\.safetensors in \d+\.\d s\n", online.stderr), online.stderr
    assert any(path.endswith("/model.safetensors") for path in requested)
    assert not any(path.endswith(".bin") for path in requested)
    got = np.load(tmp_path / "online.npz")
    # Another process: BLAS kernels may round the last bit differently (alignment), so not bit for bit.
    np.testing.assert_allclose(got["audio"], audio, atol=1e-6)
    np.testing.assert_allclose(got["text"], text, atol=1e-6)
    hub_cache = tmp_path / "hf-home" / "hub"
    assert (hub_cache / "models--tiny--clap" / "snapshots").is_dir()  # the standard HF cache layout

    # Server gone: the cache alone is enough, with HF_HUB_OFFLINE=1 and without it (cache first, no
    # network call). In-process: our offline check reads the env; the cache location is patched.
    from huggingface_hub import HfApi, constants

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached model must load without calling the hub")

    monkeypatch.setattr(HfApi, "repo_info", no_network)
    monkeypatch.setattr(HfApi, "model_info", no_network)
    monkeypatch.setattr(HfApi, "list_repo_tree", no_network)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(tmp_path / "dgsearch-cache"))
    for offline_env in ("1", "0"):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline_env)
        cached = load_encoder(EncoderConfig(model=REPO, device="cpu"), progress=False)
        assert cached.fingerprint == tiny_encoder.fingerprint and cached.model_id == REPO
        cached_audio, cached_text = _local_embeddings(cached)
        assert np.array_equal(cached_audio, audio) and np.array_equal(cached_text, text)


def test_hub_unreachable_and_empty_cache_is_one_clear_error(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _run(REPO, tmp_path / "x.npz", _hub_env(tmp_path, f"http://127.0.0.1:{free_port()}"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"model '{REPO}' is not in the Hugging Face cache and could not be downloaded (connection refused): "
        f"connect once to download it, or {LOCAL_HINT}",
        "torch imported: False",
    ]
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 20


def test_unknown_repo_on_the_hub(tmp_path: Path, tiny_clap_dir: Path) -> None:
    with HubServer({REPO: tiny_clap_dir}) as server:
        result = _run("nobody/no-such-clap", tmp_path / "x.npz", _hub_env(tmp_path, server.url))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (
        f"model 'nobody/no-such-clap' was not found on the Hugging Face hub (or is private): check the id, "
        f"or {LOCAL_HINT}"
    )


def test_unknown_hub_id_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(EncoderConfig(model="nobody/no-such-clap", device="cpu"), progress=False)
    assert str(caught.value) == (
        "model 'nobody/no-such-clap' is not in the Hugging Face cache and HF_HUB_OFFLINE is set: unset "
        f"HF_HUB_OFFLINE and connect once to download it, or {LOCAL_HINT}"
    )


def _copy_without(src: Path, dst: Path, *names: str) -> Path:
    shutil.copytree(src, dst)
    for name in names:
        (dst / name).unlink()
    return dst


def test_local_dir_missing_file(tmp_path: Path, tiny_clap_dir: Path) -> None:
    broken = _copy_without(tiny_clap_dir, tmp_path / "broken", "preprocessor_config.json", "tokenizer.json")
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(EncoderConfig(model=str(broken), device="cpu"))
    assert str(caught.value) == (
        f"model directory '{broken}' is missing preprocessor_config.json (or processor_config.json), "
        f"tokenizer.json (or vocab.json and merges.txt); {LAYOUT_HINT}"
    )


def test_local_dir_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(EncoderConfig(model=str(missing)))
    assert str(caught.value) == f"model directory '{missing}' does not exist; {LAYOUT_HINT}"


def test_not_a_clap_config(tmp_path: Path, tiny_clap_dir: Path) -> None:
    other = tmp_path / "bert"
    shutil.copytree(tiny_clap_dir, other)
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(EncoderConfig(model=str(other)))
    assert str(caught.value) == (
        f"model directory '{other}' is not a CLAP model: its config.json has model_type 'bert', expected "
        "'clap' (a transformers ClapModel such as laion/clap-htsat-unfused)"
    )


def test_weights_that_do_not_fit_the_config(tmp_path: Path, tiny_clap_dir: Path) -> None:
    bigger = tmp_path / "bigger"
    shutil.copytree(tiny_clap_dir, bigger)
    config = json.loads((bigger / "config.json").read_text())
    config["text_config"]["num_hidden_layers"] = 2
    (bigger / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailableError, match="do not fit the CLAP config: .* tensor\\(s\\) missing"):
        load_encoder(EncoderConfig(model=str(bigger), device="cpu"))


def test_devices(tiny_clap_dir: Path) -> None:
    import torch

    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailableError, match="no CUDA GPU is available"):
            load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cuda"))
        encoder = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="auto"))
        assert encoder.device.type == "cpu"


def test_fingerprint_is_the_weights_sha256_and_follows_the_seed(tmp_path: Path, tiny_clap_dir: Path) -> None:
    weights = tiny_clap_dir / "model.safetensors"
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert weights_fingerprint(tiny_clap_dir) == expected
    assert weights_fingerprint(tiny_clap_dir) == expected  # second time from the digest cache
    assert config_dim(tiny_clap_dir) == 32
    link_dir = tmp_path / "linked"
    link_dir.mkdir()
    (link_dir / "model.safetensors").symlink_to(weights)
    assert weights_fingerprint(link_dir) == expected
    rebuilt = make_tiny_clap(tmp_path / "seed0", seed=0)
    assert weights_fingerprint(rebuilt) == expected
    other = make_tiny_clap(tmp_path / "seed1", seed=1)
    assert weights_fingerprint(other) != expected


def test_digest_cache_notices_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"one")
    first = file_sha256(path)
    path.write_bytes(b"two!")
    assert file_sha256(path) != first == hashlib.sha256(b"one").hexdigest()


def test_local_reference_or_hub_id(tmp_path: Path) -> None:
    assert is_local_reference(str(tmp_path))
    assert is_local_reference("./models/clap") and is_local_reference("~/clap") and is_local_reference("a/b/c")
    assert not is_local_reference("laion/clap-htsat-unfused")


def test_loading_module_does_not_import_torch() -> None:
    code = (
        "import sys, diffgap_search.encoders.loading, diffgap_search.encoders.weights.fingerprint; "
        "print(sorted(m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
