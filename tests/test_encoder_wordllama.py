"""``--text-model wordllama``: our loader of WordLlama's wheel against the package's own ``embed``, and the text
side of an aisfx index recorded, checked and refused where it cannot serve (real weights, no network).

The package's ``WordLlama.load()`` cannot load offline from its own wheel (0.4.0.post1 looks for the tokenizer
under ``wordllama/tokenizer/``, the wheel ships it under ``wordllama/tokenizers/``, so it falls back to a
download), so the reference is what ``load()`` builds once it has the files: ``WordLlamaInference(table,
tokenizer)`` from the same two files, and its ``embed(norm=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_media import write_noise, write_tone
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig, EncoderRole
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.wordllama.encoder import NATIVE_DIM, load_wordllama_encoder, package_files, read_table
from diffgap_search.errors import ModelUnavailableError, UsageError
from diffgap_search.store.catalog import Catalog

pytest.importorskip("wordllama", reason="the wordllama package (pip install --no-deps wordllama==0.4.0.post1) holds the weights")

TEXTS = ["a dog barking", "A great blue heron.", "door close", "DoorClose", "electric guitar", "x",
         "The quick brown fox jumps over the lazy dog near the riverbank at dawn", "ünïcödé ☃", "bass_drum-03.wav"]


@pytest.fixture(scope="module")
def wordllama():
    return load_wordllama_encoder(512)


def test_our_vectors_equal_the_packages_embed(wordllama) -> None:
    from wordllama.inference import WordLlamaInference
    from wordllama.wordllama import WordLlama

    weights, tokenizer = package_files()
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as f:
        table = f.get_tensor("embedding.weight")
    reference = WordLlamaInference(table, WordLlama.load_tokenizer(tokenizer)).embed(TEXTS, norm=True)
    ours = wordllama.embed_text(TEXTS)
    assert reference.shape == (len(TEXTS), NATIVE_DIM) and ours.shape == (len(TEXTS), 512)
    assert ours.dtype == np.float32
    assert np.all((ours[:, :NATIVE_DIM] * reference).sum(1) >= 0.9999)
    assert np.all(ours[:, NATIVE_DIM:] == 0)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_a_text_gets_the_same_vector_alone_and_in_a_batch(wordllama) -> None:
    batch = wordllama.embed_text(TEXTS)
    alone = np.stack([wordllama.embed_text([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batch, alone, atol=1e-6)
    assert wordllama.embed_text([]).shape == (0, 512)


def test_identity_is_the_digest_of_both_files(wordllama) -> None:
    again = load_wordllama_encoder(256)
    assert again.fingerprint == wordllama.fingerprint and len(wordllama.fingerprint) == 64
    assert (wordllama.model_id, wordllama.modalities, wordllama.dim, again.dim) == ("wordllama", ("text",), 512, 256)
    assert wordllama.provenance == {"source": "package", "package_version": "0.4.0.post1",
                                    "weights": "l2_supercat_256.safetensors", "native_dim": 256}


def test_it_loads_once_while_its_files_stay_as_they_were(tmp_path: Path) -> None:
    """Each look of `index --watch` and each query of a server asks again: the same encoder comes back, and a
    file that changed (a package upgrade) is read again, with its new fingerprint."""
    import shutil

    from safetensors.numpy import load_file, save_file

    weights, tokenizer = (Path(shutil.copy(p, tmp_path / p.name)) for p in package_files())
    first = load_wordllama_encoder(512, files=(weights, tokenizer))
    assert load_wordllama_encoder(512, files=(weights, tokenizer)) is first
    assert load_wordllama_encoder(256, files=(weights, tokenizer)) is not first  # another width
    tensors = load_file(str(weights))
    tensors["embedding.weight"][1] += 1
    save_file(tensors, str(weights))
    again = load_wordllama_encoder(512, files=(weights, tokenizer))
    assert again is not first and again.fingerprint != first.fingerprint
    assert not np.array_equal(again.table[1][:256], first.table[1][:256])


def test_a_file_that_is_not_wordllamas_table_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"weight": np.zeros((4, 256), np.float32)}, str(other))
    with pytest.raises(ModelUnavailableError, match=r"holds no embedding.weight"):
        read_table(other)
    narrow = tmp_path / "narrow.safetensors"
    save_file({"embedding.weight": np.zeros((4, 8), np.float32)}, str(narrow))
    with pytest.raises(ModelUnavailableError, match=r"holds a \(4, 8\) table, not \(V, 256\)"):
        read_table(narrow)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelUnavailableError, match="is not readable"):
        read_table(garbage)


def test_a_text_model_only_joins_an_audio_only_model() -> None:
    with pytest.raises(UsageError, match=r"^--text-model must be wordllama, got 'bert'$"):
        load_encoder(EncoderConfig(model="aisfx", text_model="bert"))
    with pytest.raises(UsageError) as err:
        load_encoder(EncoderConfig(model="laion/clap-htsat-unfused", text_model="wordllama"))
    assert str(err.value) == "--text-model is for an audio-only --model (aisfx); 'laion/clap-htsat-unfused' embeds text itself"


# -- the text side of an index (real aisfx and WordLlama weights, six short synthetic files) -----------------

@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("library")
    for i, name in enumerate(["dog_bark", "door_slam", "rain_light"]):
        write_tone(folder / f"{name}.wav", freq=220.0 * (i + 1), seconds=0.5)
        write_noise(folder / f"{name}_noise.wav", seconds=0.5, seed=i)
    return folder


def _index(library: Path, index: Path, *extra: str) -> object:
    return CliRunner().invoke(app, ["index", str(library), "--index", str(index), "--model", "aisfx", "--workers", "0",
                                    "--json", *extra])


@pytest.fixture(scope="module")
def text_index(library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")
    index = tmp_path_factory.mktemp("wl") / "index"
    result = _index(library, index, "--text-model", "wordllama")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embedded_files"] == 6
    return index


@pytest.mark.slow  # indexes with the real aisfx network (about 10 s on 2 shared cores)
def test_the_index_records_its_text_model(text_index: Path, wordllama) -> None:
    summary = json.loads(CliRunner().invoke(app, ["info", "--index", str(text_index), "--json"]).stdout)["summary"]
    assert (summary["model"], summary["embeds"]) == ("aisfx", "audio")
    assert summary["text model"] == f"wordllama 0.4.0.post1 (weights {wordllama.fingerprint[:12]})"
    with Catalog.open(text_index) as cat:
        record = cat.get_meta(EncoderRole.TEXT.value)
    assert {k: record[k] for k in ("model", "fingerprint", "dim", "sample_rate", "modalities")} == {
        "model": "wordllama", "fingerprint": wordllama.fingerprint, "dim": 512, "sample_rate": None,
        "modalities": ["text"]}


@pytest.mark.slow  # indexes with the real aisfx network (about 10 s on 2 shared cores)
def test_words_wait_for_a_bridge(text_index: Path) -> None:
    semantic = CliRunner().invoke(app, ["query", "a dog barking", "--index", str(text_index), "--mode", "semantic"])
    assert semantic.exit_code == 10
    assert semantic.output.strip() == (
        f"dgsearch: error: a text query cannot be searched in index {text_index}: the index's words (wordllama) reach"
        " its sounds only through a DiffGAP bridge, and the index has none for text yet: run `dgsearch train`")
    hybrid = CliRunner().invoke(app, ["query", "dog", "--index", str(text_index), "--json"])
    assert hybrid.exit_code == 0, hybrid.output
    doc = json.loads(hybrid.stdout)
    assert doc["mode"] == "keyword"
    assert doc["note"] == ("the index's words (wordllama) reach its sounds only through a DiffGAP bridge, and the index"
                           " has none for text yet: run `dgsearch train`: keyword search only")
    assert [Path(h["path"]).name for h in doc["hits"]] == ["dog_bark.wav", "dog_bark_noise.wav"]


@pytest.mark.slow  # indexes with the real aisfx network (about 10 s on 2 shared cores)
def test_another_text_model_is_refused_and_none_keeps_the_recorded_one(text_index: Path, library: Path) -> None:
    again = _index(library, text_index)  # no --text-model: the index's own, checked
    assert again.exit_code == 0, again.output
    with Catalog.open(text_index) as cat:
        record = cat.get_meta(EncoderRole.TEXT.value)
        cat.set_meta({EncoderRole.TEXT.value: {**record, "fingerprint": "0" * 64}})  # weights that differ
    try:
        result = _index(library, text_index, "--text-model", "wordllama")
        assert result.exit_code == 6
        assert "was built with text model 'wordllama' (weights 000000000000)" in result.output
        assert "use --text-model 'wordllama', or build a new index with --index" in result.output
    finally:
        with Catalog.open(text_index) as cat:
            cat.set_meta({EncoderRole.TEXT.value: record})


@pytest.mark.slow  # indexes with the real aisfx network (about 10 s on 2 shared cores)
def test_an_audio_only_index_gains_a_text_model_without_re_embedding(library: Path, tmp_path: Path, wordllama) -> None:
    pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")
    index = tmp_path / "index"
    assert _index(library, index).exit_code == 0
    with Catalog.open(index) as cat:
        assert cat.get_meta(EncoderRole.TEXT.value) is None
    result = _index(library, index, "--text-model", "wordllama")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embedded_files"] == 0
    with Catalog.open(index) as cat:
        assert cat.get_meta(EncoderRole.TEXT.value)["fingerprint"] == wordllama.fingerprint


def test_a_clap_index_cannot_take_a_text_model(library: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["index", str(library), "--index", str(tmp_path / "i"), "--text-model", "wordllama"])
    assert result.exit_code == 2
    assert result.output.strip() == ("dgsearch: error: --text-model is for an audio-only --model (aisfx);"
                                     " 'laion/clap-htsat-unfused' embeds text itself")
