"""The public DiffGAP bridge: generate the counterpart embedding of another modality, deterministically.

    bridge = load_bridge(path, expected_fingerprints={"audio": fp, "text": fp})
    audio_side = bridge.apply(text_emb, source="text", target="audio")   # (N, D) float32, L2-normalised

Sampling is DDIM with eta = 0 (x0 prediction, few steps) from one fixed start vector ``z`` shared by
every row: ``noise_scale * N(0, I)`` drawn once from a generator seeded with ``SampleConfig.seed``. The
default ``noise_scale = 0`` starts from the prior's mean (the zero vector): the first step is then the
network's regression estimate of E[x0 | condition] and the next steps refine it. ``samples = K > 1`` with
a positive ``noise_scale`` averages the K outputs from the starts seeded ``seed .. seed + K - 1``.
``train_bridge`` picks the steps and the guidance scale on its validation clips (``validation``); the
synthetic ablation (``benchmarks/ablation_gap.py``) compares every choice. Either way a row's output
depends only on that row: the same input gives the same output bit for bit, call after call, load after
load and process after process (``tests/test_gap_determinism.py``).
(Across different batch compositions results agree to float rounding, ~1e-6, not bit for bit: BLAS
kernels may change with the batch size.)
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BridgeMismatchError, CorruptIndexError
from ..threads import torch_threads
from .checkpoint import (
    FORMAT_VERSION,
    check_fingerprints,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from .denoiser import Denoiser, DenoiserConfig
from .diffusion import ddim_sample, to_diffusion_space
from .directions import Direction
from .fusion import FusionConfig
from .record import PREFIX as RECORD_PREFIX
from .record import TrainingRecord
from .schedule import NoiseSchedule, ScheduleKind
from .serving import ROLES, checked_rows, fusion_key, residual_scales, scale_of, served_direction




@dataclass(frozen=True)
class SampleConfig:
    """How a bridge samples. Stored in the checkpoint; ``Bridge.apply`` may override it per call.

    ``steps``: DDIM steps (network evaluations; latency is linear in it). ``guidance_scale``: classifier-free
    guidance, 1.0 = plain conditional (one evaluation per step), > 1 doubles the cost. ``noise_scale``:
    scale of the fixed start vector (0 starts from the prior mean). ``renorm_x0``: project each x0
    estimate onto the data sphere before the DDIM update. ``samples``: how many seeded starts to average
    (K network passes per step; only meaningful with ``noise_scale > 0``).
    """

    steps: int = 4  # 4 x0-prediction steps: as good as 8 on the synthetic benchmark, half the latency
    guidance_scale: float = 1.0
    noise_scale: float = 0.0
    seed: int = 0
    renorm_x0: bool = True
    samples: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("SampleConfig.steps must be >= 1")
        if self.samples < 1:
            raise ValueError("SampleConfig.samples must be >= 1")
        if self.guidance_scale < 0:
            raise ValueError("SampleConfig.guidance_scale must be >= 0")
        if self.noise_scale < 0:
            raise ValueError("SampleConfig.noise_scale must be >= 0")


class Bridge:
    """A trained DiffGAP module for one set of encoders, serving the ``directions`` it was trained on.

    ``record``: what it keeps of its training run (groups seen, fitted baselines; ``record``), None for a
    bridge loaded from a format-1 file; ``format_version``: the format of the file it was loaded from.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        schedule: NoiseSchedule,
        sample: SampleConfig,
        encoder_fingerprints: dict[str, str],
        directions: tuple[Direction, ...],
        fusion: dict[str, FusionConfig] | None = None,
        train_info: dict[str, Any] | None = None,
        record: TrainingRecord | None = None,
        format_version: int = FORMAT_VERSION,
        selection: dict[str, Any] | None = None,
    ) -> None:
        self._net = denoiser.eval()
        for p in self._net.parameters():
            p.requires_grad_(False)
        self.schedule = schedule
        self.sample = sample
        self._fingerprints = dict(encoder_fingerprints)
        self._directions = tuple(Direction(d) for d in directions)
        self._fusion = dict(fusion or {})
        self.train_info = dict(train_info or {})
        self.record = record
        self.format_version = format_version  # of the file it was loaded from: keeps its fingerprint
        self.selection = dict(selection or {})  # what validation chose (format 4; ``selection``)
        self._alpha = residual_scales(self.selection)
        self._t_emb: dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------- description
    @property
    def directions(self) -> tuple[Direction, ...]:
        """The directions this bridge can generate (``target|condition``)."""
        return self._directions

    @property
    def shared_spaces(self) -> tuple[str, ...]:
        """Modalities besides text trained as sharing the audio space (``TrainConfig.shared_spaces``: CAVP's
        video); their raw cosine to audio is a tuned fusion term. Empty for bridges trained before it."""
        return tuple(self.train_info.get("shared_spaces", ()))

    @property
    def separate_spaces(self) -> tuple[str, ...]:
        """Modalities trained as sharing no space with audio (``TrainConfig.separate_spaces``: words from a text
        encoder of their own); their raw cosine to audio is no fusion term. Empty for bridges trained before it."""
        return tuple(self.train_info.get("separate_spaces", ()))

    @property
    def encoder_fingerprints(self) -> dict[str, str]:
        """Modality name -> sha256 of the encoder weights the bridge was trained on (a copy)."""
        return dict(self._fingerprints)

    @property
    def dim(self) -> int:
        """D, the embedding size."""
        return self._net.cfg.dim

    @property
    def denoiser(self) -> Denoiser:
        """The network (in eval mode, frozen)."""
        return self._net

    def residual_scale(self, direction: Direction | str, role: str = "query") -> float:
        """alpha in [0, 1] of ``direction`` in ``role``: the share of the network's residual added to its linear
        anchor (0 serves the anchor map alone: ridge, or Procrustes where ``anchor_choice`` chose it). ``role``:
        ``"query"`` (a query bridged at search time) or ``"items"`` (indexed items bridged at index time, the
        third fusion term). Chosen on validation per task (``selection``: ``residual_scale`` for queries,
        ``residual_scale_items`` since format 5; format 4 has one alpha per direction for both roles); 1 for
        bridges before format 4 and for bridges without an anchor."""
        return scale_of(self._alpha, self._net.cfg.anchor != "none", direction, role)

    def fusion_for(self, source: str, target: str) -> FusionConfig:
        """Fusion weights for queries of ``source`` against items of ``target`` (tuned on validation pairs)."""
        return self._fusion.get(fusion_key(source, target), FusionConfig())

    def metadata(self) -> dict[str, Any]:
        """The JSON metadata stored next to the weights (see ``checkpoint``)."""
        meta: dict[str, Any] = {
            "format_version": self.format_version,
            "denoiser": asdict(self._net.cfg),
            "schedule": {"kind": self.schedule.kind.value, "num_steps": self.schedule.num_steps},
            "sample": asdict(self.sample),
            "encoder_fingerprints": dict(sorted(self._fingerprints.items())),
            "directions": [d.value for d in self._directions],
            "fusion": {k: v.to_dict() for k, v in sorted(self._fusion.items())},
            "train": self.train_info,
        }
        if self.record is not None:
            meta["record"] = self.record.meta()
        if self.format_version >= 4 and self.selection:
            meta["selection"] = self.selection
        if self.format_version < 4:  # format 4 added the denoiser's dropout (training only)
            meta["denoiser"].pop("dropout", None)
        if self.format_version < 3:  # keys format 3 added, absent from older files: their fingerprint holds
            meta["denoiser"].pop("anchor", None)
            meta["sample"].pop("samples", None)
        return meta

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the checkpoint: the denoiser's weights and the training record's ``record.*``."""
        out = {k: v.cpu() for k, v in self._net.state_dict().items()}  # a bridge trained on a GPU is saved from the CPU
        if self.record is not None:
            out.update(self.record.tensors())
        return out

    @cached_property
    def fingerprint(self) -> str:
        """sha256 hex digest of the tensors and metadata; the same before saving and after loading."""
        return fingerprint(self.tensors(), self.metadata())

    # ----------------------------------------------------------------- use
    def apply(
        self, x: np.ndarray, source: str, target: str, *, sample: SampleConfig | None = None, batch_size: int = 4096,
        role: str = "query",
    ) -> np.ndarray:
        """Generate the ``target``-modality counterparts of ``source`` embeddings.

        ``x``: ``(N, D)`` float rows (normalised here). Returns ``(N, D) float32``, L2-normalised.
        ``role``: ``"query"`` for queries bridged at search time, ``"items"`` for indexed items bridged at index
        time: each role has its own residual scale (``residual_scale``).
        Raises ``BridgeUnavailableError`` if this bridge was not trained for that direction.
        """
        direction = served_direction(self._directions, source, target)
        x = checked_rows(x, self.dim)
        cfg = sample or self.sample
        alpha = self.residual_scale(direction, role)
        out = np.empty_like(x)
        # One query is a few small matrix products: a second thread only adds synchronisation (and on a busy
        # machine stalls every step), so small batches run single-threaded.
        threads = torch_threads(1) if len(x) <= 8 else contextlib.nullcontext()
        with threads, torch.inference_mode():
            for i in range(0, len(x), batch_size):
                out[i : i + batch_size] = self._sample(torch.from_numpy(x[i : i + batch_size]), direction, cfg, alpha)
        return out

    def _time_embedding(self, t: int, device: torch.device) -> torch.Tensor:
        """``(1, H)`` embedding of timestep ``t`` on ``device``, computed once per bridge and device (the
        weights are frozen)."""
        key = f"{t}@{device}"
        if key not in self._t_emb:
            self._t_emb[key] = self._net.time_embedding(torch.full((1,), t, dtype=torch.int64, device=device)).clone()
        return self._t_emb[key]

    def _sample(self, x: torch.Tensor, direction: Direction, cfg: SampleConfig, alpha: float) -> np.ndarray:
        """``(B, D)`` condition rows -> ``(B, D) float32`` L2-normalised generated rows (under inference mode);
        ``alpha``: the residual scale of the role served. Runs where the denoiser is (the CPU, except while a
        bridge trained on a GPU is validated there); the rows come back on the CPU."""
        b, d = x.shape
        net = self._net
        dev = net.null_cond.device
        cond = to_diffusion_space(x.to(dev))
        dirs = torch.full((b,), direction.index, dtype=torch.int64, device=dev)
        guided = cfg.guidance_scale != 1.0
        on = torch.ones(b, dtype=torch.bool, device=dev)
        if alpha == 0.0:  # the linear anchor alone: no network evaluation, whatever the sampler
            a = net.anchor(cond, dirs, on)
            assert a is not None
            return (a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)).cpu().numpy()
        if guided:
            keep = torch.cat([on, torch.zeros(b, dtype=torch.bool, device=dev)])
            cond_h = net.encode_condition(torch.cat([cond, cond]), torch.cat([dirs, dirs]), keep)
            anchor = net.anchor(torch.cat([cond, cond]), torch.cat([dirs, dirs]), keep)
        else:
            cond_h = net.encode_condition(cond, dirs, on)
            anchor = net.anchor(cond, dirs, on)

        def x0_fn(x_t: torch.Tensor, t: int) -> torch.Tensor:
            step = torch.full((1,), t, dtype=torch.int64, device=dev)  # one timestep for all rows: broadcast
            e = self._time_embedding(t, dev)
            if not guided:
                out = net.denoise(x_t, step, cond_h, e, anchor)
            else:
                both = net.denoise(torch.cat([x_t, x_t]), step, cond_h, e, anchor)
                c, u = both[:b], both[b:]
                out = u + cfg.guidance_scale * (c - u)
            if alpha == 1.0 or anchor is None:
                return out
            base = anchor[:b]  # the conditioned rows' linear answer
            return base + alpha * (out - base)

        timesteps = self.schedule.ddim_timesteps(cfg.steps)
        if cfg.noise_scale == 0.0:
            x0 = ddim_sample(x0_fn, torch.zeros(b, d, device=dev), timesteps, self.schedule, cfg.renorm_x0)
        else:
            total = torch.zeros(b, d, device=dev)
            for k in range(cfg.samples):
                z = torch.randn(d, generator=torch.Generator().manual_seed(cfg.seed + k)).to(dev) * cfg.noise_scale
                out = ddim_sample(x0_fn, z.expand(b, d).contiguous(), timesteps, self.schedule, cfg.renorm_x0)
                total += out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
            x0 = total
        return (x0 / x0.norm(dim=1, keepdim=True).clamp_min(1e-12)).cpu().numpy()

    # ----------------------------------------------------------------- persistence
    def save(self, path: Path) -> None:
        """Write the bridge to ``path`` (one ``.safetensors`` file: weights + JSON metadata), atomically."""
        save_checkpoint(Path(path), self.tensors(), self.metadata())


def load_bridge(path: Path, expected_fingerprints: dict[str, str] | None = None) -> Bridge:
    """Load a bridge saved by ``Bridge.save``.

    ``expected_fingerprints``: modality name -> sha256 of the encoder the caller uses (``None`` skips the
    check). Raises ``BridgeMismatchError`` (an ``IncompatibleIndexError``) if any shared modality's
    fingerprint differs or the format is newer, ``BridgeUnavailableError`` if the file is missing,
    ``CorruptIndexError`` if it is not a bridge checkpoint.
    """
    path = Path(path)
    tensors, meta = load_checkpoint(path)
    check_fingerprints(path, meta.get("encoder_fingerprints", {}), expected_fingerprints)
    return bridge_from_checkpoint(path, tensors, meta)


def bridge_from_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Bridge:
    """The ``Bridge`` of a checkpoint already read and checked (``load_checkpoint``, ``check_fingerprints``):
    ``tensors`` by name, ``meta`` its JSON. Raises ``CorruptIndexError`` naming ``path`` when they do not make
    a bridge, ``BridgeMismatchError`` for an unknown noise schedule."""
    try:
        kind = ScheduleKind(meta["schedule"]["kind"])
    except ValueError:
        raise BridgeMismatchError(
            f"bridge {path} uses noise schedule {meta['schedule']['kind']!r}, unknown to this version: upgrade"
        ) from None
    try:
        weights = {k: v for k, v in tensors.items() if not k.startswith(RECORD_PREFIX)}
        record = TrainingRecord.from_checkpoint(tensors, meta["record"]) if "record" in meta else None
        net = Denoiser(DenoiserConfig(**meta["denoiser"]))  # format <= 2: no "anchor" key, the plain network
        net.load_state_dict(weights, strict=True)
        bridge = Bridge(
            net,
            NoiseSchedule(kind, int(meta["schedule"]["num_steps"])),
            SampleConfig(**meta["sample"]),
            dict(meta["encoder_fingerprints"]),
            tuple(Direction(d) for d in meta["directions"]),
            {k: FusionConfig(**v) for k, v in meta.get("fusion", {}).items()},
            meta.get("train", {}),
            record,
            int(meta["format_version"]),
            meta.get("selection"),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CorruptIndexError(f"{path} is not a valid DiffGAP bridge checkpoint: {exc}") from exc
    return bridge


def bridging_latency_ms(bridge: Bridge, x: np.ndarray, source: str, target: str, repeats: int = 200) -> float:
    """Median wall time in milliseconds of ``repeats`` single-query ``apply`` calls on rows of ``x (N, D)``."""
    import time

    times = []
    for i in range(repeats):
        q = x[i % len(x) : i % len(x) + 1]
        t0 = time.perf_counter()
        bridge.apply(q, source, target)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


__all__ = ["ROLES", "Bridge", "SampleConfig", "bridge_from_checkpoint", "bridging_latency_ms", "load_bridge"]
