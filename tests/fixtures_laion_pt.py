"""Tiny LAION-CLAP ``.pt`` checkpoints for tests: a seeded ``ClapModel`` written in the ORIGINAL LAION layout.

The LAION names below are written from LAION-AI/CLAP's modules, not from our forward mapping
(``diffgap_search/encoders/laion_mapping.py``), so the tests catch a mapping bug:

- ``src/laion_clap/clap_module/htsat.py``: ``HTSAT_Swin_Transformer`` (``spectrogram_extractor``,
  ``logmel_extractor``, ``bn0``, ``patch_embed``, ``layers.i.blocks.j`` = ``SwinTransformerBlock`` with
  ``norm1``, ``attn`` = ``WindowAttention`` (``qkv``, ``proj``, ``relative_position_bias_table``,
  ``relative_position_index``), ``norm2``, ``mlp.fc1/fc2``, ``attn_mask``; ``layers.i.downsample`` =
  ``PatchMerging`` (``reduction``, ``norm``); ``norm``, ``tscam_conv``, ``head``).
- ``src/laion_clap/clap_module/feature_fusion.py``: ``AFF`` (``local_att`` = Conv, BN, ReLU, Conv, BN;
  ``global_att`` = Pool, Conv, BN, ReLU, Conv, BN).
- ``src/laion_clap/clap_module/model.py``: ``CLAP`` (``audio_branch``, ``text_branch`` = ``RobertaModel``,
  ``audio_projection``/``text_projection`` = ``Sequential(Linear, ReLU, Linear)``, ``audio_transform``/
  ``text_transform`` = ``MLPLayers`` (``sequential.0``, ``sequential.3``), ``logit_scale_a/t``).
- torchlibrosa ``stft.py``: ``Spectrogram.stft.conv_real/conv_imag`` (windowed DFT kernels) and
  ``LogmelFilterBank.melW`` (``librosa.filters.mel(...).T``).
- ``src/laion_clap/training/main.py``: the trainer saves ``{"epoch", "name", "state_dict", "optimizer"
  (, "scaler")}`` with the DDP model's ``module.``-prefixed state dict; ``training/scheduler.py``
  ``cosine_lr`` writes ``np.cos``-computed (numpy float64) learning rates into the optimizer's groups.

Each tiny model builds and embeds in well under a second on 2 CPU cores.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

TINY_PROJECTION = 32
TINY_VOCAB = 400
# The shape families of LAION's HTSAT models (create_htsat_model), scaled down: tiny = embed 96, depths
# 2-2-6-2; base = 4/3 as wide, stage 3 twice as deep (128, 2-2-12-2); heads double per stage as in 4-8-16-32.
FAMILIES: dict[str, dict[str, Any]] = {
    "tiny": {"embed": 8, "depths": [2, 2, 6, 2], "heads": [1, 2, 4, 8], "fusion": False},
    "base": {"embed": 12, "depths": [2, 2, 12, 2], "heads": [1, 2, 4, 8], "fusion": False},
    "tiny-fusion": {"embed": 8, "depths": [2, 2, 6, 2], "heads": [1, 2, 4, 8], "fusion": True},
}
# Full-size LAION architectures (htsat.py create_htsat_model; roberta-base), for shape-only (meta) tests.
FULL_SIZE: dict[str, dict[str, Any]] = {
    "HTSAT-tiny": {"embed": 96, "depths": [2, 2, 6, 2], "heads": [4, 8, 16, 32], "fusion": False},
    "HTSAT-base": {"embed": 128, "depths": [2, 2, 12, 2], "heads": [4, 8, 16, 32], "fusion": False},
    "HTSAT-tiny+fusion": {"embed": 96, "depths": [2, 2, 6, 2], "heads": [4, 8, 16, 32], "fusion": True},
}
ROBERTA = {"layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1}


def laion_like_config(family: dict[str, Any], *, full_size: bool = False) -> Any:
    """A ``ClapConfig`` of one family: tiny text (64 wide, 1 layer, 1 head of 64) or roberta-base's."""
    from transformers import ClapConfig

    text = {**ROBERTA} if full_size else {
        **ROBERTA, "vocab_size": TINY_VOCAB, "hidden_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 1, "intermediate_size": 128, "max_position_embeddings": 130,
    }
    embed, depths = family["embed"], family["depths"]
    audio = {
        "patch_embeds_hidden_size": embed, "depths": depths, "num_attention_heads": family["heads"],
        "hidden_size": embed * 2 ** (len(depths) - 1), "num_hidden_layers": len(depths), "num_mel_bins": 64,
        "spec_size": 256, "window_size": 8, "patch_size": 4, "patch_stride": [4, 4],
        "enable_fusion": family["fusion"], "fusion_type": "aff_2d" if family["fusion"] else None,
        "num_classes": 527 if full_size else 16,  # the size of HTS-AT's AudioSet head (dropped on load)
    }
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=512 if full_size else TINY_PROJECTION)


def make_tiny_model(family: str, seed: int = 0) -> Any:
    """A seeded tiny ``ClapModel`` of ``FAMILIES[family]`` whose every tensor is random (not the init's ones
    and zeros, so a swapped name cannot go unnoticed), in eval mode."""
    from transformers import ClapModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(laion_like_config(FAMILIES[family]))
        randomize_(model)
    return model.eval()


def randomize_(model: torch.nn.Module) -> None:
    """Fill every parameter and batch-norm statistic with seeded-stream random values of a sane scale:
    1-D ``.weight`` (layer and batch norm scales) near 1, variances in [0.5, 1.5), the rest ~ N(0, 0.05²)."""
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(int(torch.randint(1, 10_000, ())))
            elif name.endswith(".weight") and tensor.dim() == 1:
                tensor.copy_(1.0 + 0.1 * torch.randn_like(tensor))
            elif tensor.is_floating_point():
                tensor.copy_(0.05 * torch.randn_like(tensor))


def to_laion_state_dict(model: Any, *, n_fft: int = 1024, seed: int = 0) -> dict[str, torch.Tensor]:
    """``model`` (a ``ClapModel``) as LAION's ``CLAP.state_dict()`` would hold it, with every extra tensor
    a real checkpoint carries. Works on meta-device models (extra tensors are then meta too where they are
    weights; the feature-extractor tensors are always real)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    _audio_branch(model, out, n_fft=n_fft, gen=gen)
    for name, tensor in model.text_model.state_dict().items():
        if not name.endswith("token_type_ids"):  # RobertaEmbeddings.token_type_ids is not persistent
            # RobertaModel's names; position_ids was a persistent buffer in the transformers 4.2x LAION used
            out[f"text_branch.{name}"] = tensor.clone()
    for side in ("audio", "text"):
        projection = getattr(model, f"{side}_projection")
        _copy(out, f"{side}_projection.0.", projection.linear1)  # Sequential index 0: Linear
        _copy(out, f"{side}_projection.2.", projection.linear2)  # index 1 is the ReLU
        width = projection.linear2.out_features
        for index in (0, 3):  # MLPLayers([P, P, P]): Linear, ReLU, Dropout, Linear
            out[f"{side}_transform.sequential.{index}.weight"] = _random((width, width), model, gen)
            out[f"{side}_transform.sequential.{index}.bias"] = _random((width,), model, gen)
    out["logit_scale_a"] = model.logit_scale_a.detach().clone()
    out["logit_scale_t"] = model.logit_scale_t.detach().clone()
    return out


def _audio_branch(model: Any, out: dict[str, torch.Tensor], *, n_fft: int, gen: torch.Generator) -> None:
    """``audio_branch.*`` in HTSAT_Swin_Transformer's names (htsat.py)."""
    enc, cfg = model.audio_model.audio_encoder, model.config.audio_config
    a = "audio_branch."
    real, imag = stft_kernels(n_fft)
    out[a + "spectrogram_extractor.stft.conv_real.weight"] = real
    out[a + "spectrogram_extractor.stft.conv_imag.weight"] = imag
    out[a + "logmel_extractor.melW"] = mel_filter_bank(n_fft, cfg.num_mel_bins)
    _copy(out, a + "bn0.", enc.batch_norm)
    _copy(out, a + "patch_embed.proj.", enc.patch_embed.proj)
    _copy(out, a + "patch_embed.norm.", enc.patch_embed.norm)
    if cfg.enable_fusion:
        _copy(out, a + "patch_embed.mel_conv2d.", enc.patch_embed.mel_conv2d)
        fusion = enc.patch_embed.fusion_model
        for index in (0, 1, 3, 4):  # AFF.local_att: Conv2d, BatchNorm2d, ReLU, Conv2d, BatchNorm2d
            _copy(out, f"{a}patch_embed.fusion_model.local_att.{index}.", fusion.local_att[index])
        for index in (1, 2, 4, 5):  # AFF.global_att: AdaptiveAvgPool2d, Conv2d, BN, ReLU, Conv2d, BN
            _copy(out, f"{a}patch_embed.fusion_model.global_att.{index}.", fusion.global_att[index])
    grid = cfg.spec_size // cfg.patch_size
    for i, stage in enumerate(enc.layers):
        resolution = grid // 2**i
        for j, block in enumerate(stage.blocks):
            _swin_block(out, f"{a}layers.{i}.blocks.{j}.", block, cfg.window_size, resolution, shifted=j % 2 == 1)
        if stage.downsample is not None:
            _copy(out, f"{a}layers.{i}.downsample.reduction.", stage.downsample.reduction)
            _copy(out, f"{a}layers.{i}.downsample.norm.", stage.downsample.norm)
    _copy(out, a + "norm.", enc.norm)
    width = cfg.patch_embeds_hidden_size * 2 ** (len(cfg.depths) - 1)
    freq_ratio = cfg.spec_size // cfg.num_mel_bins
    sf = cfg.spec_size // 2 ** (len(cfg.depths) - 1) // cfg.patch_size // freq_ratio
    out[a + "tscam_conv.weight"] = _random((cfg.num_classes, width, sf, 3), model, gen)
    out[a + "tscam_conv.bias"] = _random((cfg.num_classes,), model, gen)
    out[a + "head.weight"] = _random((cfg.num_classes, cfg.num_classes), model, gen)
    out[a + "head.bias"] = _random((cfg.num_classes,), model, gen)


def _swin_block(out: dict[str, torch.Tensor], p: str, block: Any, window: int, resolution: int, shifted: bool) -> None:
    """One SwinTransformerBlock: norm1, attn (qkv fused as Linear(dim, 3*dim)), norm2, mlp, attn_mask."""
    attention = block.attention.self
    _copy(out, p + "norm1.", block.layernorm_before)
    out[p + "attn.relative_position_bias_table"] = attention.relative_position_bias_table.detach().clone()
    out[p + "attn.relative_position_index"] = relative_position_index(window)
    for part in ("weight", "bias"):  # WindowAttention.forward: reshape(B, N, 3, heads, C/heads) -> q, k, v
        pieces = [getattr(getattr(attention, name), part).detach() for name in ("query", "key", "value")]
        out[f"{p}attn.qkv.{part}"] = torch.cat(pieces, dim=0).clone()
    _copy(out, p + "attn.proj.", block.attention.output.dense)
    _copy(out, p + "norm2.", block.layernorm_after)
    _copy(out, p + "mlp.fc1.", block.intermediate.dense)
    _copy(out, p + "mlp.fc2.", block.output.dense)
    if shifted and resolution > window:  # SwinTransformerBlock: shift_size = window // 2 on odd blocks
        out[p + "attn_mask"] = shifted_window_mask(resolution, window, window // 2)


def relative_position_index(window: int) -> torch.Tensor:
    """``(w^2, w^2) int64``, as WindowAttention.__init__ builds it (htsat.py)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    flat = torch.flatten(coords, 1)
    relative = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    relative[:, :, 0] += window - 1
    relative[:, :, 1] += window - 1
    relative[:, :, 0] *= 2 * window - 1
    return relative.sum(-1)


def shifted_window_mask(resolution: int, window: int, shift: int) -> torch.Tensor:
    """``(windows, w^2, w^2) float32`` of 0 / -100, as SwinTransformerBlock.__init__ builds it (htsat.py)."""
    image = torch.zeros((1, resolution, resolution, 1))
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    count = 0
    for h in cuts:
        for w in cuts:
            image[:, h, w, :] = count
            count += 1
    windows = image.view(1, resolution // window, window, resolution // window, window, 1)
    windows = windows.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window * window)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def stft_kernels(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torchlibrosa STFT's ``conv_real``/``conv_imag`` weights ``(n_fft/2+1, 1, n_fft) float32``: the DFT
    matrix's first n_fft/2+1 columns times a periodic Hann window, transposed."""
    import librosa

    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    n = np.arange(n_fft)
    angle = -2 * np.pi * np.outer(n, np.arange(n_fft // 2 + 1)) / n_fft
    real = (np.cos(angle) * window[:, None]).T[:, None, :]
    imag = (np.sin(angle) * window[:, None]).T[:, None, :]
    return torch.tensor(real, dtype=torch.float32), torch.tensor(imag, dtype=torch.float32)


def mel_filter_bank(
    n_fft: int, mel_bins: int, *, sr: int = 48_000, fmin: float = 50, fmax: float = 14_000
) -> torch.Tensor:
    """LogmelFilterBank.melW: ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax).T``, ``(n_fft/2+1, mels)``."""
    import librosa

    return torch.tensor(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=mel_bins, fmin=fmin, fmax=fmax).T)


def save_trainer_checkpoint(state: dict[str, torch.Tensor], path: Path, *, legacy_numpy: bool = False) -> Path:
    """Save ``state`` as LAION's trainer does (training/main.py): DDP ``module.`` prefix, epoch, run name, a
    real AdamW's state after one step, its learning rate a numpy float64 (scheduler.py ``cosine_lr``), and
    the AMP scaler's state. ``legacy_numpy`` names numpy as numpy 1.x pickled it (``numpy.core``)."""
    frozen = ("spectrogram_extractor.", "logmel_extractor.")  # torchlibrosa freeze_parameters=True
    params = [
        torch.nn.Parameter(t.detach().clone())
        for key, t in state.items()
        if t.is_floating_point()
        and not any(part in key for part in frozen)
        and not key.endswith(("attn_mask", "running_mean", "running_var"))  # buffers, not parameters
    ]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.2)
    gen = torch.Generator().manual_seed(1)
    for param in params:
        param.grad = torch.randn(param.shape, generator=gen)
    optimizer.step()
    for group in optimizer.param_groups:
        group["lr"] = 0.5 * (1 + np.cos(np.pi * 3 / 10)) * 1e-4  # numpy.float64, as cosine_lr assigns it
    checkpoint = {
        "epoch": 15,
        "name": "2022_10_10-10_10_10-model_HTSAT-tiny-lr_0.0001-b_96-j_6-p_fp32",
        "state_dict": {f"module.{key}": value for key, value in state.items()},
        "optimizer": optimizer.state_dict(),
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                   "_growth_tracker": 0},
    }
    torch.save(checkpoint, path, pickle_module=_legacy_numpy_pickle() if legacy_numpy else pickle)
    return path


def save_bare_state_dict(state: dict[str, torch.Tensor], path: Path) -> Path:
    """The bare form some users have: ``torch.save(model.state_dict(), path)`` (no prefix, no metadata)."""
    torch.save(state, path)
    return path


def _legacy_numpy_pickle() -> types.ModuleType:
    """A ``pickle_module`` for ``torch.save`` whose Pickler names ``numpy._core`` objects ``numpy.core``, the
    module path numpy 1.x (and so every LAION checkpoint of 2022-2023) wrote."""

    class LegacyNumpyPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
        def save_global(self, obj: Any, name: str | None = None) -> None:
            module = getattr(obj, "__module__", "") or ""
            if module.startswith("numpy._core"):
                legacy = module.replace("numpy._core", "numpy.core", 1)
                self.write(pickle.GLOBAL + f"{legacy}\n{name or obj.__qualname__}\n".encode())
                self.memoize(obj)
                return
            super().save_global(obj, name)

    module = types.ModuleType("legacy_numpy_pickle")
    module.Pickler = LegacyNumpyPickler  # type: ignore[attr-defined]
    return module


def _copy(out: dict[str, torch.Tensor], prefix: str, module: torch.nn.Module) -> None:
    for name, tensor in module.state_dict().items():
        out[prefix + name] = tensor.clone()


def _random(shape: tuple[int, ...], model: Any, gen: torch.Generator) -> torch.Tensor:
    device = model.logit_scale_a.device
    if device.type == "meta":
        return torch.empty(shape, device="meta")
    return 0.05 * torch.randn(shape, generator=gen)
