"""Rename an original LAION-CLAP state dict into transformers' ``ClapModel`` names. Pure key work, no I/O.

The source layout is LAION-AI/CLAP's ``CLAP`` module (``src/laion_clap/clap_module/model.py``): an
``audio_branch`` (``HTSAT_Swin_Transformer``, ``htsat.py``), a ``text_branch`` (``RobertaModel``), the
``audio_projection``/``text_projection`` ``nn.Sequential(Linear, ReLU, Linear)`` (indices 0 and 2), the
training-only ``audio_transform``/``text_transform`` ``MLPLayers`` and ``logit_scale_a``/``logit_scale_t``.
The target names are those of transformers' ``modeling_clap.py`` (``ClapAudioEncoder``, ``ClapTextModel``,
``ClapProjectionLayer``). transformers' own ``convert_clap_original_pytorch_to_hf.py`` does the same job
with substring replacements (``KEYS_TO_MODIFY_MAPPING``) and ``load_state_dict(strict=False)``; here
every key must match one anchored rule, or it is reported as unmapped and the checkpoint is refused.

``qkv`` (HTSAT's fused ``WindowAttention.qkv``, ``(3C, C)``) is split in its first dimension into query,
key and value, in that order: ``WindowAttention.forward`` reshapes its output to ``(B, N, 3, heads,
C/heads)`` and takes ``q, k, v = qkv[0], qkv[1], qkv[2]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

AUDIO_SRC, AUDIO_DST = "audio_branch.", "audio_model.audio_encoder."
TEXT_SRC, TEXT_DST = "text_branch.", "text_model."
_PARAM = r"(weight|bias)"
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_BLOCK = r"layers\.(\d+)\.blocks\.(\d+)\."

# HTSAT_Swin_Transformer (htsat.py) -> ClapAudioEncoder, both relative to their branch prefix.
AUDIO_RULES: tuple[tuple[str, str], ...] = (
    (rf"bn0\.{_BN}", r"batch_norm.\1"),
    (rf"patch_embed\.(proj|norm|mel_conv2d)\.{_PARAM}", r"patch_embed.\1.\2"),
    (rf"patch_embed\.fusion_model\.(local_att|global_att)\.(\d+)\.{_BN}", r"patch_embed.fusion_model.\1.\2.\3"),
    (rf"{_BLOCK}norm1\.{_PARAM}", r"layers.\1.blocks.\2.layernorm_before.\3"),
    (rf"{_BLOCK}norm2\.{_PARAM}", r"layers.\1.blocks.\2.layernorm_after.\3"),
    (
        rf"{_BLOCK}attn\.relative_position_bias_table",
        r"layers.\1.blocks.\2.attention.self.relative_position_bias_table",
    ),
    (rf"{_BLOCK}attn\.proj\.{_PARAM}", r"layers.\1.blocks.\2.attention.output.dense.\3"),
    (rf"{_BLOCK}mlp\.fc1\.{_PARAM}", r"layers.\1.blocks.\2.intermediate.dense.\3"),
    (rf"{_BLOCK}mlp\.fc2\.{_PARAM}", r"layers.\1.blocks.\2.output.dense.\3"),
    (rf"layers\.(\d+)\.downsample\.(reduction|norm)\.{_PARAM}", r"layers.\1.downsample.\2.\3"),
    (rf"norm\.{_PARAM}", r"norm.\1"),
)
QKV_RULE = (rf"{_BLOCK}attn\.qkv\.{_PARAM}", r"layers.\1.blocks.\2.attention.self.{part}.\3")

# RobertaModel (transformers, as LAION loads it) -> ClapTextModel: the same names under another prefix.
TEXT_RULES: tuple[str, ...] = (
    r"embeddings\.(word_embeddings|position_embeddings|token_type_embeddings)\.weight",
    rf"embeddings\.LayerNorm\.{_PARAM}",
    rf"encoder\.layer\.\d+\.attention\.self\.(query|key|value)\.{_PARAM}",
    rf"encoder\.layer\.\d+\.attention\.output\.(dense|LayerNorm)\.{_PARAM}",
    rf"encoder\.layer\.\d+\.intermediate\.dense\.{_PARAM}",
    rf"encoder\.layer\.\d+\.output\.(dense|LayerNorm)\.{_PARAM}",
    rf"pooler\.dense\.{_PARAM}",
)

# CLAP's own modules (model.py) -> ClapModel.
TOP_RULES: tuple[tuple[str, str], ...] = (
    (rf"(audio|text)_projection\.0\.{_PARAM}", r"\1_projection.linear1.\2"),
    (rf"(audio|text)_projection\.2\.{_PARAM}", r"\1_projection.linear2.\2"),
    (r"logit_scale_(a|t)", r"logit_scale_\1"),
)

# Keys deliberately left out, by group; the reason is the docstring of ``DROPPED_GROUPS``.
DROPPED_GROUPS: dict[str, tuple[str, ...]] = {
    "feature extractor": (
        r"audio_branch\.spectrogram_extractor\.stft\.conv_(real|imag)\.weight",
        r"audio_branch\.logmel_extractor\.melW",
    ),
    "classification head": (rf"audio_branch\.tscam_conv\.{_PARAM}", rf"audio_branch\.head\.{_PARAM}"),
    "recomputed buffers": (
        rf"audio_branch\.{_BLOCK}attn_mask",
        rf"audio_branch\.{_BLOCK}attn\.relative_position_index",
        r"text_branch\.embeddings\.(position_ids|token_type_ids)",
    ),
    "training-only MLPs": (rf"(audio|text)_transform\.sequential\.\d+\.{_PARAM}",),
}
"""Why each group is not mapped:

- ``feature extractor``: torchlibrosa's frozen STFT kernels (``spectrogram_extractor.stft.conv_real/imag``,
  ``(n_fft/2+1, 1, n_fft)``) and mel filter bank (``logmel_extractor.melW``, ``(n_fft/2+1, mels)``).
  transformers computes the log-mel outside the model, in ``ClapFeatureExtractor``; their shapes give
  ``n_fft`` and the mel count, and ``melW`` is checked against the extractor's own filter bank.
- ``classification head``: HTS-AT's AudioSet head (``tscam_conv``, ``head``; 527 classes). It produces
  ``framewise_output``/``clipwise_output``; the ``embedding`` that CLAP projects is pooled before it,
  and transformers' ``ClapAudioEncoder`` has no such modules.
- ``recomputed buffers``: Swin's shifted-window ``attn_mask`` (transformers builds it in
  ``ClapAudioLayer.get_attn_mask`` at each call), ``relative_position_index`` (built by
  ``ClapAudioSelfAttention.create_relative_position_index``) and RoBERTa's ``position_ids``/``token_type_ids``
  (``arange``/zeros; LAION's own ``factory.load_state_dict`` deletes ``position_ids`` for transformers >= 4.31).
  All are functions of the config, which ``ClapModel`` fills itself.
- ``training-only MLPs``: ``audio_transform``/``text_transform`` (``MLPLayers``) feed only the training
  loss (``CLAP.forward`` returns ``*_features_mlp``); ``get_audio_embedding``/``get_text_embedding`` and
  transformers' ``get_*_features`` never use them.
"""


@dataclass(frozen=True)
class MappedStateDict:
    """The outcome of ``map_laion_keys``.

    Attributes:
        state_dict: transformers name -> tensor (floating tensors as float32; ``qkv`` split in three).
        dropped: LAION names deliberately not mapped (see ``DROPPED_GROUPS``), sorted.
        unmapped: LAION names that match no rule: tensors ``ClapModel`` has no place for, sorted.
    """

    state_dict: dict[str, torch.Tensor]
    dropped: tuple[str, ...]
    unmapped: tuple[str, ...]


def map_laion_keys(laion: Mapping[str, torch.Tensor]) -> MappedStateDict:
    """Rename every tensor of a LAION-CLAP state dict (no ``module.`` prefix) to transformers' names."""
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unmapped: list[str] = []
    for key, tensor in laion.items():
        if dropped_group(key) is not None:
            dropped.append(key)
            continue
        renamed = _rename(key, tensor)
        if renamed is None:
            unmapped.append(key)
            continue
        for name, value in renamed.items():
            mapped[name] = value.float() if value.is_floating_point() else value
    return MappedStateDict(mapped, tuple(sorted(dropped)), tuple(sorted(unmapped)))


def dropped_group(key: str) -> str | None:
    """The ``DROPPED_GROUPS`` name a LAION key belongs to, or None."""
    for group, patterns in DROPPED_GROUPS.items():
        if any(re.fullmatch(pattern, key) for pattern in patterns):
            return group
    return None


def split_qkv(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(3C, ...)`` fused projection -> its query, key and value parts, each ``(C, ...)`` (views, same dtype)."""
    if qkv.shape[0] % 3:
        raise ValueError(f"a fused qkv tensor needs a first dimension divisible by 3, got shape {tuple(qkv.shape)}")
    query, key, value = qkv.chunk(3, dim=0)
    return query, key, value


def _rename(key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """transformers name(s) -> tensor for one LAION key, or None when no rule matches."""
    if key.startswith(AUDIO_SRC):
        return _rename_audio(key[len(AUDIO_SRC):], tensor)
    if key.startswith(TEXT_SRC):
        rest = key[len(TEXT_SRC):]
        if any(re.fullmatch(pattern, rest) for pattern in TEXT_RULES):
            return {TEXT_DST + rest: tensor}
        return None
    for pattern, template in TOP_RULES:
        match = re.fullmatch(pattern, key)
        if match:
            return {match.expand(template): tensor}
    return None


def _rename_audio(rest: str, tensor: torch.Tensor) -> dict[str, torch.Tensor] | None:
    pattern, template = QKV_RULE
    match = re.fullmatch(pattern, rest)
    if match:
        if tensor.shape[0] % 3:
            return None  # not a fused projection: leave it unmapped, the checkpoint is refused
        parts = dict(zip(("query", "key", "value"), split_qkv(tensor)))
        return {AUDIO_DST + match.expand(template.format(part=part)): value for part, value in parts.items()}
    for pattern, template in AUDIO_RULES:
        match = re.fullmatch(pattern, rest)
        if match:
            return {AUDIO_DST + match.expand(template): tensor}
    return None
