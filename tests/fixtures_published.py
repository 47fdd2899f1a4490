"""Model repositories in the layouts their publishers ship on the Hugging Face hub, with tiny random weights.

Our own fixtures (``fixtures_models.make_tiny_clap``) write what today's transformers ``save_pretrained``
writes. Real users download what the publishers uploaded, in 2023, with transformers 4.27:

- ``laion/clap-htsat-unfused`` and ``laion/clap-htsat-fused``: ``.gitattributes``, ``README.md``,
  ``config.json`` (4.27 serialisation, with the generation defaults every sub-config carried then),
  ``preprocessor_config.json``, ``merges.txt``, ``vocab.json``, ``tokenizer.json``, ``tokenizer_config.json``
  (the old form, ``name_or_path: roberta-base``, AddedToken dicts), ``special_tokens_map.json`` and the
  weights only as a pickled ``pytorch_model.bin`` (the state dict of that day, including the
  ``text_model.embeddings.position_ids`` buffer later versions stopped saving). No ``model.safetensors``.
- ``openai/clip-vit-base-patch32``: the same kinds of files plus ``tf_model.h5`` and ``flax_model.msgpack``,
  ``preprocessor_config.json`` in the old ``CLIPFeatureExtractor`` form (``size: 224``, ``crop_size: 224``),
  a ``config.json`` with ``text_config_dict``/``vision_config_dict`` set to null, and ``pytorch_model.bin``.
- ``laion/larger_clap_*``: HTSAT-base audio towers (wider patch embedding, 12 blocks in stage 3), published
  later; two are served here with both ``model.safetensors`` and ``pytorch_model.bin`` (a loader fetching
  both formats is caught), one with safetensors only. Their exact listings could not be read from here.

The file *names* follow the hub listings; the weights are tiny and random (seeded), and the shapes are
scaled-down versions of each variant's (same depth pattern and ratios). The TF and Flax files hold random
bytes: they are there to prove they are never fetched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fixtures_models import _corpus, _quietly

TINY_DIM = 32
CLAP_DEFAULT = "laion/clap-htsat-unfused"
CLIP_DEFAULT = "openai/clip-vit-base-patch32"
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# Keys transformers 4.27 wrote into every sub-config (PretrainedConfig's generation defaults of that day).
_LEGACY_SUBCONFIG_KEYS: dict[str, Any] = {
    "_name_or_path": "", "add_cross_attention": False, "architectures": None, "bad_words_ids": None,
    "begin_suppress_tokens": None, "chunk_size_feed_forward": 0, "cross_attention_hidden_size": None,
    "decoder_start_token_id": None, "diversity_penalty": 0.0, "do_sample": False, "early_stopping": False,
    "encoder_no_repeat_ngram_size": 0, "exponential_decay_length_penalty": None, "finetuning_task": None,
    "forced_bos_token_id": None, "forced_eos_token_id": None, "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "is_decoder": False, "is_encoder_decoder": False, "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "length_penalty": 1.0, "max_length": 20, "min_length": 0, "no_repeat_ngram_size": 0,
    "num_beam_groups": 1, "num_beams": 1, "num_return_sequences": 1, "output_attentions": False,
    "output_hidden_states": False, "output_scores": False, "prefix": None, "problem_type": None,
    "pruned_heads": {}, "remove_invalid_values": False, "repetition_penalty": 1.0, "return_dict": True,
    "return_dict_in_generate": False, "sep_token_id": None, "suppress_tokens": None,
    "task_specific_params": None, "temperature": 1.0, "tf_legacy_loss": False, "tie_encoder_decoder": False,
    "tie_word_embeddings": True, "tokenizer_class": None, "top_k": 50, "top_p": 1.0, "torch_dtype": None,
    "torchscript": False, "transformers_version": "4.27.0.dev0", "typical_p": 1.0, "use_bfloat16": False,
}


@dataclass(frozen=True)
class ClapVariant:
    """One LAION-CLAP repository on the hub: its audio tower's (scaled-down) shape, its preprocessing, and the
    weight formats it publishes."""

    repo_id: str
    patch_embeds_hidden_size: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    fusion: bool
    truncation: str
    formats: tuple[str, ...]  # "bin", "safetensors"

    @property
    def hidden_size(self) -> int:
        return self.patch_embeds_hidden_size * 2 ** (len(self.depths) - 1)


# HTSAT-tiny: embed 96, depths [2, 2, 6, 2], heads [4, 8, 16, 32]; HTSAT-base: embed 128, depths [2, 2, 12, 2].
_TINY = {"patch_embeds_hidden_size": 8, "depths": (1, 1, 2, 1), "heads": (1, 2, 4, 8)}
_BASE = {"patch_embeds_hidden_size": 16, "depths": (1, 1, 3, 1), "heads": (1, 2, 4, 8)}
CLAP_VARIANTS: dict[str, ClapVariant] = {
    v.repo_id: v
    for v in (
        ClapVariant("laion/clap-htsat-unfused", **_TINY, fusion=False, truncation="rand_trunc", formats=("bin",)),
        ClapVariant("laion/clap-htsat-fused", **_TINY, fusion=True, truncation="fusion", formats=("bin",)),
        ClapVariant("laion/larger_clap_general", **_BASE, fusion=False, truncation="rand_trunc",
                    formats=("safetensors", "bin")),
        ClapVariant("laion/larger_clap_music", **_BASE, fusion=False, truncation="rand_trunc",
                    formats=("safetensors", "bin")),
        ClapVariant("laion/larger_clap_music_and_speech", **_BASE, fusion=False, truncation="rand_trunc",
                    formats=("safetensors",)),
    )
}


def publish_clap(dest: Path, variant: ClapVariant, seed: int = 0) -> Path:
    """Write ``variant``'s repository as published (see the module docstring) into ``dest``."""
    import torch
    from transformers import ClapConfig, ClapModel

    dest.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_roberta_tokenizer(dest, seed)
    config = ClapConfig(text_config=_text_config(vocab_size), audio_config=_audio_config(variant),
                        projection_dim=TINY_DIM)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(config).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    positions = config.text_config.max_position_embeddings
    state["text_model.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)  # saved by 4.27
    if "bin" in variant.formats:
        torch.save(state, dest / "pytorch_model.bin")
    if "safetensors" in variant.formats:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "model.safetensors"),
                  metadata={"format": "pt"})
    _write_json(dest / "config.json", _legacy_clap_config(config))
    _write_json(dest / "preprocessor_config.json", _clap_preprocessor(variant.truncation))
    _write_common(dest, variant.repo_id)
    return dest


def publish_clip(dest: Path, seed: int = 0, projection_dim: int = 16) -> Path:
    """Write ``openai/clip-vit-base-patch32`` as published (tiny random weights; image size 32, patch 8)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    dest.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_roberta_tokenizer(dest, seed)  # CLIP's BPE tokenizer files: never fetched for frames
    config = CLIPConfig(
        text_config={"vocab_size": vocab_size, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 2},
        vision_config={"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=projection_dim,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    state["vision_model.embeddings.position_ids"] = torch.arange(17).unsqueeze(0)
    torch.save(state, dest / "pytorch_model.bin")
    raw = config.to_dict()
    for key in ("text_config", "vision_config"):
        raw[key] = {**_LEGACY_SUBCONFIG_KEYS, **{k: v for k, v in raw[key].items() if k != "dtype"}}
    raw.update({"text_config_dict": None, "vision_config_dict": None, "architectures": ["CLIPModel"],
                "torch_dtype": "float32", "transformers_version": None})
    raw.pop("dtype", None)
    _write_json(dest / "config.json", raw)
    _write_json(dest / "preprocessor_config.json", {
        "crop_size": 32, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 32,
    })
    rng = __import__("numpy").random.default_rng(seed)
    (dest / "tf_model.h5").write_bytes(rng.bytes(300_000))
    (dest / "flax_model.msgpack").write_bytes(rng.bytes(300_000))
    _write_common(dest, CLIP_DEFAULT)
    return dest


def publish_roberta_base(dest: Path, seed: int = 0) -> Path:
    """``FacebookAI/roberta-base`` (formerly ``roberta-base``, the tokenizer LAION-CLAP loads) as published:
    ``config.json``, ``dict.txt``, ``merges.txt``, ``vocab.json``, ``tokenizer.json`` and weights in five formats
    (random bytes here: a tokenizer loader must fetch none of them). No ``tokenizer_config.json``: the class
    comes from ``config.json``'s model type."""
    import numpy as np

    dest.mkdir(parents=True, exist_ok=True)
    _write_roberta_tokenizer(dest, seed)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        (dest / name).unlink()
    _write_json(dest / "config.json", {"architectures": ["RobertaForMaskedLM"], "model_type": "roberta",
                                       "vocab_size": 50265, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2})
    (dest / "dict.txt").write_text("13 850314647\n262 800385005\n")
    rng = np.random.default_rng(seed)
    for name in ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot"):
        (dest / name).write_bytes(rng.bytes(200_000))
    _write_common(dest, "FacebookAI/roberta-base")
    return dest


def save_pretrained_today(src: Path, dest: Path) -> Path:
    """What today's transformers writes for the model in ``src``: ``ClapModel.save_pretrained`` plus
    ``ClapProcessor.save_pretrained`` (``processor_config.json`` with the feature extractor inside, no
    ``preprocessor_config.json``; ``tokenizer.json``, no vocab/merges)."""
    from transformers import ClapModel, ClapProcessor

    model = _quietly(ClapModel.from_pretrained, str(src))
    _quietly(model.save_pretrained, str(dest))
    ClapProcessor.from_pretrained(str(src)).save_pretrained(str(dest))
    return dest


def without(src: Path, dest: Path, *names: str) -> Path:
    """A copy of the folder ``src`` at ``dest`` without the files ``names``."""
    shutil.copytree(src, dest)
    for name in names:
        (dest / name).unlink()
    return dest


def _text_config(vocab_size: int) -> dict[str, Any]:
    return {"vocab_size": vocab_size, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 80}


def _audio_config(variant: ClapVariant) -> dict[str, Any]:
    return {
        "num_mel_bins": 64, "spec_size": 256, "patch_size": 4, "patch_stride": 4, "window_size": 8,
        "patch_embeds_hidden_size": variant.patch_embeds_hidden_size, "hidden_size": variant.hidden_size,
        "depths": list(variant.depths), "num_attention_heads": list(variant.heads),
        "num_hidden_layers": len(variant.depths), "enable_fusion": variant.fusion,
        "fusion_type": "aff_2d" if variant.fusion else None, "projection_hidden_size": variant.hidden_size,
    }


def _legacy_clap_config(config: Any) -> dict[str, Any]:
    """``config`` serialised the way transformers 4.27 did (the form the LAION repositories hold)."""
    raw = config.to_dict()
    raw["audio_config"] = {**_LEGACY_SUBCONFIG_KEYS, **{k: v for k, v in raw["audio_config"].items() if k != "dtype"}}
    raw["text_config"] = {**_LEGACY_SUBCONFIG_KEYS, **{k: v for k, v in raw["text_config"].items() if k != "dtype"}}
    raw.pop("dtype", None)
    raw.update({"_commit_hash": None, "architectures": ["ClapModel"], "torch_dtype": "float32",
                "transformers_version": None})
    return raw


def _clap_preprocessor(truncation: str) -> dict[str, Any]:
    """LAION-CLAP's ``preprocessor_config.json`` as published (48 kHz, 10 s, 64 mel bins, 50-14 000 Hz)."""
    return {
        "chunk_length_s": 10, "feature_extractor_type": "ClapFeatureExtractor", "feature_size": 64,
        "fft_window_size": 1024, "frequency_max": 14000, "frequency_min": 50, "hop_length": 480,
        "max_length_s": 10, "n_fft": 1024, "nb_frequency_bins": 513, "nb_max_frames": 1000,
        "nb_max_samples": 480000, "padding": "repeatpad", "padding_side": "right", "padding_value": 0.0,
        "processor_class": "ClapProcessor", "return_attention_mask": False, "sampling_rate": 48000,
        "top_db": None, "truncation": truncation,
    }


def _write_roberta_tokenizer(dest: Path, seed: int) -> int:
    """vocab.json, merges.txt, tokenizer.json, an old-style tokenizer_config.json and special_tokens_map.json."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(seed), vocab_size=400, min_frequency=1, special_tokens=_SPECIALS,
                            show_progress=False)
    bpe.save_model(str(dest))  # vocab.json + merges.txt
    from tokenizers.processors import RobertaProcessing

    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    bpe.save(str(dest / "tokenizer.json"))
    mask = {"__type": "AddedToken", "content": "<mask>", "lstrip": True, "normalized": True, "rstrip": False,
            "single_word": False}
    _write_json(dest / "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "errors": "replace",
        "mask_token": mask, "model_max_length": 512, "name_or_path": "roberta-base", "pad_token": "<pad>",
        "processor_class": "ClapProcessor", "sep_token": "</s>", "special_tokens_map_file": None,
        "tokenizer_class": "RobertaTokenizer", "trim_offsets": True, "unk_token": "<unk>",
    })
    _write_json(dest / "special_tokens_map.json", {
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": {k: v for k, v in mask.items() if k != "__type"},
        "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>",
    })
    return int(bpe.get_vocab_size())


def _write_common(dest: Path, repo_id: str) -> None:
    (dest / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n# {repo_id} (tiny random test copy)\n")
    (dest / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n"
                                         "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
                                         "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
                                         "*.msgpack filter=lfs diff=lfs merge=lfs -text\n")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def reference_embeddings(folder: Path, windows: Any, texts: list[str]) -> tuple[Any, Any]:
    """``(audio (N, D), text (T, D)) float32``, L2-normalised, computed by transformers alone from ``folder``:
    ``ClapModel.from_pretrained`` (which reads a pickle with ``weights_only`` itself), ``ClapProcessor``'s
    feature extractor and tokenizer, ``is_longer`` False (LAION-CLAP's inference for clips of at most 10 s;
    the extractor's random ``is_longer`` is a training trick)."""
    import numpy as np
    import torch
    from transformers import ClapModel, ClapProcessor

    model = _quietly(ClapModel.from_pretrained, str(folder)).eval()
    processor = ClapProcessor.from_pretrained(str(folder))
    features = processor.feature_extractor(list(windows), sampling_rate=48_000, return_tensors="pt")
    tokens = processor.tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.inference_mode():
        audio = model.get_audio_features(input_features=features["input_features"],
                                         is_longer=torch.zeros((len(windows), 1), dtype=torch.bool))
        text = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    out = []
    for value in (audio, text):
        tensor = value if isinstance(value, torch.Tensor) else value.pooler_output
        out.append(np.asarray(torch.nn.functional.normalize(tensor.float(), dim=-1)))
    return out[0], out[1]
