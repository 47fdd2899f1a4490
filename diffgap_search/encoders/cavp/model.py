"""CAVP (Diff-Foley's Contrastive Audio-Visual Pretraining): the two towers, as torch modules of our own.

Reference: github.com/luosiallen/Diff-Foley, ``inference/model/cavp_model.py`` (``CAVP_Inference``) and
``inference/model/cavp_modules.py`` (``ResNet3dSlowOnly`` after mmaction2, ``Cnn14`` after PANNs), with
``inference/config/Stage1_CAVP.yaml`` (``video_encode: Slowonly_pool``, ``spec_encode: cnn14_pool``,
``embed_dim: 512``). Parameter and buffer names are the reference's, so the published ``cavp_epoch66.ckpt``
(``state_dict`` with ``module.`` prefixes, from DDP training) loads with ``strict=True`` once the prefix is
stripped, as ``inference/demo_util.py:111-115`` strips it:

- ``video_encoder.*``: ResNet3dSlowOnly, depth 50. mmcv's ``ConvModule`` is a ``conv`` (``Conv3d``, no bias), a
  ``bn`` (``BatchNorm3d``) and an optional in-place ReLU (``cavp_modules.py:107-130, 260-293``), so its keys are
  ``<name>.conv.weight`` and ``<name>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}``;
  ``layer{1..4}.{j}.conv{1,2,3}`` and ``layer{i}.0.downsample`` (a ``ConvModule`` too, ``cavp_modules.py:566-575``).
- ``video_project_head``: ``Linear(2048, 512)``; ``video_pool``: ``MaxPool1d(16)`` (``cavp_model.py:30-31``).
- ``spec_encoder.*``: Cnn14 (``bn`` over 128 mel bins, ``conv_block{1..6}.{conv1,conv2,bn1,bn2}``, ``fc1``,
  ``final_project``; ``cavp_modules.py:1487-1546``); ``spec_project_head`` is ``Identity``; ``spec_pool``:
  ``MaxPool1d(16)`` (``cavp_model.py:36-40``).
- ``logit_scale``: a scalar parameter (unused for embedding, kept so the checkpoint loads strictly).

The widths and depths are read from a checkpoint's tensor shapes (``CavpConfig.from_state_dict``), never
assumed, so a tiny model of the same classes (tests) and the full one (``CavpConfig()``) share one code path.

Shapes: ``encode_video`` takes ``(B, T=16, 3, 224, 224) float32`` in [0, 1]; ``encode_spec`` takes
``(B, 128, 256) float32`` (mel bins x frames of 4 s at 64 frames/s); both return ``(B, 512)`` (unnormalised,
as ``encode_*(normalize=False)`` does; ``CavpEncoder`` normalises).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CLIP_FRAMES = 16  # frames per CAVP clip (4 s at 4 fps): the kernel of video_pool / spec_pool
_VIDEO_ARCH_50 = (3, 4, 6, 3)  # ResNet3d arch_settings[50] (cavp_modules.py, ResNet3d.arch_settings)
_INFLATE = (0, 0, 1, 1)  # ResNet3dSlowOnly's default inflate (cavp_modules.py:1255)
_SPATIAL_STRIDES = (1, 2, 2, 2)
_CNN14_WIDTHS = (64, 128, 256, 512, 1024, 2048)


@dataclass(frozen=True)
class CavpConfig:
    """The architecture: ``base_channels`` and ``stage_blocks`` of the video ResNet, the six Cnn14 widths,
    ``embed_dim`` (512) and ``n_mels`` (128). Defaults are the published model's."""

    base_channels: int = 64
    stage_blocks: tuple[int, ...] = _VIDEO_ARCH_50
    cnn_widths: tuple[int, ...] = _CNN14_WIDTHS
    embed_dim: int = 512
    n_mels: int = 128

    @property
    def video_feat_dim(self) -> int:
        """Channels out of the last video stage: ``base * 2**3 * 4`` (2048 for the published model)."""
        return self.base_channels * 2 ** (len(self.stage_blocks) - 1) * Bottleneck3d.expansion

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> CavpConfig:
        """The architecture a (prefix-stripped) state dict describes; ``KeyError`` when it is no CAVP."""
        base = int(state["video_encoder.conv1.conv.weight"].shape[0])
        blocks = []
        for stage in range(1, 5):
            prefix = f"video_encoder.layer{stage}."
            ids = {key[len(prefix):].split(".", 1)[0] for key in state if key.startswith(prefix)}
            if not ids:
                break
            blocks.append(len(ids))
        widths = tuple(int(state[f"spec_encoder.conv_block{i}.conv1.weight"].shape[0]) for i in range(1, 7))
        return cls(
            base_channels=base,
            stage_blocks=tuple(blocks),
            cnn_widths=widths,
            embed_dim=int(state["video_project_head.weight"].shape[0]),
            n_mels=int(state["spec_encoder.bn.weight"].shape[0]),
        )


class ConvModule(nn.Module):
    """mmcv's ``ConvModule`` as CAVP uses it: ``conv`` (Conv3d, no bias) -> ``bn`` (BatchNorm3d) -> ReLU or nothing."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
                 padding: tuple[int, int, int] = (0, 0, 0), act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.activate = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.activate(x) if self.activate is not None else x


class Bottleneck3d(nn.Module):
    """mmaction2's ``Bottleneck3d``, style ``pytorch``, inflate style ``3x1x1`` (``cavp_modules.py:167-328``):
    the spatial stride sits on ``conv2``; an inflated block's ``conv1`` is temporal ``(3, 1, 1)``."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, spatial_stride: int, inflate: bool,
                 downsample: ConvModule | None) -> None:
        super().__init__()
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvModule(inplanes, planes, k1, padding=p1)
        self.conv2 = ConvModule(planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1))
        self.conv3 = ConvModule(planes, planes * self.expansion, (1, 1, 1), act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNet3dSlowOnly(nn.Module):
    """SlowOnly ResNet3d (mmaction2; ``cavp_modules.py:331-866, 1233-1268``): stem ``conv1`` (1, 7, 7) stride
    (1, 2, 2) + max-pool (1, 3, 3) stride (1, 2, 2), no ``pool2``, four Bottleneck3d stages with spatial strides
    (1, 2, 2, 2), inflated in stages 3 and 4, then ``AdaptiveAvgPool2d((1, 1))`` over H, W: ``(B, 3, T, H, W)``
    -> ``(B, C, T, 1, 1)``, time kept."""

    def __init__(self, cfg: CavpConfig) -> None:
        super().__init__()
        base = cfg.base_channels
        self.conv1 = ConvModule(3, base, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3))
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        inplanes = base
        self.res_layers: list[str] = []
        for i, n_blocks in enumerate(cfg.stage_blocks):
            planes, stride = base * 2**i, _SPATIAL_STRIDES[i]
            downsample = None
            if stride != 1 or inplanes != planes * Bottleneck3d.expansion:
                downsample = ConvModule(inplanes, planes * Bottleneck3d.expansion, (1, 1, 1),
                                        stride=(1, stride, stride), act=False)
            blocks = [Bottleneck3d(inplanes, planes, stride, bool(_INFLATE[i]), downsample)]
            inplanes = planes * Bottleneck3d.expansion
            blocks += [Bottleneck3d(inplanes, planes, 1, bool(_INFLATE[i]), None) for _ in range(1, n_blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.res_layers.append(f"layer{i + 1}")
        self.adaptive_pool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return self.adaptive_pool(x)


class ConvBlock(nn.Module):
    """PANNs' ``ConvBlock``: two 3x3 convs, each with BatchNorm2d and ReLU, then average pooling."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool_size: tuple[int, int]) -> torch.Tensor:
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class Cnn14(nn.Module):
    """CAVP's Cnn14 (``cavp_modules.py:1487-1546``): ``(B, 1, T, mel)`` -> ``(B, T/16, embed_dim)``.

    As the reference does, ``fc1`` is applied twice (``latent_x = relu(fc1(latent_x)); x = relu(fc1(latent_x))``,
    lines 1543-1544): the published weights were trained that way, so it is kept.
    """

    _POOLS = ((2, 2), (2, 2), (2, 2), (2, 2), (1, 2), (1, 1))

    def __init__(self, cfg: CavpConfig) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(cfg.n_mels)
        cins = (1,) + tuple(cfg.cnn_widths[:-1])
        for i, (cin, cout) in enumerate(zip(cins, cfg.cnn_widths), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(cin, cout))
        width = cfg.cnn_widths[-1]
        self.fc1 = nn.Linear(width, width, bias=True)
        self.final_project = nn.Linear(width, cfg.embed_dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x.transpose(1, 3)).transpose(1, 3)
        for i, pool in enumerate(self._POOLS, start=1):
            x = getattr(self, f"conv_block{i}")(x, pool)  # dropout is a no-op in eval mode
        x = torch.mean(x, dim=3)
        latent = F.max_pool1d(x, kernel_size=3, stride=1, padding=1) + F.avg_pool1d(x, kernel_size=3, stride=1, padding=1)
        latent = F.relu_(self.fc1(latent.transpose(1, 2)))
        x = F.relu_(self.fc1(latent))
        return self.final_project(x)


class CavpModel(nn.Module):
    """``CAVP_Inference`` (``cavp_model.py:9-96``) without its training-only parts."""

    def __init__(self, cfg: CavpConfig = CavpConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.video_encoder = ResNet3dSlowOnly(cfg)
        self.video_project_head = nn.Linear(cfg.video_feat_dim, cfg.embed_dim)
        self.video_pool = nn.MaxPool1d(kernel_size=CLIP_FRAMES)
        self.spec_encoder = Cnn14(cfg)
        self.spec_project_head = nn.Identity()
        self.spec_pool = nn.MaxPool1d(kernel_size=CLIP_FRAMES)
        self.logit_scale = nn.Parameter(torch.ones([]) * torch.log(torch.tensor(1 / 0.07)))

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, 16, 3, H, W)`` frames in [0, 1] -> ``(B, D)``: per-frame features max-pooled over the 16 steps
        (``cavp_model.py:47-65`` with ``pool=True, normalize=False``)."""
        feat = self.video_encoder(video.permute(0, 2, 1, 3, 4))
        bs, c, t = feat.shape[:3]
        feat = self.video_project_head(feat.reshape(bs, c, t).permute(0, 2, 1))
        return self.video_pool(feat.permute(0, 2, 1)).squeeze(2)

    def encode_spec(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, mel, T=256)`` log-mel -> ``(B, D)`` (``cavp_model.py:68-84`` with ``pool=True, normalize=False``)."""
        feat = self.spec_project_head(self.spec_encoder(spec.unsqueeze(1).permute(0, 1, 3, 2)))
        return self.spec_pool(feat.permute(0, 2, 1)).squeeze(2)


def strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """Keys without the ``module.`` that DDP training adds (as ``demo_util.py:112-115`` does)."""
    return {key.replace("module.", ""): value for key, value in state.items()}


def build_cavp(state: Mapping[str, torch.Tensor]) -> CavpModel:
    """A ``CavpModel`` shaped after ``state`` (prefix-stripped), loaded with ``strict=True``, in eval mode.

    Raises ``KeyError`` (not a CAVP state dict) or ``RuntimeError`` (missing, unexpected or misshapen tensors:
    PyTorch's own message lists them).
    """
    model = CavpModel(CavpConfig.from_state_dict(state))
    model.load_state_dict(dict(state), strict=True)
    return model.eval()
