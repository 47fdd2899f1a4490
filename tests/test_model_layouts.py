"""Local model folders in every layout transformers reads, and pickled weights that never run code.

Each layout is loaded by ``load_encoder`` and checked against transformers' own pipeline on the same folder
(``fixtures_published.reference_embeddings``), or against the folder it was made from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_published import CLAP_VARIANTS, publish_clap, reference_embeddings, save_pretrained_today, without

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.weights.layout import choose_weights, processor_settings, wanted_files
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.errors import ModelUnavailableError

TEXTS = ["dog barking", "rain on a window"]
UNFUSED = CLAP_VARIANTS["laion/clap-htsat-unfused"]
FUSED = CLAP_VARIANTS["laion/clap-htsat-fused"]


def _windows() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((2, 480000))).astype(np.float32)


def _embed(folder: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    encoder = load_encoder(EncoderConfig(model=str(folder), device="cpu"), progress=False)
    return encoder.embed_audio(_windows()), encoder.embed_text(TEXTS), encoder


@pytest.fixture(scope="module")
def published_unfused(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return publish_clap(tmp_path_factory.mktemp("unfused") / "repo", UNFUSED, seed=3)


def test_a_published_folder_with_only_pytorch_model_bin(published_unfused: Path) -> None:
    audio, text, encoder = _embed(published_unfused)
    ref_audio, ref_text = reference_embeddings(published_unfused, _windows(), TEXTS)
    np.testing.assert_allclose(audio, ref_audio, atol=1e-5)
    np.testing.assert_allclose(text, ref_text, atol=1e-5)
    assert encoder.fingerprint == hashlib.sha256((published_unfused / "pytorch_model.bin").read_bytes()).hexdigest()
    assert encoder.provenance == {"source": "directory", "repo_id": None, "revision": None, "commit": None}


def test_a_folder_saved_by_todays_transformers(tmp_path: Path, published_unfused: Path) -> None:
    today = save_pretrained_today(published_unfused, tmp_path / "today")
    assert not (today / "preprocessor_config.json").exists() and (today / "processor_config.json").is_file()
    audio, text, _ = _embed(today)
    ref_audio, ref_text, _ = _embed(published_unfused)
    np.testing.assert_allclose(audio, ref_audio, atol=1e-6)
    np.testing.assert_allclose(text, ref_text, atol=1e-6)
    assert processor_settings(today, "clap")["truncation"] == "rand_trunc"  # read from the processor's section


def test_a_tokenizer_as_vocab_and_merges_only(tmp_path: Path, published_unfused: Path) -> None:
    bpe_only = without(published_unfused, tmp_path / "bpe", "tokenizer.json")
    _, text, encoder = _embed(bpe_only)
    _, ref_text = reference_embeddings(published_unfused, _windows()[:1], TEXTS)
    np.testing.assert_allclose(text, ref_text, atol=1e-5)
    fast = load_encoder(EncoderConfig(model=str(published_unfused), device="cpu"), progress=False)
    for sentence in TEXTS + ["a  café   bell, ringing!"]:
        assert encoder.tokenizer(sentence)["input_ids"] == fast.tokenizer(sentence)["input_ids"]


def test_sharded_weights_in_either_format(tmp_path: Path, published_unfused: Path) -> None:
    import torch
    from safetensors.torch import save_file

    state = torch.load(published_unfused / "pytorch_model.bin", weights_only=True)
    keys = sorted(state)
    halves = {"model-00001-of-00002": keys[: len(keys) // 2], "model-00002-of-00002": keys[len(keys) // 2:]}
    ref_audio, ref_text, _ = _embed(published_unfused)
    for fmt, suffix, index in (("safetensors", ".safetensors", "model.safetensors.index.json"),
                               ("pickle", ".bin", "pytorch_model.bin.index.json")):
        folder = without(published_unfused, tmp_path / fmt, "pytorch_model.bin")
        weight_map = {}
        for stem, names in halves.items():
            part = {k: state[k].contiguous() for k in names}
            if fmt == "safetensors":
                save_file(part, str(folder / f"{stem}{suffix}"), metadata={"format": "pt"})
            else:
                torch.save(part, folder / f"{stem}{suffix}")
            weight_map.update({k: f"{stem}{suffix}" for k in names})
        (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        assert choose_weights({index}).sharded
        audio, text, encoder = _embed(folder)
        np.testing.assert_allclose(audio, ref_audio, atol=1e-6, err_msg=fmt)
        np.testing.assert_allclose(text, ref_text, atol=1e-6, err_msg=fmt)
        lines = "".join(f"{stem}{suffix} {hashlib.sha256((folder / f'{stem}{suffix}').read_bytes()).hexdigest()}\n"
                        for stem in sorted(halves))
        assert encoder.fingerprint == hashlib.sha256(lines.encode()).hexdigest()


def test_the_fused_model_is_fed_four_copies_of_the_mel_with_is_longer_false(tmp_path: Path) -> None:
    folder = publish_clap(tmp_path / "fused", FUSED, seed=5)
    audio, text, encoder = _embed(folder)
    assert encoder.mel_channels == 4
    features = encoder._features(_windows()).numpy()
    from transformers import ClapFeatureExtractor

    reference = ClapFeatureExtractor.from_pretrained(str(folder))(list(_windows()), sampling_rate=48000,
                                                                  return_tensors="np")
    assert reference["input_features"].shape == features.shape == (2, 4, 1001, 64)
    np.testing.assert_allclose(features, reference["input_features"], atol=1e-3)  # dB; the torch mel is float32
    assert np.array_equal(features[:, 0], features[:, 3])  # ≤ 10 s: four copies of one mel
    ref_audio, _ = reference_embeddings(folder, _windows(), TEXTS)
    np.testing.assert_allclose(audio, ref_audio, atol=1e-5)


def test_an_unfused_model_with_a_fusion_preprocessor_reads_one_channel(tmp_path: Path) -> None:
    """transformers' own pipeline crashes on this pairing (4 channels into a 1-channel patch embedding); we
    feed the one mel the model reads, which is what the 4 copies hold."""
    folder = publish_clap(tmp_path / "mixed", UNFUSED, seed=6)
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**settings, "truncation": "fusion"}))
    audio, _, encoder = _embed(folder)
    assert encoder.mel_channels == 1 and encoder._features(_windows()).shape[1] == 1
    import torch
    from transformers import ClapFeatureExtractor, ClapModel

    model = ClapModel.from_pretrained(str(folder)).eval()
    mel = ClapFeatureExtractor.from_pretrained(str(folder))(list(_windows()), sampling_rate=48000,
                                                            return_tensors="pt")["input_features"]
    with torch.inference_mode():
        with pytest.raises(RuntimeError, match="expected input.*to have 1 channels, but got 4"):
            model.get_audio_features(input_features=mel)
        ref = model.get_audio_features(input_features=mel[:, :1]).pooler_output
    np.testing.assert_allclose(audio, torch.nn.functional.normalize(ref, dim=-1).numpy(), atol=1e-5)


class _Boom:
    """A pickle payload that would create a marker file if it were ever unpickled in full."""

    marker: Path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused_and_never_run(tmp_path: Path, published_unfused: Path) -> None:
    import torch

    hostile = without(published_unfused, tmp_path / "hostile", "pytorch_model.bin")
    boom = _Boom()
    boom.marker = tmp_path / "pwned"
    state = torch.load(published_unfused / "pytorch_model.bin", weights_only=True)
    state["evil"] = boom  # type: ignore[assignment]
    torch.save(state, hostile / "pytorch_model.bin")
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(EncoderConfig(model=str(hostile), device="cpu"), progress=False)
    assert str(caught.value) == (
        f"'{hostile}/pytorch_model.bin' was not loaded: it needs the Python object getattr, which PyTorch's safe "
        "loader (weights_only) refuses to create; only checkpoints of tensors and plain data are read")
    assert not boom.marker.exists()


def test_the_safetensors_copy_is_reused_and_rewritten_when_it_is_not_ours(
    tmp_path: Path, published_unfused: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    folder = without(published_unfused, tmp_path / "m", "tokenizer.json")
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    first, _, encoder = _embed(folder)  # converts the pickle into this test's cache
    copy = tmp_path / "cache" / "safetensors" / encoder.fingerprint / "model.safetensors"
    assert copy.is_file()

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("the converted copy must be read, not the pickle")

    monkeypatch.setattr(torch, "load", no_unpickling)
    again, _, _ = _embed(folder)
    assert np.array_equal(again, first)
    monkeypatch.undo()
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(copy))
    tensors = {k: torch.zeros_like(v) for k, v in tensors.items()}
    save_file(tensors, str(copy), metadata={"format": "pt", "source_sha256": "someone else's"})
    rewritten, _, _ = _embed(folder)
    assert np.array_equal(rewritten, first)
    from safetensors import safe_open

    with safe_open(str(copy), framework="pt") as handle:
        assert handle.metadata()["source_sha256"] == encoder.fingerprint


def test_what_is_fetched_for_each_role() -> None:
    clap = {".gitattributes", "README.md", "config.json", "merges.txt", "preprocessor_config.json",
            "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"}
    assert wanted_files(clap, "clap") == ["config.json", "pytorch_model.bin", "preprocessor_config.json",
                                          "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    clip = clap | {"tf_model.h5", "flax_model.msgpack"}
    assert wanted_files(clip, "clip_vision") == ["config.json", "pytorch_model.bin", "preprocessor_config.json"]
    both = clap | {"model.safetensors", "onnx/model.onnx"}
    assert wanted_files(both, "clap")[1] == "model.safetensors"
    today = {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "tokenizer_config.json"}
    assert wanted_files(today, "clap") == ["config.json", "model.safetensors", "processor_config.json",
                                           "tokenizer.json", "tokenizer_config.json"]
    roberta = {"config.json", "dict.txt", "merges.txt", "vocab.json", "model.safetensors", "tokenizer.json",
               "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot"}
    assert wanted_files(roberta, "tokenizer") == ["config.json", "tokenizer.json"]
    with pytest.raises(ModelUnavailableError, match=r"^lacks weights \(model.safetensors or pytorch_model.bin\), "
                                                    r"tokenizer.json \(or vocab.json and merges.txt\)$"):
        wanted_files({"config.json", "preprocessor_config.json", "tf_model.h5"}, "clap")


def test_a_shard_index_cannot_reach_outside_its_folder(tmp_path: Path, published_unfused: Path) -> None:
    folder = without(published_unfused, tmp_path / "sly", "pytorch_model.bin")
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {"a": "../../etc/passwd"}}))
    with pytest.raises(ModelUnavailableError, match="lists no usable shard files"):
        load_encoder(EncoderConfig(model=str(folder), device="cpu"), progress=False)
    shutil.rmtree(folder)
