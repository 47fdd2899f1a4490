"""The frame encoder of the video stage: CLIP's image tower, frames mean-pooled per window.

Each window is a ``(F, H, W, 3) uint8`` stack of RGB frames (``media/video.py``). Every frame goes
through CLIP's image preprocessing and ``CLIPVisionModelWithProjection`` (the image tower plus its
projection, loadable from a full ``CLIPModel`` checkpoint such as ``openai/clip-vit-base-patch32``).

Pooling: each frame embedding is L2-normalised, the F unit vectors of a window are averaged, and the
mean is L2-normalised again (CLIP4Clip's parameter-free "meanP"). So a window is the direction of its
frames' average, every frame weighing the same whatever its norm.

Preprocessing is CLIP's (``preprocessor_config.json``: resize the short side to ``size.shortest_edge``
bicubic, centre crop ``crop_size``, rescale by ``rescale_factor``, normalise by ``image_mean``/``image_std``)
done in torch on the whole frame stack rather than by ``CLIPImageProcessor``, which needs Pillow (not a
dependency) and works one PIL image at a time. Bicubic with antialiasing, rounded and clipped to
0..255 as PIL's uint8 output is; when frames already come at the crop size (``media/video.py``'s
default 224) the resize and crop are no-ops.

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.config import DEFAULT_VIDEO_MODEL, Device, FrameFit, VideoConfig
from diffgap_search.encoders.base import check_batch_size
from diffgap_search.errors import ModelUnavailableError

if TYPE_CHECKING:
    import torch

DEFAULT_FPS = VideoConfig().fps
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipPreprocess:
    """CLIP image preprocessing read from ``preprocessor_config.json``; sizes in pixels."""

    shortest_edge: int | None
    crop_h: int | None
    crop_w: int | None
    rescale_factor: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_settings(cls, cfg: dict[str, Any]) -> ClipPreprocess:
        """From an image processor's settings (``preprocessor_config.json``, or the ``image_processor``
        section of ``processor_config.json``: ``layout.processor_settings``)."""
        size = cfg.get("size")
        short = size.get("shortest_edge") if isinstance(size, dict) else size
        crop = cfg.get("crop_size")
        crop_h, crop_w = (crop.get("height"), crop.get("width")) if isinstance(crop, dict) else (crop, crop)
        do_crop = cfg.get("do_center_crop", True) and crop_h is not None
        return cls(
            shortest_edge=int(short) if cfg.get("do_resize", True) and short else None,
            crop_h=int(crop_h) if do_crop else None,
            crop_w=int(crop_w) if do_crop else None,
            rescale_factor=float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0,
            mean=tuple(cfg.get("image_mean", OPENAI_CLIP_MEAN)) if cfg.get("do_normalize", True) else (0.0,) * 3,
            std=tuple(cfg.get("image_std", OPENAI_CLIP_STD)) if cfg.get("do_normalize", True) else (1.0,) * 3,
        )

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        """``(F, H, W, 3) uint8`` -> ``(F, 3, crop_h, crop_w) float32`` pixel values (CPU tensor)."""
        import torch
        import torch.nn.functional as nnf

        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32)
        h, w = x.shape[-2:]
        if self.shortest_edge is not None and min(h, w) != self.shortest_edge:
            short, long = (h, w) if h <= w else (w, h)
            new_long = int(self.shortest_edge * long / short)
            size = (self.shortest_edge, new_long) if h <= w else (new_long, self.shortest_edge)
            x = nnf.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
            x = x.round_().clamp_(0.0, 255.0)
        if self.crop_h is not None and self.crop_w is not None:
            x = _center_crop(x, self.crop_h, self.crop_w)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x * self.rescale_factor - mean) / std


class ClipEncoder:
    """Embeds windows of video frames into CLIP's joint space (an ``encoders.base.FrameEncoder``).

    Attributes:
        model_id: the hub id or local directory the weights came from, as given.
        fingerprint: sha256 hex digest of the weights (``encoders/weights/fingerprint.py``).
        dim: D, the projection size (512 for ViT-B/32).
        fps: the frame rate windows are expected to be sampled at (informative; recorded in the index).
        batch_size: frames per forward pass.
        provenance: where the weights came from (set by the loader, recorded in the index).
    """

    modalities = ("video",)
    fit = FrameFit.CROP  # the short side scaled, centre-cropped, as CLIP's processor

    def __init__(
        self,
        model: Any,
        preprocess: ClipPreprocess,
        *,
        model_id: str,
        fingerprint: str,
        device: torch.device,
        batch_size: int = 32,
        fps: float = DEFAULT_FPS,
    ) -> None:
        check_batch_size(batch_size)
        self.model = model.eval()
        self.preprocess = preprocess
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.provenance: dict[str, Any] = {}
        self.device = device
        self.batch_size = batch_size
        self.fps = fps
        self.dim = int(model.config.projection_dim)

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """``(F, H, W, 3) uint8`` frames -> ``(F, D) float32`` per-frame embeddings, L2-normalised."""
        return self._frame_embeddings([frames]).numpy()

    def embed_video(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """N windows, each ``(F_i, H, W, 3) uint8`` (F_i >= 1) -> ``(N, D) float32``, L2-normalised.

        Frames of all windows are embedded together in batches of ``batch_size``; then each window is
        the re-normalised mean of its frames' unit embeddings.
        """
        import torch

        from diffgap_search.encoders.runtime import l2_rows

        counts = [int(np.asarray(w).shape[0]) for w in windows]
        if not counts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if min(counts) < 1:
            raise ValueError("every window needs at least one frame")
        per_frame = self._frame_embeddings(windows)
        pooled = torch.stack([chunk.mean(dim=0) for chunk in torch.split(per_frame, counts)])
        return l2_rows(pooled).numpy().astype(np.float32, copy=False)

    def _frame_embeddings(self, windows: Sequence[np.ndarray]) -> torch.Tensor:
        """All frames of ``windows`` in order -> ``(sum F_i, D) float32`` CPU tensor, L2-normalised."""
        import torch

        from diffgap_search.encoders.runtime import l2_rows

        for w in windows:
            arr = np.asarray(w)
            if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise ValueError(f"expected (F, H, W, 3) uint8 frames, got {arr.shape} {arr.dtype}")
        out = []
        with torch.inference_mode():
            for pieces in _batches([np.asarray(w) for w in windows], self.batch_size):
                batch = torch.cat([self.preprocess(piece) for piece in pieces]).to(self.device)
                emb = self.model(pixel_values=batch).image_embeds
                out.append(l2_rows(emb.to(torch.float32).cpu()))
        return torch.cat(out)


def _batches(windows: list[np.ndarray], batch_size: int) -> Iterator[list[np.ndarray]]:
    """Frames of all windows, in order, as batches of ``batch_size`` frames; each batch a list of
    ``(f, H, W, 3)`` slices that each come from one window (so one slice has one frame size).
    Only one batch is preprocessed at a time, so memory stays at one batch of pixel values."""
    pending: list[np.ndarray] = []
    room = batch_size
    for frames in windows:
        at = 0
        while at < frames.shape[0]:
            take = min(room, frames.shape[0] - at)
            pending.append(frames[at : at + take])
            at += take
            room -= take
            if room == 0:
                yield pending
                pending, room = [], batch_size
    if pending:
        yield pending


def load_clip_encoder(
    model: str = DEFAULT_VIDEO_MODEL,
    device: str = Device.AUTO,
    batch_size: int = 32,
    *,
    revision: str | None = None,
    fps: float = DEFAULT_FPS,
    progress: bool = True,
) -> ClipEncoder:
    """Load CLIP's image tower from a local directory or a hub id (HF cache, downloads once, as published).

    The folder holds ``config.json`` (a ``CLIPModel`` or ``CLIPVisionModelWithProjection`` config), the weights
    (``model.safetensors``, or the ``pytorch_model.bin`` that ``openai/clip-vit-base-patch32`` publishes,
    read with ``weights_only=True`` and converted once: ``encoders/weights/convert.py``) and the image processor's settings
    (``preprocessor_config.json`` or ``processor_config.json``). Its TF, Flax and tokenizer files are never
    fetched: only the image tower is used.

    Raises:
        ModelUnavailableError: missing files, unknown id, offline without a cached copy, bad weights.
        UsageError: an unknown device name.
    """
    from diffgap_search.encoders.runtime import prepare_device
    from diffgap_search.encoders.weights.convert import prepared_weights
    from diffgap_search.encoders.weights.layout import processor_settings
    from diffgap_search.encoders.weights.progress import stderr_download_progress
    from diffgap_search.encoders.weights.source import resolve_model

    source = resolve_model(model, revision, role="clip_vision", progress=stderr_download_progress(progress))
    torch_device = prepare_device(device)
    weights_dir, fingerprint = prepared_weights(source.folder)
    vision = _load_vision_model(source.folder, weights_dir).to(torch_device)
    encoder = ClipEncoder(
        vision,
        ClipPreprocess.from_settings(processor_settings(source.folder, "clip_vision")),
        model_id=model,
        fingerprint=fingerprint,
        device=torch_device,
        batch_size=batch_size,
        fps=fps,
    )
    encoder.provenance = source.provenance()
    return encoder


def _load_vision_model(folder: Path, weights_dir: Path) -> Any:
    """``CLIPVisionModelWithProjection`` in float32: config from ``folder``, safetensors from ``weights_dir``;
    a full CLIPModel's text half is skipped."""
    import torch
    from transformers import CLIPConfig, CLIPVisionConfig, CLIPVisionModelWithProjection

    from diffgap_search.encoders.runtime import quiet_transformers

    try:
        # Quiet: "text_model.* weights not used" is expected for a CLIPModel checkpoint.
        with quiet_transformers():
            config = _vision_config(folder, CLIPConfig, CLIPVisionConfig)
            model, report = CLIPVisionModelWithProjection.from_pretrained(
                weights_dir, config=config, dtype=torch.float32, use_safetensors=True, local_files_only=True,
                output_loading_info=True,
            )
    except Exception as exc:  # noqa: BLE001 - every load failure is one user-facing line
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(f"cannot load a CLIP image model from '{folder}': {first}") from None
    missing = sorted(report.get("missing_keys", []))
    if missing:
        raise ModelUnavailableError(
            f"'{folder}' is not a CLIP image model: {len(missing)} weights missing (e.g. {missing[0]})"
        )
    logging.getLogger(__name__).debug("loaded CLIP vision model from %s", folder)
    return model


def _vision_config(folder: Path, clip_cls: Any, vision_cls: Any) -> Any:
    """The image tower's config: a full CLIP config's ``vision_config`` with the *top-level*
    ``projection_dim`` (the sub-config's own default, 512, can disagree with the checkpoint's projection)."""
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if raw.get("model_type") == "clip":
        full = clip_cls.from_pretrained(folder)
        vision = full.vision_config
        vision.projection_dim = full.projection_dim
        return vision
    return vision_cls.from_pretrained(folder)


def _center_crop(x: torch.Tensor, crop_h: int, crop_w: int) -> torch.Tensor:
    """Centre crop ``(F, 3, H, W)`` as transformers' ``center_crop`` does (zero-pads when smaller)."""
    import torch.nn.functional as nnf

    h, w = x.shape[-2:]
    if h < crop_h or w < crop_w:
        ph, pw = max(crop_h - h, 0), max(crop_w - w, 0)
        x = nnf.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = x.shape[-2:]
    top, left = int((h - crop_h) / 2), int((w - crop_w) / 2)
    return x[..., top : top + crop_h, left : left + crop_w]
