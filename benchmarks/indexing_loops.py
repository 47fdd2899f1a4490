"""The contenders a user writes, for ``bench_indexing.py``: the naive loop (one window at a time) and the
competent loop (LAION-CLAP's file-list helper, batched), each cutting the engine's windows (10 s, hop 10 s;
a tail under 0.25 s joins the last window, a longer one gets a window ending at the clip's end).

Run as a child process by ``indexing_measures.loop_process`` (timed from spawn to exit, as a user waits):

    python benchmarks/indexing_loops.py --loop competent --list FILES.txt --model-dir D --batch-size 16 --loop-out O.npy
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

W = 480_000  # 10 s at 48 kHz


def window_starts(n: int) -> list[int]:
    """The engine's window starts (samples) for ``n`` samples at 48 kHz: the hop grid, then a window
    ending at the end when the tail is at least a fortieth of a window (a shorter tail joins the last)."""
    starts = list(range(0, max(n - W, 0) + 1, W))
    if n - (starts[-1] + W) >= W // 40:
        starts.append(n - W)
    return starts


def _embeds(out):
    return out if hasattr(out, "numpy") else out.pooler_output


def naive_loop(paths: list[Path], model_dir: Path, out: Path) -> dict:
    """The first-attempt loop: one window at a time; returns counts and seconds (load, loop)."""
    t0 = time.perf_counter()
    import librosa
    import torch
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(str(model_dir)).eval()
    processor = ClapProcessor.from_pretrained(str(model_dir))
    t1 = time.perf_counter()
    embs = []
    for path in paths:
        audio, _ = librosa.load(path, sr=48_000, mono=True)
        for start in window_starts(len(audio)):
            inputs = processor(audio=audio[start : start + W], sampling_rate=48_000, return_tensors="pt")
            with torch.no_grad():
                embs.append(_embeds(model.get_audio_features(**inputs)).numpy())
    np.save(out, np.concatenate(embs))
    return {"windows": len(embs), "load_s": t1 - t0, "loop_s": time.perf_counter() - t1}


def competent_loop(paths: list[Path], model_dir: Path, out: Path, batch_size: int) -> dict:
    """LAION-CLAP's file-list helper, batched: librosa decode + int16 quantisation, batches of windows through
    the processor and the float32 model; returns counts and seconds (load, loop)."""
    t0 = time.perf_counter()
    import librosa
    import torch
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(str(model_dir)).eval()
    processor = ClapProcessor.from_pretrained(str(model_dir))
    t1 = time.perf_counter()
    embs: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        inputs = processor(audio=batch, sampling_rate=48_000, return_tensors="pt")
        with torch.inference_mode():
            e = _embeds(model.get_audio_features(**inputs))
        embs.append(torch.nn.functional.normalize(e, dim=-1).numpy())
        batch.clear()

    for path in paths:
        audio, _ = librosa.load(path, sr=48_000, mono=True)
        audio = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0  # LAION's
        for start in window_starts(len(audio)):
            batch.append(audio[start : start + W])
            if len(batch) == batch_size:
                flush()
    if batch:
        flush()
    np.save(out, np.concatenate(embs))
    return {"windows": sum(len(e) for e in embs), "load_s": t1 - t0, "loop_s": time.perf_counter() - t1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", choices=("naive", "competent"), required=True)
    ap.add_argument("--list", type=Path, required=True, help="the files, one path per line")
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--loop-out", type=Path, required=True, help="where the vectors go (.npy)")
    args = ap.parse_args()
    paths = [Path(p) for p in args.list.read_text().splitlines()]
    fn = naive_loop if args.loop == "naive" else lambda p, m, o: competent_loop(p, m, o, args.batch_size)
    print(json.dumps(fn(paths, args.model_dir, args.loop_out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
