"""CAVP embedding throughput: video windows and audio windows per second, full-size architecture, random weights.

The full-size CAVP (ResNet3dSlowOnly-50 video tower, Cnn14 audio tower, 113 M parameters: ``encoders/cavp/model.py``)
with random weights has the published model's compute. A window is 10 s: 40 frames at 4 fps (3 clips of 16
frames, ``encoders/cavp/features.py``) or 10 s of 48 kHz audio (3 log-mel clips of 256 frames). The baseline is
the network alone on ready tensors in the same run: the encoder's figure over it is what preprocessing,
batching and pooling cost.

    python benchmarks/bench_cavp.py [--video-windows 2] [--audio-windows 8] [--device cpu|cuda|auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, bench_device, write_results


def _best(fns, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Best time of each function over ``repeats`` rounds, the functions interleaved within each round (so a
    busy moment on a shared machine hits both sides of a ratio alike)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video-windows", type=int, default=2)
    ap.add_argument("--audio-windows", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4, help="clips per forward pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    from diffgap_search.encoders.cavp import features as feats
    from diffgap_search.encoders.cavp.model import CavpModel
    from diffgap_search.encoders.cavp.encoder import CavpEncoder
    from diffgap_search.encoders.cavp.spec_torch import SpecClips
    from diffgap_search.encoders.runtime import limit_cpu_threads

    device = torch.device(bench_device(args.device))
    threads = limit_cpu_threads()
    torch.manual_seed(0)
    model = CavpModel().eval().to(device)
    enc = CavpEncoder(model, model_id="random", fingerprint="0" * 64, device=device, batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(40, 224, 224, 3), dtype=np.uint8) for _ in range(args.video_windows)]
    audio = (0.1 * rng.standard_normal((args.audio_windows, 480_000))).astype(np.float32)

    enc.embed_video(frames[:1])  # warm-up (allocator, kernels)
    enc.embed_audio(audio[:1], sample_rate=48_000)
    clips = torch.cat([feats.video_clips(f) for f in frames])
    specs = torch.from_numpy(np.concatenate([feats.spec_clips(a, 48_000, 10.0) for a in audio]))

    def net(x: torch.Tensor, fwd) -> None:  # type: ignore[no-untyped-def]
        with torch.inference_mode():
            for chunk in x.split(args.batch_size):
                fwd(chunk.to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()

    video_s, video_net_s = _best([lambda: enc.embed_video(frames), lambda: net(clips, model.encode_video)],
                                 args.repeats)
    spec_torch = SpecClips(device)

    def torch_clips() -> None:
        [spec_torch(a, 48_000, 10.0) for a in audio]
        if device.type == "cuda":
            torch.cuda.synchronize()

    audio_s, audio_net_s, mel_s, mel_torch_s = _best([lambda: enc.embed_audio(audio, sample_rate=48_000),
                                                      lambda: net(specs, model.encode_spec),
                                                      lambda: [feats.spec_clips(a, 48_000, 10.0) for a in audio],
                                                      torch_clips], args.repeats)
    nv, na = args.video_windows, args.audio_windows
    payload = {
        "device": str(device), "threads": threads, "batch_clips": args.batch_size,
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "video": {"windows": nv, "clips": int(clips.shape[0]), "windows_per_s": nv / video_s,
                  "clips_per_s": clips.shape[0] / video_s, "network_windows_per_s": nv / video_net_s,
                  "efficiency": video_net_s / video_s},
        "audio": {"windows": na, "clips": int(specs.shape[0]), "windows_per_s": na / audio_s,
                  "clips_per_s": specs.shape[0] / audio_s, "network_windows_per_s": na / audio_net_s,
                  "log_mel_windows_per_s": na / mel_s, "log_mel_torch_windows_per_s": na / mel_torch_s,
                  "efficiency": audio_net_s / audio_s},
    }
    table = [("tower", "encoder windows/s (10 s)", "clips/s", "network alone windows/s", "encoder / network"),
             ("video (40 frames, 3 clips)", f"{nv / video_s:.3f}", f"{clips.shape[0] / video_s:.2f}",
              f"{nv / video_net_s:.3f}", f"{video_net_s / video_s:.0%}"),
             ("audio (48 kHz, 3 clips)", f"{na / audio_s:.2f}", f"{specs.shape[0] / audio_s:.2f}",
              f"{na / audio_net_s:.2f}", f"{audio_net_s / audio_s:.0%}")]
    notes = [(f"full-size CAVP, random weights ({payload['parameters_millions']} M parameters), device {device}, "
              f"{threads} threads, {args.batch_size} clips per pass, best of {args.repeats}"),
             f"log-mel clips alone, numpy (scipy FIR 48 -> 16 kHz, librosa STFT + mel): {na / mel_s:.1f} windows/s; "
             f"torch on {device} (spec_torch.py, what the encoder runs): {na / mel_torch_s:.1f} windows/s"]
    write_results("cavp", payload, table, notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
