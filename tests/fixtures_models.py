"""Tiny CLAP models for tests: the real transformers classes, random seeded weights, a tokenizer trained here.

``make_tiny_clap(path, seed)`` writes a folder in the real Hugging Face layout (config.json,
model.safetensors, vocab.json/merges.txt/tokenizer.json/tokenizer_config.json, preprocessor_config.json)
that ``load_encoder`` loads like ``laion/clap-htsat-unfused``: same classes, same 48 kHz / 10 s feature
extractor with 64 mel bins, but a model of ~14 k parameters with ``projection_dim = TINY_DIM`` (32).
Building one takes well under a second; embedding 16 windows about half a second on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TINY_DIM = 32
_WORDS = (
    "dog barking cat meowing bird singing chirping rain falling thunder storm wind blowing car engine "
    "horn traffic train passing plane flying siren alarm bell ringing clock ticking door knock closing "
    "footsteps walking running people talking crowd cheering applause laughter baby crying speech "
    "water flowing stream river ocean waves splash dripping tap fire crackling glass breaking metal "
    "hammer drilling sawing typing keyboard phone music piano guitar drum violin flute trumpet choir "
    "orchestra electronic beat bass loud quiet soft distant close a the of and in with on at from "
    "sound noise recording field ambience indoor outdoor night morning city forest street kitchen"
).split()
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa ids 0..4


def _corpus(seed: int) -> list[str]:
    """A few hundred short sentences over ``_WORDS`` (deterministic for a seed)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 9))) for _ in range(400)]


def _save_tokenizer(path: Path, seed: int) -> int:
    """Train a byte-level BPE (RoBERTa style) on the spot and save it as CLAP's RobertaTokenizer; returns its size."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _corpus(seed), vocab_size=400, min_frequency=1, special_tokens=_SPECIALS, show_progress=False
    )
    work = path / ".bpe"
    work.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(work))
    tokenizer = _roberta_tokenizer(work / "vocab.json", work / "merges.txt")
    tokenizer.save_pretrained(str(path))
    for item in work.iterdir():
        item.unlink()
    work.rmdir()
    return len(tokenizer)


def _roberta_tokenizer(vocab_file: Path, merges_file: Path) -> Any:
    """transformers 5 builds ``RobertaTokenizer`` from vocab/merges objects; 4.x from files (Fast class)."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
        lines = merges_file.read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
        return transformers.RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=512)
    return transformers.RobertaTokenizerFast(
        vocab_file=str(vocab_file), merges_file=str(merges_file), model_max_length=512
    )


def tiny_clap_config(vocab_size: int, fusion: bool = False) -> Any:
    """A ``ClapConfig`` small enough for CPU tests; the audio side keeps 64 mel bins and a 256 spec size.

    ``fusion`` builds the "fused" variant (like ``laion/clap-htsat-fused``: AFF-2D feature fusion).
    """
    from transformers import ClapConfig

    text = {
        "vocab_size": vocab_size,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 128,
    }
    audio = {
        "num_mel_bins": 64,
        "spec_size": 256,
        "patch_size": 4,
        "patch_stride": 4,
        "window_size": 8,
        "patch_embeds_hidden_size": 8,
        "hidden_size": 16,  # = patch_embeds_hidden_size * 2 ** (len(depths) - 1)
        "depths": [1, 1],
        "num_attention_heads": [1, 2],
        "num_hidden_layers": 2,
        "enable_fusion": fusion,
        "fusion_type": "aff_2d" if fusion else None,
    }
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=TINY_DIM)


def make_tiny_clap(path: Path, seed: int = 0, *, fusion: bool = False) -> Path:
    """Write a tiny random ``ClapModel`` (seeded) with its tokenizer and feature extractor into ``path``.

    ``fusion=True`` gives the fused variant with the ``fusion`` truncation mode, as ``laion/clap-htsat-fused``.
    """
    import torch
    from transformers import ClapFeatureExtractor, ClapModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_size = _save_tokenizer(path, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(tiny_clap_config(vocab_size, fusion)).eval()
    _quietly(model.save_pretrained, str(path), safe_serialization=True)
    extractor = ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=48_000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14_000,
        truncation="fusion" if fusion else "rand_trunc",
        padding="repeatpad",
    )
    extractor.save_pretrained(str(path))
    return path


def _quietly(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``function`` with transformers' progress bars off (they clutter test output)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return function(*args, **kwargs)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


@pytest.fixture(scope="session", autouse=True)
def _isolated_dgsearch_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the weights-digest cache of the test run out of the user's home."""
    from diffgap_search.encoders.weights.fingerprint import CACHE_DIR_ENV

    folder = tmp_path_factory.mktemp("dgsearch-cache")
    previous = os.environ.get(CACHE_DIR_ENV)
    os.environ[CACHE_DIR_ENV] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(CACHE_DIR_ENV, None)
    else:
        os.environ[CACHE_DIR_ENV] = previous


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLAP model folder (seed 0) in the real Hugging Face layout, built once per session."""
    return make_tiny_clap(tmp_path_factory.mktemp("tiny-clap") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_clap_dir: Path) -> Any:
    """The tiny model loaded as a ``ClapEncoder`` on CPU (dim 32, 48 kHz, 480 000-sample windows)."""
    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder

    return load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=4), progress=False)
