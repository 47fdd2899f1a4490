"""Original LAION-CLAP ``.pt`` checkpoints -> transformers' ``ClapModel``, without the laion-clap package.

The checkpoints are tiny seeded ``ClapModel``s written back in LAION's own layout (``fixtures_laion_pt.py``,
whose names come from LAION's source, not from our mapping), saved the way LAION's trainer saves them and
as bare state dicts, under misleading file names. Full-size architectures are checked on the meta device.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures_laion_pt import (
    FAMILIES,
    FULL_SIZE,
    laion_like_config,
    make_tiny_model,
    mel_filter_bank,
    save_bare_state_dict,
    save_trainer_checkpoint,
    to_laion_state_dict,
)

from diffgap_search.encoders.clap.laion_checkpoint import (
    LaionCheckpoint,
    build_clap_model,
    convert_laion_state_dict,
    read_laion_checkpoint,
)
from diffgap_search.encoders.clap.laion_keys import DROPPED_GROUPS, dropped_group
from diffgap_search.errors import ModelUnavailableError

# Each family saved under the name of a checkpoint of ANOTHER family: detection must come from shapes.
MISLEADING_NAME = {
    "tiny": "music_audioset_epoch_15_esc_90.14.pt",  # a real HTSAT-base name
    "base": "630k-audioset-fusion-best.pt",  # a real fused HTSAT-tiny name
    "tiny-fusion": "630k-audioset-best.pt",  # a real unfused HTSAT-tiny name
}
EXPECTED_VARIANT = {
    "tiny": "HTSAT(embed_dim=8, depths=2-2-6-2)",
    "base": "HTSAT(embed_dim=12, depths=2-2-12-2)",
    "tiny-fusion": "HTSAT(embed_dim=8, depths=2-2-6-2)+fusion",
}
AUDIO_FIELDS = ("patch_embeds_hidden_size", "depths", "num_attention_heads", "window_size", "spec_size",
                "num_mel_bins", "hidden_size", "enable_fusion", "fusion_type", "mlp_ratio", "patch_size",
                "qkv_bias", "enable_patch_layer_norm", "layer_norm_eps")
TEXT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id", "hidden_act")


@pytest.fixture(scope="module")
def originals() -> dict[str, tuple[Any, dict[str, torch.Tensor]]]:
    """family -> (the tiny ClapModel, its LAION-layout state dict), built once."""
    result = {}
    for seed, family in enumerate(FAMILIES):
        model = make_tiny_model(family, seed=seed)
        result[family] = (model, to_laion_state_dict(model, seed=seed))
    return result


def _write(form: str, state: dict[str, torch.Tensor], path: Path) -> Path:
    return save_trainer_checkpoint(state, path) if form == "trainer" else save_bare_state_dict(state, path)


@pytest.mark.parametrize("form", ["trainer", "bare"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_read_and_build_reproduce_the_original_model(
    family: str, form: str, originals: dict[str, Any], tmp_path: Path
) -> None:
    original, laion = originals[family]
    ckpt = read_laion_checkpoint(_write(form, laion, tmp_path / MISLEADING_NAME[family]))
    model = build_clap_model(ckpt)

    expected, built = original.state_dict(), model.state_dict()
    assert built.keys() == expected.keys()
    assert [name for name in expected if not torch.equal(expected[name], built[name])] == []
    assert all(t.dtype == torch.float32 for t in model.parameters()) and not model.training

    assert ckpt.variant == EXPECTED_VARIANT[family]
    assert ckpt.fusion is FAMILIES[family]["fusion"]
    read_audio, true_audio = ckpt.config.audio_config, original.config.audio_config
    for field in AUDIO_FIELDS:
        assert _norm(getattr(read_audio, field)) == _norm(getattr(true_audio, field)), field
    read_text, true_text = ckpt.config.text_config, original.config.text_config
    for field in TEXT_FIELDS:
        assert getattr(read_text, field) == getattr(true_text, field), field
    assert ckpt.config.projection_dim == original.config.projection_dim

    _assert_same_embeddings(original, model, fusion=ckpt.fusion)


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _assert_same_embeddings(original: Any, model: Any, *, fusion: bool) -> None:
    """Audio embeddings on seeded log-mel features (fused: 4 channels, one long clip) and text embeddings on
    seeded token ids (one row padded) are bit-identical."""
    gen = torch.Generator().manual_seed(7)
    channels = 4 if fusion else 1
    features = torch.randn((2, channels, 1001, 64), generator=gen)
    is_longer = torch.tensor([[fusion], [False]])
    ids = torch.randint(3, 400, (2, 12), generator=gen)
    ids[:, 0], ids[0, -1], ids[1, 8:] = 0, 2, 1
    mask = (ids != 1).long()
    with torch.inference_mode():
        for net in (original, model):
            net.eval()
        audio = [_pooled(m.get_audio_features(input_features=features, is_longer=is_longer)) for m in (original, model)]
        text = [_pooled(m.get_text_features(input_ids=ids, attention_mask=mask)) for m in (original, model)]
    assert torch.equal(audio[0], audio[1]) and torch.equal(text[0], text[1])
    assert audio[0].shape == text[0].shape == (2, original.config.projection_dim)


def test_the_pre_zip_file_format_is_read_too(originals: dict[str, Any], tmp_path: Path) -> None:
    """torch < 1.6's format (no zip, so no memory map) goes through the same restricted unpickler."""
    original, laion = originals["tiny"]
    path = tmp_path / "old.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in laion.items()}}, path,
               _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    built = build_clap_model(read_laion_checkpoint(path)).state_dict()
    assert all(torch.equal(tensor, built[name]) for name, tensor in original.state_dict().items())


def _pooled(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_dropped_keys_are_the_documented_groups(originals: dict[str, Any]) -> None:
    ckpt = convert_laion_state_dict(originals["tiny-fusion"][1])
    groups = {dropped_group(key) for key in ckpt.dropped_keys}
    assert groups == set(DROPPED_GROUPS)
    assert {"audio_branch.logmel_extractor.melW", "audio_branch.tscam_conv.weight", "audio_branch.head.bias",
            "text_branch.embeddings.position_ids", "audio_transform.sequential.3.weight",
            "audio_branch.layers.0.blocks.1.attn_mask",
            "audio_branch.layers.2.blocks.5.attn.relative_position_index"} <= set(ckpt.dropped_keys)
    assert not any(key.startswith(("audio_model.", "text_model.")) for key in ckpt.dropped_keys)


def test_feature_extractor_kwargs_match_laion_audio_cfg(originals: dict[str, Any]) -> None:
    """model_configs/HTSAT-*.json: 48 kHz, n_fft 1024, hop 480, 64 mels, 50-14000 Hz; fusion -> 'fusion'."""
    from transformers import ClapFeatureExtractor

    for family, fused in (("tiny", False), ("tiny-fusion", True)):
        kwargs = convert_laion_state_dict(originals[family][1]).feature_extractor_kwargs
        assert kwargs == {
            "feature_size": 64, "sampling_rate": 48_000, "hop_length": 480, "max_length_s": 10,
            "fft_window_size": 1024, "frequency_min": 50, "frequency_max": 14_000, "top_db": None,
            "truncation": "fusion" if fused else "rand_trunc", "padding": "repeatpad",
        }
        extractor = ClapFeatureExtractor(**kwargs)
        assert extractor.nb_max_samples == 480_000
        stored = originals[family][1]["audio_branch.logmel_extractor.melW"].numpy()
        assert np.allclose(extractor.mel_filters_slaney, stored, atol=1e-7)


def test_window_attention_and_projection_agree_with_laion_forward(originals: dict[str, Any]) -> None:
    """Re-implement HTSAT's WindowAttention.forward and CLAP's projection Sequential on the ORIGINAL tensors
    (fused qkv, bias table, index, proj) and compare with the built model: catches a q/k/v order or
    projection index error that name equality alone cannot."""
    _, laion = originals["base"]
    model = build_clap_model(convert_laion_state_dict(laion))
    gen = torch.Generator().manual_seed(3)
    for stage, heads in ((1, 2), (2, 4)):
        prefix = f"audio_branch.layers.{stage}.blocks.0."
        block = model.audio_model.audio_encoder.layers[stage].blocks[0]
        width = block.layernorm_before.normalized_shape[0]
        x = torch.randn((3, 64, width), generator=gen)
        with torch.inference_mode():
            ours = block.attention(x)[0]
        torch.testing.assert_close(ours, _laion_window_attention(x, laion, prefix, heads), rtol=1e-5, atol=1e-6)
    pooled = torch.randn((2, 96), generator=gen)
    with torch.inference_mode():
        ours = model.audio_projection(pooled)
    theirs = F.linear(F.relu(F.linear(pooled, laion["audio_projection.0.weight"], laion["audio_projection.0.bias"])),
                      laion["audio_projection.2.weight"], laion["audio_projection.2.bias"])
    torch.testing.assert_close(ours, theirs)


def _laion_window_attention(x: torch.Tensor, sd: dict[str, torch.Tensor], p: str, heads: int) -> torch.Tensor:
    """htsat.py WindowAttention.forward (no mask): ``(B_, N, C)`` -> ``(B_, N, C)``."""
    b_, n, c = x.shape
    qkv = F.linear(x, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
    qkv = qkv.reshape(b_, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
    table, index = sd[p + "attn.relative_position_bias_table"], sd[p + "attn.relative_position_index"]
    bias = table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    attn = ((q @ k.transpose(-2, -1)) + bias.unsqueeze(0)).softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(b_, n, c)
    return F.linear(out, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])


@pytest.mark.parametrize("name", list(FULL_SIZE))
def test_full_size_variants_are_detected_from_shapes(name: str) -> None:
    """LAION's real architectures (meta tensors: shapes only) give LAION's config names and configs."""
    from transformers import ClapModel

    with torch.device("meta"):
        model = ClapModel(laion_like_config(FULL_SIZE[name], full_size=True))
    ckpt = convert_laion_state_dict(to_laion_state_dict(model))
    assert ckpt.variant == name and ckpt.fusion is FULL_SIZE[name]["fusion"]
    audio, text = ckpt.config.audio_config, ckpt.config.text_config
    assert (audio.patch_embeds_hidden_size, list(audio.depths)) == (FULL_SIZE[name]["embed"], FULL_SIZE[name]["depths"])
    assert list(audio.num_attention_heads) == [4, 8, 16, 32]
    assert (audio.window_size, audio.spec_size, audio.num_mel_bins) == (8, 256, 64)
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.vocab_size) == (768, 12, 12, 50265)
    assert (text.max_position_embeddings, ckpt.config.projection_dim) == (514, 512)


def test_stft_window_1536_is_read_from_the_kernels() -> None:
    """LAION's HTSAT-tiny-win-1536 config: the STFT size comes from the kernels' shape, into the extractor."""
    from transformers import ClapModel

    with torch.device("meta"):
        model = ClapModel(laion_like_config(FULL_SIZE["HTSAT-tiny"], full_size=True))
    ckpt = convert_laion_state_dict(to_laion_state_dict(model, n_fft=1536))
    assert ckpt.variant == "HTSAT-tiny-win-1536"
    assert ckpt.feature_extractor_kwargs["fft_window_size"] == 1536


def test_numpy_scalars_of_laion_trainer_load_as_inert_stand_ins(originals: dict[str, Any], tmp_path: Path) -> None:
    """LAION's cosine_lr puts numpy float64 learning rates in the optimizer state, pickled (numpy 1.x) as
    numpy.core.multiarray.scalar: stock weights_only refuses the file, our stand-ins read it, no numpy runs."""
    path = save_trainer_checkpoint(originals["tiny"][1], tmp_path / "epoch_15.pt", legacy_numpy=True)
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"numpy.core.multiarray\nscalar\n" in data
    with pytest.raises(pickle.UnpicklingError, match="numpy.core.multiarray.scalar"):
        torch.load(path, map_location="cpu", weights_only=True)
    ckpt = read_laion_checkpoint(path)
    assert isinstance(ckpt, LaionCheckpoint) and ckpt.variant == EXPECTED_VARIANT["tiny"]


def test_a_numpy_value_where_a_weight_belongs_is_refused(originals: dict[str, Any], tmp_path: Path) -> None:
    state: dict[str, Any] = dict(originals["tiny"][1])
    state["logit_scale_a"] = np.float64(2.65)
    path = tmp_path / "x.pt"
    torch.save(state, path)
    with pytest.raises(ModelUnavailableError, match=r"entry 'logit_scale_a' holds a _InertNumpyStandIn, not a tensor"):
        read_laion_checkpoint(path)


def _touch_marker(path: str) -> None:
    """What a malicious checkpoint would run on a full unpickle (here: create a file)."""
    Path(path).write_text("code ran", encoding="utf-8")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_touch_marker, (str(self.marker),))


def test_a_pickle_needing_a_global_is_refused_without_running_it(originals: dict[str, Any], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "630k-audioset-best.pt"
    torch.save({"epoch": 1, "state_dict": originals["tiny"][1], "hook": _Payload(marker)}, path)
    with pytest.raises(ModelUnavailableError) as error:
        read_laion_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "needs the Python object test_laion_checkpoint._touch_marker" in message and "weights_only" in message
    assert not marker.exists()
    torch.load(path, map_location="cpu", weights_only=False)  # control: the payload is live under a full unpickle
    assert marker.read_text(encoding="utf-8") == "code ran"


def test_an_argparse_namespace_is_refused(originals: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": originals["tiny"][1], "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(ModelUnavailableError, match=r"needs the Python object argparse\.Namespace"):
        read_laion_checkpoint(path)


def _without(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key: value for key, value in state.items() if not key.startswith(prefix)}


def _bert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(state)
    out["text_branch.embeddings.token_type_embeddings.weight"] = torch.zeros((2, 64))
    return out


def _bart(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = _without(state, "text_branch.")
    out["text_branch.shared.weight"] = torch.zeros((400, 64))
    out["text_branch.encoder.layers.0.self_attn.k_proj.weight"] = torch.zeros((64, 64))
    return out


def _clip_transformer(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = _without(state, "text_branch.")
    out["text_branch.resblocks.0.attn.in_proj_weight"] = torch.zeros((192, 64))
    out["token_embedding.weight"] = torch.zeros((400, 64))
    out["positional_embedding"] = torch.zeros((77, 64))
    return out


def _pann(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = _without(state, "audio_branch.")
    out["audio_branch.conv_block1.conv1.weight"] = torch.zeros((64, 1, 3, 3))
    return out


def _extra(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**state, "audio_branch.absolute_pos_embed": torch.zeros((1, 4096, 8))}


def _missing(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value for key, value in state.items() if key != "text_branch.pooler.dense.weight"}


def _iaff(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**state, "audio_branch.patch_embed.fusion_model.local_att2.0.weight": torch.zeros((2, 8, 1, 1))}


def _other_mel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**state, "audio_branch.logmel_extractor.melW": mel_filter_bank(1024, 64, fmax=16_000)}


@pytest.mark.parametrize(
    ("family", "edit", "message"),
    [
        ("tiny", _bert, r"has a BERT text branch \(2 token types; RoBERTa has 1\); supported: LAION-CLAP HTSAT"),
        ("tiny", _bart, r"has a BART text branch; supported"),
        ("tiny", _clip_transformer, r"has a CLIP-style 'transformer' text branch; supported"),
        ("tiny", _pann, r"has a PANN \(CNN\) audio branch; supported"),
        ("tiny", _extra, r"1 of its tensors have no place in transformers' ClapModel "
                         r"\(first: audio_branch\.absolute_pos_embed\)"),
        ("tiny", _missing, r"lacks 1 tensor\(s\) that ClapModel needs \(first: text_model\.pooler\.dense\.weight\)"),
        ("tiny-fusion", _iaff, r"uses LAION's 'iaff_2d' feature fusion; transformers implements only 'aff_2d'"),
        ("tiny", _other_mel, r"mel filter bank differs from LAION-CLAP's 48000 Hz, 50-14000 Hz one"),
    ],
)
def test_unsupported_checkpoints_are_refused(
    family: str, edit: Any, message: str, originals: dict[str, Any], tmp_path: Path
) -> None:
    path = save_bare_state_dict(edit(originals[family][1]), tmp_path / "model.pt")
    with pytest.raises(ModelUnavailableError, match=message) as error:
        read_laion_checkpoint(path)
    assert str(error.value).startswith(f"cannot use '{path}': ") and "\n" not in str(error.value)


def test_a_pickle_protocol_the_safe_loader_cannot_read_is_refused(originals: dict[str, Any], tmp_path: Path) -> None:
    """torch 2.13's weights_only unpickler reads protocol 2 only (no FRAME opcode): refused, with the reason."""
    path = tmp_path / "protocol4.pt"
    torch.save(originals["tiny"][1], path, pickle_protocol=4)
    expected = r"refused it \(Unsupported operand 149\); it was pickled with a protocol newer than the safe loader"
    with pytest.raises(ModelUnavailableError, match=expected):
        read_laion_checkpoint(path)


def test_a_state_dict_of_another_model_is_refused(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    state = {"conv1.weight": torch.randn((4, 1, 3, 3), generator=gen), "fc.weight": torch.randn((2, 4), generator=gen)}
    path = save_trainer_checkpoint(state, tmp_path / "resnet.pt")
    with pytest.raises(ModelUnavailableError, match=r"not a LAION-CLAP checkpoint: none of its 2 tensors is under "
                                                     r"audio_branch\. or text_branch\. \(found conv1, fc\)"):
        read_laion_checkpoint(path)


def test_a_pickle_of_plain_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelUnavailableError, match=r"it holds a list, not a LAION-CLAP state dict"):
        read_laion_checkpoint(path)


def test_a_truncated_file_is_refused(originals: dict[str, Any], tmp_path: Path) -> None:
    path = save_trainer_checkpoint(originals["tiny"][1], tmp_path / "630k-best.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    expected = r"cannot read '.*630k-best\.pt' as a PyTorch checkpoint \(truncated"
    with pytest.raises(ModelUnavailableError, match=expected):
        read_laion_checkpoint(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"does not exist or is not a file"):
        read_laion_checkpoint(tmp_path / "nope.pt")
