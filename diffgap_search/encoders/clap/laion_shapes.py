"""Read a LAION-CLAP checkpoint's architecture from its tensors' shapes: a transformers ``ClapConfig``, the
variant's name, the fusion type, and the ``ClapFeatureExtractor`` settings LAION-CLAP computes with.

Nothing here trusts a file name or a stored config: LAION's ``.pt`` files hold only tensors (and the
trainer's epoch, run name and optimizer state). Sources, all in LAION-AI/CLAP ``src/laion_clap/``:

- ``clap_module/htsat.py``: ``create_htsat_model`` (tiny: embed 96, depths 2-2-6-2; base: 128, 2-2-12-2;
  large: 256, 2-2-12-2; all spec_size 256, patch 4, stride 4, window 8, heads 4-8-16-32);
  ``WindowAttention.relative_position_bias_table`` is ``((2w-1)^2, heads)``; a shifted block's
  ``attn_mask`` is ``(windows, w^2, w^2)``; ``PatchEmbed`` holds ``mel_conv2d`` + ``fusion_model`` for the
  2-D fusion types.
- ``clap_module/feature_fusion.py``: ``AFF`` (``local_att``/``global_att``), ``iAFF`` (adds
  ``local_att2``/``global_att2``), ``DAF`` (no weights). transformers implements AFF only (``aff_2d``).
- ``clap_module/model_configs/HTSAT-tiny.json``, ``HTSAT-base.json``, ``HTSAT-large.json`` (and
  ``HTSAT-tiny-win-1536.json``): ``audio_cfg`` = 48 kHz, window (n_fft) 1024 (1536), hop 480, 64 mel bins,
  fmin 50, fmax 14000, 480 000 clip samples.
- ``clap_module/model.py``: ``CLAP`` loads the text branch with ``RobertaModel.from_pretrained('roberta-base')``
  (12 heads of 64, layer-norm eps 1e-5, padding id 1) and ``mlp_act='relu'`` projections.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from diffgap_search.errors import ModelUnavailableError

# model_configs/HTSAT-*.json "audio_cfg" (every HTSAT config LAION ships); hop and rate are not in any shape.
LAION_AUDIO_CFG: dict[str, int] = {
    "sample_rate": 48_000, "window_size": 1024, "hop_size": 480, "mel_bins": 64, "fmin": 50, "fmax": 14_000,
    "clip_samples": 480_000,
}
HTSAT_SPEC_SIZE = 256  # create_htsat_model passes spec_size=256 for tiny, base and large
TEXT_HEAD_DIM = 64  # roberta-base: 768 / 12 heads; the head count is not in any tensor's shape
ROBERTA_BASE: dict[str, Any] = {
    "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu",
}
KNOWN_HTSAT: dict[tuple[int, tuple[int, ...]], str] = {
    (96, (2, 2, 6, 2)): "HTSAT-tiny",
    (128, (2, 2, 12, 2)): "HTSAT-base",
    (256, (2, 2, 12, 2)): "HTSAT-large",
}
MEL_FILTER_TOLERANCE = 1e-5  # relative to the largest filter weight; other fmin/fmax/rates differ by > 0.5
_QKV = re.compile(r"audio_branch\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.weight")
_TEXT_LAYER = re.compile(r"text_branch\.encoder\.layer\.(\d+)\.")
_ATTN_MASK = re.compile(r"audio_branch\.layers\.(\d+)\.blocks\.(\d+)\.attn_mask")


def audio_branch_kind(sd: Mapping[str, torch.Tensor]) -> str:
    """``htsat``, ``pann`` (LAION's CNN14 audio branches), ``none`` (no ``audio_branch.`` keys) or ``unknown``."""
    if "audio_branch.patch_embed.proj.weight" in sd and any(_QKV.fullmatch(key) for key in sd):
        return "htsat"
    if any(key.startswith("audio_branch.conv_block1.") for key in sd):
        return "pann"
    return "none" if not any(key.startswith("audio_branch.") for key in sd) else "unknown"


def text_branch_kind(sd: Mapping[str, torch.Tensor]) -> str:
    """``roberta``, ``bert``, ``bart``, ``transformer`` (CLIP-style), ``none`` or ``unknown``.

    BERT and RoBERTa share every tensor name; RoBERTa has one token type (``token_type_embeddings`` is
    ``(1, H)``), BERT two.
    """
    token_types = sd.get("text_branch.embeddings.token_type_embeddings.weight")
    if "text_branch.embeddings.word_embeddings.weight" in sd:
        return "roberta" if token_types is not None and token_types.shape[0] == 1 else "bert"
    if "text_branch.shared.weight" in sd or any(key.startswith("text_branch.encoder.layers.") for key in sd):
        return "bart"
    if "token_embedding.weight" in sd or any(key.startswith("text_branch.resblocks.") for key in sd):
        return "transformer"
    return "none" if not any(key.startswith("text_branch.") for key in sd) else "unknown"


def fusion_type(sd: Mapping[str, torch.Tensor]) -> str | None:
    """LAION's ``fusion_type`` read from the tensors present: None (no fusion), ``aff_2d``, ``iaff_2d``,
    ``daf_2d``, ``channel_map`` or ``1d`` (``mel_conv1d``: daf/aff/iaff_1d). Only None and ``aff_2d`` load."""
    if any(key.startswith("audio_branch.mel_conv1d.") for key in sd):
        return "1d"
    proj = sd.get("audio_branch.patch_embed.proj.weight")
    if proj is not None and proj.dim() == 4 and proj.shape[1] == 4:
        return "channel_map"
    if "audio_branch.patch_embed.mel_conv2d.weight" not in sd:
        return None
    fusion_keys = [key for key in sd if key.startswith("audio_branch.patch_embed.fusion_model.")]
    if not fusion_keys:
        return "daf_2d"
    return "iaff_2d" if any(".local_att2." in key or ".global_att2." in key for key in fusion_keys) else "aff_2d"


def infer_audio_config(sd: Mapping[str, torch.Tensor], fusion: str | None) -> dict[str, Any]:
    """``ClapAudioConfig`` keyword arguments from the HTSAT tensors' shapes (see the module docstring)."""
    embed, channels, patch_h, patch_w = _shape(sd, "audio_branch.patch_embed.proj.weight", dims=4)
    depths = _depths(sd)
    heads, window = _heads_and_window(sd, depths)
    fc1_out, fc1_in = _shape(sd, "audio_branch.layers.0.blocks.0.mlp.fc1.weight", dims=2)
    mel_bins = _shape(sd, "audio_branch.bn0.weight", dims=1)[0]
    config: dict[str, Any] = {
        "patch_embeds_hidden_size": embed,
        "patch_embed_input_channels": channels,
        "patch_size": patch_h if patch_h == patch_w else [patch_h, patch_w],
        "patch_stride": [patch_h, patch_w],  # create_htsat_model: stride == patch size (4, 4)
        "depths": list(depths),
        "num_attention_heads": heads,
        "num_hidden_layers": len(depths),
        "window_size": window,
        "hidden_size": embed * 2 ** (len(depths) - 1),
        "mlp_ratio": fc1_out / fc1_in,
        "qkv_bias": "audio_branch.layers.0.blocks.0.attn.qkv.bias" in sd,
        "enable_patch_layer_norm": "audio_branch.patch_embed.norm.weight" in sd,
        "num_mel_bins": mel_bins,
        "spec_size": _spec_size(sd, window, patch_h),
        "enable_fusion": fusion is not None,
        "fusion_type": fusion,
        "layer_norm_eps": 1e-5,  # htsat.py: nn.LayerNorm defaults
    }
    head = sd.get("audio_branch.head.weight")
    if head is not None:
        config["num_classes"] = int(head.shape[0])
    if fusion == "aff_2d":
        inter = _shape(sd, "audio_branch.patch_embed.fusion_model.local_att.0.weight")[0]
        config["aff_block_r"] = max(1, embed // inter)
    return config


def infer_text_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``ClapTextConfig`` keyword arguments from a RoBERTa text branch's shapes (+ roberta-base's constants)."""
    vocab, hidden = _shape(sd, "text_branch.embeddings.word_embeddings.weight", dims=2)
    if hidden % TEXT_HEAD_DIM:
        raise ModelUnavailableError(
            f"the text branch's width {hidden} is not a multiple of {TEXT_HEAD_DIM}: the number of attention "
            "heads cannot be told from the tensors (LAION-CLAP uses roberta-base, 768 wide, 12 heads)"
        )
    layers = {int(m.group(1)) for key in sd if (m := _TEXT_LAYER.match(key))}
    if not layers or layers != set(range(len(layers))):
        raise ModelUnavailableError(f"the text branch's encoder layers are not numbered 0..n-1: {sorted(layers)}")
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "num_attention_heads": hidden // TEXT_HEAD_DIM,
        "intermediate_size": _shape(sd, "text_branch.encoder.layer.0.intermediate.dense.weight", dims=2)[0],
        "max_position_embeddings": _shape(sd, "text_branch.embeddings.position_embeddings.weight", dims=2)[0],
        "type_vocab_size": _shape(sd, "text_branch.embeddings.token_type_embeddings.weight", dims=2)[0],
        **ROBERTA_BASE,
    }


def projection_dim(sd: Mapping[str, torch.Tensor]) -> int:
    """P, the joint space's size: the rows of both projections' first linear (LAION's ``joint_embed_shape``)."""
    audio = _shape(sd, "audio_projection.0.weight", dims=2)[0]
    text = _shape(sd, "text_projection.0.weight", dims=2)[0]
    if audio != text:
        raise ModelUnavailableError(f"the audio and text projections disagree on the joint size ({audio} vs {text})")
    return audio


def variant_name(audio: Mapping[str, Any], n_fft: int) -> str:
    """``HTSAT-tiny``, ``HTSAT-base``, ``HTSAT-large`` (LAION's model config names, ``-win-1536`` when the
    STFT window is not 1024), or ``HTSAT(embed_dim=E, depths=a-b-c-d)`` for other shapes; ``+fusion`` appended."""
    embed, depths = int(audio["patch_embeds_hidden_size"]), tuple(int(d) for d in audio["depths"])
    name = KNOWN_HTSAT.get((embed, depths))
    if name is None:
        name = f"HTSAT(embed_dim={embed}, depths={'-'.join(map(str, depths))})"
    elif n_fft != LAION_AUDIO_CFG["window_size"]:
        name += f"-win-{n_fft}"
    return name + ("+fusion" if audio["enable_fusion"] else "")


def stft_size(sd: Mapping[str, torch.Tensor]) -> int:
    """n_fft from torchlibrosa's STFT kernels ``(n_fft/2+1, 1, n_fft)``, else from ``melW``, else LAION's 1024."""
    kernel = sd.get("audio_branch.spectrogram_extractor.stft.conv_real.weight")
    if kernel is not None and kernel.dim() == 3:
        return int(kernel.shape[2])
    mel = sd.get("audio_branch.logmel_extractor.melW")
    if mel is not None and mel.dim() == 2:
        return 2 * (int(mel.shape[0]) - 1)
    return LAION_AUDIO_CFG["window_size"]


def feature_extractor_kwargs(sd: Mapping[str, torch.Tensor], mel_bins: int, fusion: bool) -> dict[str, Any]:
    """``ClapFeatureExtractor`` keyword arguments equal to LAION-CLAP's audio front end for this checkpoint.

    Non-fusion models: torchlibrosa's Slaney-scale log-mel inside HTSAT -> ``truncation="rand_trunc"``
    (transformers' ``mel_filters_slaney``). Fusion models: LAION's data pipeline (``training/data.py``
    ``get_mel``, torchaudio HTK-scale) -> ``truncation="fusion"``. Short clips are repeat-padded (``repeatpad``).
    """
    kwargs: dict[str, Any] = {
        "feature_size": mel_bins,
        "sampling_rate": LAION_AUDIO_CFG["sample_rate"],
        "hop_length": LAION_AUDIO_CFG["hop_size"],
        "max_length_s": LAION_AUDIO_CFG["clip_samples"] // LAION_AUDIO_CFG["sample_rate"],
        "fft_window_size": stft_size(sd),
        "frequency_min": LAION_AUDIO_CFG["fmin"],
        "frequency_max": LAION_AUDIO_CFG["fmax"],
        "top_db": None,  # htsat.py LogmelFilterBank(top_db=None); data.py AmplitudeToDB(top_db=None)
        "truncation": "fusion" if fusion else "rand_trunc",
        "padding": "repeatpad",
    }
    check_mel_filters(sd, kwargs)
    return kwargs


def check_mel_filters(sd: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose stored ``melW`` ``(n_fft/2+1, mels)`` is not the Slaney filter bank that
    ``ClapFeatureExtractor(**kwargs)`` computes (another rate, fmin or fmax). Absent ``melW``: nothing to check."""
    mel = sd.get("audio_branch.logmel_extractor.melW")
    if mel is None:
        return
    from transformers import ClapFeatureExtractor

    expected = np.asarray(ClapFeatureExtractor(**kwargs).mel_filters_slaney, dtype=np.float64)
    found = mel.detach().to(torch.float64).cpu().numpy()
    if found.shape != expected.shape:
        raise ModelUnavailableError(
            f"the checkpoint's mel filter bank is {tuple(found.shape)}, expected {expected.shape} "
            f"(n_fft {kwargs['fft_window_size']}, {kwargs['feature_size']} mel bins)"
        )
    error = float(np.max(np.abs(found - expected)))
    if error > MEL_FILTER_TOLERANCE * float(np.max(np.abs(expected))):
        raise ModelUnavailableError(
            f"the checkpoint's mel filter bank differs from LAION-CLAP's {kwargs['sampling_rate']} Hz, "
            f"{kwargs['frequency_min']}-{kwargs['frequency_max']} Hz one (max difference {error:.3g}): "
            "its audio front end is not supported"
        )


def _depths(sd: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """Blocks per stage, counted from ``layers.i.blocks.j.attn.qkv.weight``."""
    blocks: dict[int, set[int]] = {}
    for key in sd:
        match = _QKV.fullmatch(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    stages = sorted(blocks)
    if stages != list(range(len(stages))) or any(blocks[s] != set(range(len(blocks[s]))) for s in stages):
        raise ModelUnavailableError("the HTSAT stages or blocks in the checkpoint are not numbered 0..n-1")
    return tuple(len(blocks[s]) for s in stages)


def _heads_and_window(sd: Mapping[str, torch.Tensor], depths: tuple[int, ...]) -> tuple[list[int], int]:
    """Heads per stage and the attention window w, from ``relative_position_bias_table`` ``((2w-1)^2, heads)``."""
    heads: list[int] = []
    rows_seen: set[int] = set()
    for stage, depth in enumerate(depths):
        shapes = {
            _shape(sd, f"audio_branch.layers.{stage}.blocks.{block}.attn.relative_position_bias_table", dims=2)
            for block in range(depth)
        }
        if len(shapes) != 1:
            raise ModelUnavailableError(f"HTSAT stage {stage} mixes attention shapes {sorted(shapes)}")
        rows, stage_heads = shapes.pop()
        rows_seen.add(rows)
        heads.append(stage_heads)
    side = math.isqrt(next(iter(rows_seen)))
    if len(rows_seen) != 1 or side * side not in rows_seen or side % 2 == 0:
        raise ModelUnavailableError(
            f"the HTSAT attention windows differ between stages or are not square ({sorted(rows_seen)} bias rows); "
            "transformers' ClapModel uses one window size"
        )
    return heads, (side + 1) // 2


def _spec_size(sd: Mapping[str, torch.Tensor], window: int, patch_stride: int) -> int:
    """spec_size from a shifted block's ``attn_mask`` ``(windows, w^2, w^2)``: stage i's grid side is
    ``w * sqrt(windows)``, stage 0's is ``2^i`` times that, and spec_size is stage 0's side times the patch
    stride. Without any mask (no shifted block), LAION's fixed 256."""
    for key, tensor in sorted(sd.items()):
        match = _ATTN_MASK.fullmatch(key)
        if match and tensor.dim() == 3 and tensor.shape[1] == window * window:
            side = math.isqrt(int(tensor.shape[0]))
            if side * side == tensor.shape[0]:
                return window * side * 2 ** int(match.group(1)) * patch_stride
    return HTSAT_SPEC_SIZE


def _shape(sd: Mapping[str, torch.Tensor], key: str, dims: int | None = None) -> tuple[int, ...]:
    tensor = sd.get(key)
    if tensor is None:
        raise ModelUnavailableError(f"the checkpoint lacks {key}, which every LAION-CLAP HTSAT/RoBERTa model has")
    if dims is not None and tensor.dim() != dims:
        raise ModelUnavailableError(f"{key} has shape {tuple(tensor.shape)}, expected {dims} dimensions")
    return tuple(int(n) for n in tensor.shape)
