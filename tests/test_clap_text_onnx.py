"""A word query on a CLAP index without torch or transformers (``encoders/clap/text_onnx.py``): the text tower
exported once and kept only where its tokens and vectors agree with transformers' and torch's; a real
``dgsearch query "words"`` process that then imports neither and returns the same hits as the torch path.

Tiny CLAP models in today's ``save_pretrained`` layout and in the default model's layout as LAION published it
(``fixtures_published``: pickled weights, the 2023 tokenizer files), random seeded weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_published import CLAP_DEFAULT, CLAP_VARIANTS, publish_clap
from query_process import query_process
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.clap.record import ClapRecord
from diffgap_search.encoders.clap.text_onnx import (
    OnnxClapText,
    export_text_checked,
    open_ready_text,
    text_onnx_file,
    text_query_key,
)
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.precision import FILE_NAME

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'diffgap-search[onnx]'")
pytest.importorskip("onnx", reason="the onnx extra: pip install 'diffgap-search[onnx]'")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clips"
# Tokenisation edge cases: case, punctuation, digits, accents and other scripts, runs of spaces, a text past 77 tokens.
TEXTS = ["a dog barking", "Rain on a TIN roof!!", "  leading and   repeated spaces ", "café crème, naïve façade",
         "猫が鳴く", "emoji 🎺 trumpet", "12 bells at 3:45 pm", " ".join(["footsteps on gravel"] * 40)]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


def _eager(folder: Path, precision: str = "auto") -> Any:
    return load_encoder(EncoderConfig(model=str(folder), device="cpu", precision=precision), progress=False)


def _remembered(cache: Path) -> dict[str, Any]:
    path = cache / FILE_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return publish_clap(tmp_path / "repo", CLAP_VARIANTS[CLAP_DEFAULT])  # pytorch_model.bin, 2023 tokenizer files


@pytest.mark.parametrize("layout", ["save_pretrained", "as published"])
def test_an_eager_auto_load_exports_the_text_tower_whose_tokens_and_vectors_equal_torch(
        layout: str, tiny_clap_dir: Path, published: Path, cache: Path) -> None:
    folder = tiny_clap_dir if layout == "save_pretrained" else published
    encoder = _eager(folder)  # auto on the CPU: exports and checks once
    path = text_onnx_file(encoder.fingerprint)
    assert path.is_file()
    assert json.loads((cache / FILE_NAME).read_text())[text_query_key(encoder.fingerprint)] == "onnx"
    runner = open_ready_text(folder, encoder.fingerprint, encoder.text_max_tokens)
    assert runner is not None
    ids, mask = encoder._tokens(TEXTS)  # transformers' tokenizer, as every word query used it
    ours_ids, ours_mask = runner.tokens(TEXTS)
    np.testing.assert_array_equal(ours_ids, ids.numpy())
    np.testing.assert_array_equal(ours_mask, mask.numpy())
    assert ours_ids.shape[1] == encoder.text_max_tokens  # the long text is cut where transformers cuts it
    fp32 = _eager(folder, "fp32").embed_text(TEXTS)
    vectors = runner.embed_text(TEXTS)
    assert vectors.shape == fp32.shape == (len(TEXTS), encoder.dim) and vectors.dtype == np.float32
    assert np.min(np.sum(vectors * fp32, axis=1)) >= 0.9999
    assert runner.embed_text([]).shape == encoder.embed_text([]).shape == (0, encoder.dim)
    made = path.stat().st_mtime_ns
    _eager(folder)  # a second load exports nothing
    assert path.stat().st_mtime_ns == made


def test_a_folder_without_tokenizer_json_keeps_the_torch_path(published: Path, cache: Path) -> None:
    folder = published  # vocab.json and merges.txt beside it: transformers reads those
    (folder / "tokenizer.json").unlink()
    encoder = _eager(folder)
    assert not text_onnx_file(encoder.fingerprint).exists()
    assert text_query_key(encoder.fingerprint) not in _remembered(cache)
    assert type(load_encoder(EncoderConfig(model=str(folder), device="cpu"), progress=False,
                             audio_on_demand=True)).__name__ == "ClapEncoder"


def test_an_export_whose_vectors_disagree_is_dropped_and_remembered(tiny_clap_dir: Path, tmp_path: Path,
                                                                   cache: Path) -> None:
    """A real disagreement: the model checked with a tokenizer that is not its own (the same tokens, other ids)."""
    import torch

    from diffgap_search.encoders.clap.encoder import ClapEncoder

    encoder = ClapEncoder.from_folder(tiny_clap_dir, model_id="tiny", device="cpu", precision="fp32")
    other = tmp_path / "other-tokenizer"
    shutil.copytree(tiny_clap_dir, other)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    swapped = {token: (len(vocab) - 1 - i if i >= 5 else i) for token, i in vocab.items()}  # specials kept
    tokenizer["model"]["vocab"] = swapped
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with torch.inference_mode():
        assert export_text_checked(encoder.model, other, encoder.fingerprint, encoder._tokens,
                                   encoder.text_max_tokens) is None
    assert json.loads((cache / FILE_NAME).read_text()) == {text_query_key(encoder.fingerprint): "fp32"}
    assert not text_onnx_file(encoder.fingerprint).exists()
    # remembered: the right tokenizer is not tried again on this machine
    assert export_text_checked(encoder.model, tiny_clap_dir, encoder.fingerprint, encoder._tokens,
                               encoder.text_max_tokens) is None
    assert open_ready_text(tiny_clap_dir, encoder.fingerprint, encoder.text_max_tokens) is None


def test_a_damaged_text_export_is_removed_and_the_query_builds_the_model(tiny_clap_dir: Path, cache: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    encoder = _eager(tiny_clap_dir)
    path = text_onnx_file(encoder.fingerprint)
    path.write_bytes(path.read_bytes()[:1000])
    query = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu"), progress=False, audio_on_demand=True)
    assert isinstance(query, ClapRecord)  # the file is there: its session opens at the first text
    vectors = query.embed_text(TEXTS[:2])  # it cannot: the model is built and embeds the text
    assert query.model_loaded and f"ONNX Runtime cannot open {path}" in caplog.text
    np.testing.assert_allclose(vectors, _eager(tiny_clap_dir, "fp32").embed_text(TEXTS[:2]), atol=1e-5)
    # the damaged file was removed, and the model this query built exported it again, whole: the next query has it
    assert path.stat().st_size > 1000
    assert open_ready_text(tiny_clap_dir, encoder.fingerprint, encoder.text_max_tokens) is not None


def test_a_word_query_process_imports_neither_torch_nor_transformers(tiny_clap_dir: Path, tmp_path: Path,
                                                                     cache: Path) -> None:
    index = tmp_path / "ix"
    done = CliRunner().invoke(app, ["index", str(EXAMPLES), "--index", str(index), "--model", str(tiny_clap_dir),
                                    "--no-frames", "--workers", "0"])
    assert done.exit_code == 0, done.output
    words = ["query", "a bell ringing", "--mode", "semantic"]
    both = ("torch", "transformers")
    onnx_hits, onnx_imports = query_process(index, cache, *words, modules=both)
    torch_hits, torch_imports = query_process(index, cache, *words, "--precision", "fp32", modules=both)
    assert onnx_imports == [False, False] and torch_imports == [True, True]
    assert len(onnx_hits) == 3 and [n for n, _ in onnx_hits] == [n for n, _ in torch_hits]
    np.testing.assert_allclose([s for _, s in onnx_hits], [s for _, s in torch_hits], atol=1e-3)
    summary = json.loads(CliRunner().invoke(app, ["info", "--index", str(index), "--json"]).stdout)["summary"]
    assert "text query on cpu, torch " in summary["precision path"]
    assert summary["precision path"].split("text query on cpu, ")[1].split(";")[0].endswith("clap text onnx 1: onnx")


def test_a_query_record_embeds_audio_with_the_model_it_builds_then(tiny_clap_dir: Path, cache: Path) -> None:
    eager = _eager(tiny_clap_dir)
    query = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu"), progress=False, audio_on_demand=True)
    assert isinstance(query, ClapRecord) and isinstance(query.text_runner, OnnxClapText)
    assert (query.fingerprint, query.dim, query.sample_rate, query.preprocessing) == (
        eager.fingerprint, eager.dim, eager.sample_rate, eager.preprocessing)
    assert not query.model_loaded
    windows = (0.1 * np.random.default_rng(0).standard_normal((2, eager.window_samples))).astype(np.float32)
    np.testing.assert_allclose(query.embed_audio(windows), eager.embed_audio(windows), atol=1e-6)
    assert query.model_loaded


def test_a_deferred_start_exports_the_text_tower_when_its_model_is_built(tiny_clap_dir: Path, cache: Path) -> None:
    """A machine whose audio path was remembered before this export existed starts its encoders deferred (the
    audio tower on its ONNX file): the text tower is exported the first time such an encoder builds its model."""
    import torch

    from diffgap_search.encoders.clap.path_choice import choice_key
    from diffgap_search.encoders.precision import remember_verdict

    forced = _eager(tiny_clap_dir, "onnx")  # forced: exports the audio tower when it embeds, never the text's
    forced.embed_audio(np.zeros((1, forced.window_samples), np.float32))
    remember_verdict(choice_key(forced.fingerprint, torch.device("cpu"), "audio"), "onnx")
    path = text_onnx_file(forced.fingerprint)
    deferred = _eager(tiny_clap_dir)
    assert not deferred.model_loaded and not path.exists()
    vectors = deferred.embed_text(TEXTS[:2])  # builds the model: exported (and checked) before the text runs
    assert deferred.model_loaded and path.is_file()
    assert _remembered(cache)[text_query_key(forced.fingerprint)] == "onnx"
    np.testing.assert_allclose(vectors, _eager(tiny_clap_dir, "fp32").embed_text(TEXTS[:2]), atol=1e-5)
