"""Frame geometry: the size decord decodes at, and the fix-ups after it (resample, centre crop, squash).

Decord resizes while it decodes (its ``width``/``height`` arguments drive ffmpeg's scaler), which is
the cheapest place to shrink a frame. Two things happen after it, in numpy:

- the centre crop to ``size x size`` (aspect is kept: the short side is scaled to ``size`` first, so the
  crop trims only the long side, as CLIP's own processor does);
- for a quarter-turn rotated video only: decord 0.6 applies the rotation itself but allocates its output
  with the *unrotated* shape, so a non-square request fails (``get_batch``: "The size must exactly
  match") or returns a 4-channel array (``vr[i]``). A square request is correct, so those videos are
  decoded square and the squashed axis is resampled back (nearest neighbour) before the crop;
- the squash (CAVP): the frame is decoded at its native displayed size, as RGB, and the whole frame is then
  resized to ``size x size`` by Pillow's bilinear filter, which is what Diff-Foley's demo does
  (``inference/demo_util.py``: OpenCV decodes the frame at native size, ``cv2.cvtColor(BGR2RGB)``,
  ``transforms.Resize((224, 224))`` on the PIL image, i.e. ``Image.resize((224, 224), BILINEAR)``, which
  widens its filter when it shrinks, an antialiased resize). Letting the decoder scale instead (libswscale's
  bilinear on the YUV planes, straight to 224 x 224) moved CAVP's video vectors to a cosine of 0.9911 from
  the reference's per 4 s clip, as far as two different clips of one video are (issue 25).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class DecodePlan:
    """How to get frames of the wanted size out of decord.

    ``decode_w``/``decode_h`` are passed to ``decord.VideoReader`` (-1 = native). ``target_w``/``target_h``
    are the displayed frame scaled so its short side is ``crop`` (or the native displayed size when
    ``crop`` is None); ``crop`` is the side of the final centre crop, None for no crop. ``squash``: the side
    the whole native frame is then resized to with Pillow's bilinear filter (None: no squash).
    """

    decode_w: int
    decode_h: int
    target_w: int
    target_h: int
    crop: int | None
    squash: int | None = None

    @property
    def out_shape(self) -> tuple[int, int]:
        """(H, W) of the frames this plan yields."""
        if self.squash is not None:
            return self.squash, self.squash
        if self.crop is not None:
            return self.crop, self.crop
        return self.target_h, self.target_w


def plan_decode(display_w: int, display_h: int, quarter_turn: bool, size: int | None, squash: bool = False) -> DecodePlan:
    """The decode size for a displayed ``display_w x display_h`` frame and a final ``size x size`` crop.

    ``size=None`` keeps the native displayed size (no crop). ``quarter_turn`` marks 90/270-degree
    rotation metadata (see the module docstring for why those are decoded square). ``squash`` scales the
    whole frame to ``size x size`` instead, aspect not kept, no crop (CAVP's ``Resize((224, 224))``): decoded at
    the native displayed size and resized after decoding (``squash_frames``).
    """
    if display_w <= 0 or display_h <= 0:
        raise ValueError(f"bad frame size {display_w}x{display_h}")
    if squash and size is not None:
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        return replace(plan_decode(display_w, display_h, quarter_turn, None), squash=size)
    if size is None:
        tw, th = display_w, display_h
    else:
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        short = min(display_w, display_h)
        tw = max(size, int(round(display_w * size / short)))
        th = max(size, int(round(display_h * size / short)))
    if quarter_turn and tw != th:
        side = max(tw, th)
        return DecodePlan(side, side, tw, th, size)
    if size is None:
        return DecodePlan(-1, -1, tw, th, None)
    return DecodePlan(tw, th, tw, th, size)


def finish_frames(frames: np.ndarray, plan: DecodePlan) -> np.ndarray:
    """Decoded ``(F, h, w, 3) uint8`` -> ``(F, *plan.out_shape, 3) uint8``, C-contiguous (owns its data)."""
    out = frames
    if out.shape[1] != plan.target_h:
        out = _resample_axis(out, 1, plan.target_h)
    if out.shape[2] != plan.target_w:
        out = _resample_axis(out, 2, plan.target_w)
    if plan.crop is not None:
        top = (out.shape[1] - plan.crop) // 2
        left = (out.shape[2] - plan.crop) // 2
        out = out[:, top : top + plan.crop, left : left + plan.crop]
    if plan.squash is not None:
        return squash_frames(out, plan.squash)
    return np.ascontiguousarray(out)


def squash_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """``(F, h, w, 3) uint8`` RGB -> ``(F, size, size, 3) uint8``: each whole frame through Pillow's
    ``Image.resize((size, size), BILINEAR)``, what torchvision's ``Resize((size, size))`` does to a PIL image."""
    from PIL import Image

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (F, h, w, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
    out = np.empty((frames.shape[0], size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        image = Image.fromarray(np.ascontiguousarray(frame))
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return out


def _resample_axis(frames: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Nearest-neighbour resample of one spatial axis to ``n`` samples (pixel centres aligned)."""
    m = frames.shape[axis]
    idx = np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.int64), m - 1)
    return np.take(frames, idx, axis=axis)
