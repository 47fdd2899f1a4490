"""The default models load from the hub as their publishers ship them, and every LAION-CLAP on the hub loads by id.

A loopback hub (``hub_server.py``) serves repositories in the published layouts (``fixtures_published.py``:
the file names of the real listings, tiny random weights). Loads run in a fresh interpreter, since
huggingface_hub reads ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` when it is imported. Embeddings
are checked against transformers' own pipeline on the same folder, and the server's request log shows
exactly what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_published import (
    CLAP_DEFAULT,
    CLAP_VARIANTS,
    CLIP_DEFAULT,
    publish_clap,
    publish_clip,
    reference_embeddings,
)
from hub_server import HubServer

TEXTS = ["dog barking", "rain on a window"]

# Loads every repo id given on the command line (the CLIP one as a video model) in a fresh interpreter,
# embeds seeded inputs and writes what it got as JSON + .npz next to argv[1].
_SCRIPT = r"""
import json, sys, numpy as np
from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.clip.encoder import load_clip_encoder
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.errors import DGSearchError
out, models, revision = sys.argv[1], sys.argv[2:], None
if models and models[0].startswith("--revision="):
    revision, models = models[0].split("=", 1)[1], models[1:]
report, arrays = {}, {}
rng = np.random.default_rng(0)
windows = (0.1 * rng.standard_normal((2, 480000))).astype(np.float32)
frames = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
for i, model in enumerate(models):
    try:
        if model == "openai/clip-vit-base-patch32":
            enc = load_clip_encoder(revision=revision)
            arrays[f"{i}_video"] = enc.embed_video([frames])
        else:
            enc = load_encoder(EncoderConfig(model=model, device="cpu", revision=revision))
            arrays[f"{i}_audio"], arrays[f"{i}_text"] = enc.embed_audio(windows), enc.embed_text(%r)
            report[model + ":mel_channels"] = enc.mel_channels
    except DGSearchError as error:
        report[model] = {"error": str(error)}
        continue
    report[model] = {"fingerprint": enc.fingerprint, "provenance": enc.provenance}
json.dump(report, open(out + ".json", "w"))
np.savez(out + ".npz", **arrays)
""" % (TEXTS,)


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               DGSEARCH_CACHE_DIR=str(tmp_path / "dgsearch-cache"), TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _load(tmp_path: Path, name: str, models: list[str], env: dict[str, str]) -> tuple[dict[str, Any], Any, str]:
    out = tmp_path / name
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(out), *models], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(Path(f"{out}.json").read_text()), np.load(f"{out}.npz"), result.stderr


def _gets(server: HubServer, repo: str) -> list[str]:
    """File names the client downloaded (GET of ``/{repo}/resolve/{commit}/{name}``) from ``repo``."""
    prefix = f"/{repo}/resolve/"
    return sorted(path.split("/", 5)[5] for verb, path in server.requests if verb == "GET" and path.startswith(prefix))


def _windows() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((2, 480000))).astype(np.float32)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every published repository, written once: the five LAION-CLAP variants and CLIP ViT-B/32."""
    root = tmp_path_factory.mktemp("published")
    repos = {repo: publish_clap(root / repo.replace("/", "--"), variant, seed=i)
             for i, (repo, variant) in enumerate(CLAP_VARIANTS.items())}
    repos[CLIP_DEFAULT] = publish_clip(root / "clip", seed=0)
    return repos


def test_the_defaults_load_as_published_then_offline(tmp_path: Path, published: dict[str, Path]) -> None:
    clap, clip = published[CLAP_DEFAULT], published[CLIP_DEFAULT]
    with HubServer({CLAP_DEFAULT: clap, CLIP_DEFAULT: clip}) as server:
        report, arrays, stderr = _load(tmp_path, "online", [CLAP_DEFAULT, CLIP_DEFAULT], _env(tmp_path, server.url))
        clap_gets, clip_gets = _gets(server, CLAP_DEFAULT), _gets(server, CLIP_DEFAULT)
        commit = server.repos[CLAP_DEFAULT].branches["main"].commit

    # Only what a loader needs: one weights format, the preprocessing settings, the tokenizer (CLAP only).
    assert clap_gets == ["config.json", "preprocessor_config.json", "pytorch_model.bin", "special_tokens_map.json",
                         "tokenizer.json", "tokenizer_config.json"]
    assert clip_gets == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    # The fingerprint is the sha256 of the weights file as published; provenance names the commit.
    bin_sha = hashlib.sha256((clap / "pytorch_model.bin").read_bytes()).hexdigest()
    assert report[CLAP_DEFAULT]["fingerprint"] == bin_sha
    assert report[CLAP_DEFAULT]["provenance"] == {"source": "hub", "repo_id": CLAP_DEFAULT, "revision": None,
                                                 "commit": commit}
    assert report[CLIP_DEFAULT]["fingerprint"] == hashlib.sha256((clip / "pytorch_model.bin").read_bytes()).hexdigest()
    # The same vectors as transformers' own pipeline on the published folder.
    audio, text = reference_embeddings(clap, _windows(), TEXTS)
    np.testing.assert_allclose(arrays["0_audio"], audio, atol=1e-5)
    np.testing.assert_allclose(arrays["0_text"], text, atol=1e-5)
    # The pickle was converted once into our cache, keyed by its sha256.
    copy = tmp_path / "dgsearch-cache" / "safetensors" / bin_sha / "model.safetensors"
    assert copy.is_file()
    # stderr is a log, not a terminal: one line per weights file, no escape codes, no per-chunk lines.
    lines = stderr.splitlines()
    assert lines[0].startswith(f"downloading {CLAP_DEFAULT}: pytorch_model.bin (") and lines[0].endswith(" kB)")
    assert lines[1].startswith(f"  done: {CLAP_DEFAULT}: pytorch_model.bin in ")
    assert lines[2].startswith(f"downloading {CLIP_DEFAULT}: pytorch_model.bin (")
    assert len(lines) == 4, stderr
    assert "\x1b" not in stderr and "\r" not in stderr and "Reconstructing" not in stderr

    # Hub gone, offline: the cache alone serves both, with the same fingerprints and vectors.
    offline, arrays2, stderr2 = _load(tmp_path, "offline", [CLAP_DEFAULT, CLIP_DEFAULT],
                                      _env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1"))
    assert offline[CLAP_DEFAULT] == report[CLAP_DEFAULT] and offline[CLIP_DEFAULT] == report[CLIP_DEFAULT]
    # Another process: BLAS kernels may round the last bit differently (alignment), so not bit for bit.
    np.testing.assert_allclose(arrays2["0_audio"], arrays["0_audio"], atol=1e-6)
    np.testing.assert_allclose(arrays2["1_video"], arrays["1_video"], atol=1e-6)
    assert stderr2 == ""


@pytest.mark.slow  # default run under 10 min on 2 cores: the slow suite (CI runs it) covers it
def test_every_laion_clap_on_the_hub_loads_by_id(tmp_path: Path, published: dict[str, Path]) -> None:
    repos = {repo: published[repo] for repo in CLAP_VARIANTS}
    with HubServer(repos) as server:
        report, arrays, _ = _load(tmp_path, "family", list(repos), _env(tmp_path, server.url))
        gets = {repo: _gets(server, repo) for repo in repos}
    for i, (repo, folder) in enumerate(repos.items()):
        variant = CLAP_VARIANTS[repo]
        weights = "model.safetensors" if "safetensors" in variant.formats else "pytorch_model.bin"
        assert weights in gets[repo] and len([g for g in gets[repo] if g.startswith(("model.", "pytorch_"))]) == 1
        assert report[repo]["fingerprint"] == hashlib.sha256((folder / weights).read_bytes()).hexdigest()
        # The fused model reads 4 mel channels, the others 1: from each repository's own config.json.
        assert report[f"{repo}:mel_channels"] == (4 if variant.fusion else 1)
        audio, text = reference_embeddings(folder, _windows(), TEXTS)
        np.testing.assert_allclose(arrays[f"{i}_audio"], audio, atol=1e-5, err_msg=repo)
        np.testing.assert_allclose(arrays[f"{i}_text"], text, atol=1e-5, err_msg=repo)


@pytest.mark.slow  # default run under 10 min on 2 cores: the slow suite (CI runs it) covers it
def test_revision_is_pinned_and_reported(tmp_path: Path, published: dict[str, Path]) -> None:
    v2 = publish_clap(tmp_path / "v2", CLAP_VARIANTS[CLAP_DEFAULT], seed=7)
    with HubServer({CLAP_DEFAULT: {"main": published[CLAP_DEFAULT], "v2": v2}}) as server:
        v2_commit = server.repos[CLAP_DEFAULT].branches["v2"].commit
        report, _, _ = _load(tmp_path, "v2", ["--revision=v2", CLAP_DEFAULT], _env(tmp_path, server.url))
        by_commit, _, _ = _load(tmp_path, "commit", [f"--revision={v2_commit}", CLAP_DEFAULT],
                                _env(tmp_path, server.url))
        missing, _, _ = _load(tmp_path, "nov3", ["--revision=v3", CLAP_DEFAULT], _env(tmp_path, server.url))
    v2_sha = hashlib.sha256((v2 / "pytorch_model.bin").read_bytes()).hexdigest()
    assert report[CLAP_DEFAULT] == {"fingerprint": v2_sha, "provenance": {
        "source": "hub", "repo_id": CLAP_DEFAULT, "revision": "v2", "commit": v2_commit}}
    assert by_commit[CLAP_DEFAULT]["provenance"]["commit"] == v2_commit
    assert missing[CLAP_DEFAULT] == {"error": f"revision 'v3' of model '{CLAP_DEFAULT}' was not found on the Hugging Face hub"}
    offline, _, _ = _load(tmp_path, "v2-offline", ["--revision=v2", CLAP_DEFAULT],
                          _env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1"))
    assert offline[CLAP_DEFAULT]["fingerprint"] == v2_sha


def test_a_download_that_does_not_match_the_stated_sha256_is_refused(tmp_path: Path, published: dict[str, Path]) -> None:
    with HubServer({CLAP_DEFAULT: published[CLAP_DEFAULT]}, wrong_sha256=frozenset({"pytorch_model.bin"})) as server:
        report, _, _ = _load(tmp_path, "bad", [CLAP_DEFAULT], _env(tmp_path, server.url))
    error = report[CLAP_DEFAULT]["error"]
    assert error.startswith(f"the downloaded 'pytorch_model.bin' of model '{CLAP_DEFAULT}' does not match the "
                            "sha256 the hub states for it (")
    assert error.endswith(f" instead of 000000000000): delete {tmp_path}/hf-home/hub/models--laion--clap-htsat-unfused"
                          " and try again")


def test_a_repository_with_only_tf_and_flax_weights_is_refused_by_name(tmp_path: Path, published: dict[str, Path]) -> None:
    only_tf = tmp_path / "tf-only"
    only_tf.mkdir()
    for name in ("config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"):
        (only_tf / name).write_bytes((published[CLAP_DEFAULT] / name).read_bytes())
    (only_tf / "tf_model.h5").write_bytes(b"\0" * 1000)
    with HubServer({"someone/tf-clap": only_tf}) as server:
        report, _, _ = _load(tmp_path, "tf", ["someone/tf-clap"], _env(tmp_path, server.url))
        gets = _gets(server, "someone/tf-clap")
    assert report["someone/tf-clap"] == {"error": (
        "model 'someone/tf-clap' on the Hugging Face hub lacks weights (model.safetensors or pytorch_model.bin): it "
        "cannot be used as a CLAP model, or pass --model DIR with a local copy (config.json, the weights, tokenizer "
        "and preprocessor files)")}
    assert gets == []


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "clips"


def _dgsearch(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("dgsearch")), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_new_user_indexes_and_queries_with_no_model_flag(tmp_path: Path, published: dict[str, Path]) -> None:
    """The README's first command, against a hub that serves the default models as published: the example
    clips (13 CC0 recordings and one video) are indexed and searched by words, with no --model flag."""
    clips = tmp_path / "clips"
    shutil.copytree(EXAMPLES, clips)
    with HubServer({CLAP_DEFAULT: published[CLAP_DEFAULT], CLIP_DEFAULT: published[CLIP_DEFAULT]}) as server:
        env = _env(tmp_path, server.url)
        indexed = _dgsearch(["index", "clips", "--json"], env, tmp_path)
        assert indexed.returncode == 0, indexed.stdout + indexed.stderr
        query = _dgsearch(["query", "a bell ringing", "--json", "-k", "20"], env, tmp_path)
        info = _dgsearch(["info", "--json"], env, tmp_path)
        clap_commit = server.repos[CLAP_DEFAULT].branches["main"].commit
        fetched = sorted({path.rsplit("/", 1)[1] for verb, path in server.requests if verb == "GET" and "/resolve/" in path})
    report = json.loads(indexed.stdout)
    assert (report["found"], report["embedded_files"], report["failed"]) == (14, 14, [])
    assert query.returncode == 0, query.stderr
    hits = json.loads(query.stdout)["hits"]
    assert sorted(Path(h["path"]).name for h in hits) == sorted(p.name for p in EXAMPLES.iterdir()
                                                                if p.suffix in (".ogg", ".mp4"))
    summary = json.loads(info.stdout)["summary"]
    assert summary["model"] == CLAP_DEFAULT
    assert summary["model source"] == f"hub {CLAP_DEFAULT}, revision default branch, commit {clap_commit}"
    assert summary["weights sha256"] == hashlib.sha256((published[CLAP_DEFAULT] / "pytorch_model.bin").read_bytes()).hexdigest()
    assert summary["video model"].startswith(f"{CLIP_DEFAULT} (commit ")
    assert "video (1 vectors" in summary["vector spaces"]
    assert fetched == ["config.json", "preprocessor_config.json", "pytorch_model.bin", "special_tokens_map.json",
                       "tokenizer.json", "tokenizer_config.json"]  # the same names from both repos
    assert "\x1b" not in indexed.stderr and "Reconstructing" not in indexed.stderr


@pytest.mark.slow  # default run under 10 min on 2 cores: the slow suite (CI runs it) covers it
def test_an_original_laion_checkpoint_with_laions_tokenizer(tmp_path: Path) -> None:
    """``--model 630k-audioset-best.pt``: the trainer's file re-keyed for ClapModel, with the RoBERTa
    tokenizer LAION-CLAP uses fetched from the hub (tokenizer files only)."""
    import torch
    from fixtures_laion_pt import make_tiny_model, save_trainer_checkpoint, to_laion_state_dict
    from fixtures_published import publish_roberta_base
    from transformers import AutoTokenizer, ClapFeatureExtractor

    from diffgap_search.encoders.clap.laion_checkpoint import read_laion_checkpoint

    original = make_tiny_model("tiny", seed=4)
    checkpoint = save_trainer_checkpoint(to_laion_state_dict(original), tmp_path / "630k-audioset-best.pt")
    roberta = publish_roberta_base(tmp_path / "roberta", seed=0)
    with HubServer({"FacebookAI/roberta-base": roberta}) as server:
        report, arrays, _ = _load(tmp_path, "pt", [str(checkpoint)], _env(tmp_path, server.url))
        gets = _gets(server, "FacebookAI/roberta-base")
    assert gets == ["config.json", "tokenizer.json"]
    entry = report[str(checkpoint)]
    assert entry["fingerprint"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert entry["provenance"]["source"] == "checkpoint"
    assert entry["provenance"]["tokenizer"].startswith("FacebookAI/roberta-base@")
    extractor = ClapFeatureExtractor(**read_laion_checkpoint(checkpoint).feature_extractor_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(roberta))
    features = extractor(list(_windows()), sampling_rate=48000, return_tensors="pt")["input_features"]
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        audio = original.get_audio_features(input_features=features).pooler_output
        text = original.get_text_features(**tokens).pooler_output
    np.testing.assert_allclose(arrays["0_audio"], torch.nn.functional.normalize(audio, dim=-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(arrays["0_text"], torch.nn.functional.normalize(text, dim=-1).numpy(), atol=1e-5)
