"""CAVP's video clips against Diff-Foley's demo preprocessing, on real videos: per-clip cosine.

For each video's first 10 s window, the three 4 s clips (frames 0-15, 12-27, 24-39 at 4 fps) are embedded by a
small CAVP of the real classes (random weights, BatchNorm statistics set to these clips, so clips differ) from:

- ours: ``iter_frame_windows(fit="squash")`` (native RGB frame, Pillow bilinear to 224 x 224);
- reference: the frames decoded at native size as RGB (ffmpeg CLI ``rgb24``) at the same indices, then
  ``Image.resize((224, 224), BILINEAR)`` (``transforms.Resize`` on a PIL image) -- Diff-Foley's
  ``inference/demo_util.py`` without its re-encode;
- reference with the demo's re-encode: ``ffmpeg -an -filter:v fps=fps=4 out.mp4`` (libx264 at its defaults, as
  ``reencode_video_with_diff_fps`` runs it), every frame of that file decoded natively, then the same resize;
- before issue 25: decord scaling straight to 224 x 224 while decoding (libswscale bilinear on YUV).

The cosine of each clip to the reference is printed with the cosine between different clips beside it.

    python benchmarks/bench_cavp_reference.py VIDEO.mp4 ... [--out-dir benchmarks/results]

Measured on Diff-Foley's three demo videos (``inference/demo_videos/{car,drum,gun}.mp4``, 640 x 360).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _native(video: Path) -> np.ndarray:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                          "-of", "csv=p=0", str(video)], capture_output=True, text=True, check=True).stdout
    w, h = (int(x) for x in out.strip().split(",")[:2])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-vsync", "passthrough", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)


def _pil(frames: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((224, 224), Image.BILINEAR)) for f in frames])


def _old(video: Path, indices: np.ndarray) -> np.ndarray:
    import decord

    return decord.VideoReader(str(video), ctx=decord.cpu(0), width=224, height=224).get_batch(indices.tolist()).asnumpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args()

    from diffgap_search.config import WindowConfig
    from diffgap_search.encoders.cavp.features import video_clips
    from diffgap_search.encoders.cavp.model import CavpConfig, CavpModel
    from diffgap_search.media.video import iter_frame_windows

    began = time.time()
    sets: dict[str, list[torch.Tensor]] = {"ours": [], "reference": [], "re-encoded": [], "before": []}
    with tempfile.TemporaryDirectory() as tmp:
        for video in args.videos:
            window = next(iter(iter_frame_windows(video, WindowConfig(window_s=10.0), fps=4.0, fit="squash")))
            idx = window.frame_indices
            low = Path(tmp) / f"{video.stem}_new_fps_4.mp4"
            subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "panic", "-y", "-i", str(video), "-an",
                            "-filter:v", "fps=fps=4", str(low)], check=True)
            reencoded = _native(low)[: len(idx)]
            sets["ours"].append(video_clips(window.frames))
            sets["reference"].append(video_clips(_pil(_native(video)[idx])))
            sets["re-encoded"].append(video_clips(_pil(reencoded)))
            sets["before"].append(video_clips(_old(video, idx)))
    clips = {k: torch.cat(v) for k, v in sets.items()}
    torch.manual_seed(0)
    model = CavpModel(CavpConfig(base_channels=4, stage_blocks=(1, 1, 1, 1), cnn_widths=(16, 16, 32, 32, 64, 64),
                                 embed_dim=64))
    with torch.no_grad():
        model.video_project_head.bias.zero_()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model.encode_video(clips["reference"])
    model.eval()
    with torch.inference_mode():
        vec = {k: torch.nn.functional.normalize(model.encode_video(v).float(), dim=1).numpy() for k, v in clips.items()}
    ref = vec["reference"]
    between = ref @ ref.T
    rows = {k: np.sum(vec[k] * ref, axis=1).round(6).tolist() for k in ("ours", "re-encoded", "before")}
    rows["ours vs re-encoded"] = np.sum(vec["ours"] * vec["re-encoded"], axis=1).round(6).tolist()
    out = {"machine": machine(), "seconds": round(time.time() - began, 1), "videos": [v.name for v in args.videos],
           "per_clip_cosine_to_reference": rows,
           "different_clips_max": float(between[~np.eye(len(between), dtype=bool)].max())}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "cavp_reference.json").write_text(json.dumps(out, indent=2))
    lines = ["# CAVP video clips against Diff-Foley's demo preprocessing (per 4 s clip)", "",
             f"- videos: {', '.join(out['videos'])}; command: `python benchmarks/bench_cavp_reference.py ...` "
             f"({out['seconds']} s)", f"- different clips of the reference: max cosine {out['different_clips_max']:.4f}",
             "", "| pipeline | min | per clip |", "| --- | --- | --- |"]
    for k, r in rows.items():
        lines.append(f"| {k} | {min(r):.4f} | {', '.join(f'{c:.4f}' for c in r)} |")
    (args.out_dir / "cavp_reference.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
