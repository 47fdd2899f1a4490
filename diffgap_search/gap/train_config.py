"""Everything that decides a DiffGAP training run (``TrainConfig``, stored in the checkpoint's ``train``
section) and the progress callback's type; ``training`` runs it, ``training_loop`` optimises."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch

from ..config import device_name
from ..errors import UsageError
from .bridge import SampleConfig
from .directions import Direction, Modality
from .schedule import ScheduleKind

OnStep = Callable[[int, int, float, float], None]
"""``on_step(epoch, step, loss, pairs_per_s)``: called after every optimiser step (epoch and step from 0)."""


ANCHOR_KINDS: tuple[str, ...] = ("auto", "ridge", "procrustes")  # ``TrainConfig.anchor_kind``, ``--anchor``

@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint's ``train`` section)."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    cond_drop_prob: float = 0.1
    infonce_weight: float = 0.3
    infonce_temperature: float = 0.1
    ema_decay: float = 0.995
    val_fraction: float = 0.1
    max_val_groups: int = 2000
    seed: int = 0
    hidden: int = 512
    depth: int = 3
    expansion: int = 2
    schedule: ScheduleKind = ScheduleKind.COSINE_V1
    num_timesteps: int = 1000
    sample: SampleConfig = field(default_factory=SampleConfig)
    anchor: str = "ridge"
    # which linear map the anchor is, per pair set: "auto" (Procrustes where validation finds Procrustes + fusion
    # above ridge + fusion in ``serve_confidence`` of the clip resamples, else ridge: ``anchor_choice``), "ridge"
    # (every bridge before this choice) or "procrustes"
    anchor_kind: str = "auto"
    objective: str = "diffusion"  # or "regression" (ablation: no diffusion)
    only_direction: str | None = None  # e.g. "audio|text" (ablation: no BST)
    tune_sampler: bool = True  # pick steps and guidance on validation; False keeps ``sample`` as given
    guidance_grid: tuple[float, ...] = (1.0, 1.5, 2.0)
    steps_grid: tuple[int, ...] = (1, 4)
    # Modalities besides text whose raw vectors lie in the audio rows' space (("video",) when the video
    # encoder is CAVP): their raw cosine to audio is a fusion term, tuned on validation like text's.
    shared_spaces: tuple[str, ...] = ()
    # Modalities whose raw vectors share no space with the audio rows although the default says they do:
    # ("text",) when the words come from a text encoder of their own (``dgsearch index --text-model``, e.g.
    # WordLlama beside aisfx). Their raw cosine to audio is no fusion term, as the searcher serves it.
    separate_spaces: tuple[str, ...] = ()
    # Validation chooses what is served (``selection``): the network is rated every ``eval_every`` epochs and
    # the best-rated weights kept; training stops after ``patience`` ratings without improvement (0: runs
    # every epoch, still keeping the best). ``residual_grid``: the residual scales tried per direction
    # (empty: serve the full residual, alpha = 1). ``dropout``: inside the denoiser's blocks.
    patience: int = 5
    eval_every: int = 1
    residual_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    # a residual is served only if each task beats the anchor in this share of resamples of the confirmation half of
    # the validation clips, which took part in no choice (0: no test; ``selection.choose_residual``)
    serve_confidence: float = 0.9
    # cross-fitting: the mirror procedure (checkpoint, sampler and alphas chosen on the confirmation half, judged
    # on the choice half) adds its evidence to the confirmation's: twice the clips (``crossfit``)
    cross_fit: bool = True
    dropout: float = 0.0
    # "auto": bfloat16 autocast for the forward pass on CPUs with native bf16 (AVX512-BF16 / AMX: about 1.5x
    # faster), float32 elsewhere; "bf16" / "fp32" force one. Weights, optimiser and EMA stay float32.
    precision: str = "auto"
    # torch threads of the run; 0: as many as the machine has idle cores now (``threads.idle_cores``)
    threads: int = 0
    # where the optimiser loop and validation's ratings and choices run: "cpu", "cuda", "cuda:N", or "auto"
    # (CUDA when torch sees a GPU). The random draws (noise, timesteps, condition drops) come from the same CPU
    # generator on every device, so a CUDA run differs from a CPU run by floating-point order only; the bridge
    # is moved to the CPU once validation has chosen, and stored and served from there.
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 4:
            raise ValueError("TrainConfig needs epochs >= 1 and batch_size >= 4")
        if self.objective not in ("diffusion", "regression"):
            raise ValueError(f"TrainConfig.objective must be 'diffusion' or 'regression', got {self.objective!r}")
        if self.only_direction is not None:
            Direction(self.only_direction)
        if not self.guidance_grid or not self.steps_grid or min(self.guidance_grid) < 0 or min(self.steps_grid) < 1:
            raise ValueError("TrainConfig needs non-empty grids of guidance scales >= 0 and steps >= 1")
        object.__setattr__(self, "guidance_grid", tuple(float(g) for g in self.guidance_grid))
        object.__setattr__(self, "steps_grid", tuple(int(k) for k in self.steps_grid))
        object.__setattr__(self, "shared_spaces", tuple(Modality(m).value for m in self.shared_spaces))
        if "audio" in self.shared_spaces:
            raise ValueError("TrainConfig.shared_spaces names the modalities that share the audio space, not audio")
        object.__setattr__(self, "separate_spaces", tuple(Modality(m).value for m in self.separate_spaces))
        if "audio" in self.separate_spaces or set(self.separate_spaces) & set(self.shared_spaces):
            raise ValueError("TrainConfig.separate_spaces names modalities apart from the audio space: not audio, "
                             f"none of shared_spaces, got {self.separate_spaces}")
        if self.patience < 0 or self.eval_every < 1 or self.threads < 0:
            raise ValueError("TrainConfig needs patience >= 0, eval_every >= 1 and threads >= 0")
        if any(not 0.0 <= a <= 1.0 for a in self.residual_grid):
            raise ValueError(f"TrainConfig.residual_grid holds scales in [0, 1], got {self.residual_grid}")
        object.__setattr__(self, "residual_grid", tuple(float(a) for a in self.residual_grid))
        if not 0.0 <= self.serve_confidence <= 1.0:
            raise ValueError(f"TrainConfig.serve_confidence must be in [0, 1], got {self.serve_confidence}")
        if self.anchor_kind not in ANCHOR_KINDS:
            raise ValueError(f"TrainConfig.anchor_kind must be auto, ridge or procrustes, got {self.anchor_kind!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"TrainConfig.precision must be auto, bf16 or fp32, got {self.precision!r}")
        if not 0.0 <= self.val_fraction < 1.0 or not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError("val_fraction and cond_drop_prob must be in [0, 1)")
        object.__setattr__(self, "schedule", ScheduleKind(self.schedule))
        object.__setattr__(self, "device", device_name(self.device))  # UsageError for an unknown name

    def with_anchor(self, value: str) -> TrainConfig:
        """``--anchor``: ``auto``, ``ridge`` or ``procrustes`` (``anchor_kind``); UsageError else."""
        if value not in ANCHOR_KINDS:
            raise UsageError(f"--anchor takes auto, ridge or procrustes, got {value!r}")
        return replace(self, anchor_kind=value)

    def with_guidance(self, value: str) -> TrainConfig:
        """``--guidance``: ``"auto"`` tunes the scale on validation over ``guidance_grid``; a number >= 0 fixes
        it (1 = plain conditional sampling; the DDIM steps are still chosen on validation). UsageError else."""
        if value.strip().lower() == "auto":
            return self
        try:
            scale = float(value)
        except ValueError:
            scale = -1.0
        if not (scale >= 0 and math.isfinite(scale)):
            raise UsageError(f"--guidance takes 'auto' or a scale >= 0 (1 = no guidance), got {value!r}")
        return replace(self, guidance_grid=(scale,), sample=replace(self.sample, guidance_scale=scale))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        d = asdict(self)
        d["schedule"] = self.schedule.value
        d["guidance_grid"], d["steps_grid"] = list(self.guidance_grid), list(self.steps_grid)
        d["shared_spaces"] = list(self.shared_spaces)
        d["separate_spaces"] = list(self.separate_spaces)
        d["residual_grid"] = list(self.residual_grid)
        return d

    def torch_device(self) -> torch.device:
        """``device`` as a ``torch.device`` (``auto``: ``cuda`` where torch sees a GPU, else ``cpu``).

        Raises UsageError for a CUDA device this machine does not have."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.type == "cuda" and (device.index or 0) >= count:
            raise UsageError(f"training device '{self.device}' is not here: torch {torch.__version__} sees {count} "
                             "CUDA device(s); use --device cpu or auto")
        return device

    def use_bf16(self) -> bool:
        """Whether the forward pass runs under bfloat16 autocast (``precision``; ``auto``: where bf16 is native,
        a CUDA device with bf16 or a CPU with AVX512-BF16 / AMX)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        if self.torch_device().type == "cuda":
            return bool(torch.cuda.is_bf16_supported())
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
            return False


__all__ = ["OnStep", "TrainConfig"]
