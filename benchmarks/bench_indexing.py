"""Indexing throughput (windows/s) of the engine against a naive loop and against the encoder alone.

On the same generated clips (10–30 s, mono 16-bit WAV at 44.1/48/32 kHz, seeded):

- naive: what a user would write — per file ``librosa.load(sr=48000)``, then each 10 s window (repeat-pad
  the last) through ``ClapProcessor`` and ``ClapModel.get_audio_features`` one at a time, float32;
- engine: ``diffgap_search.indexing.index_folder`` end to end (discover, hash, decode in a worker process,
  batched encoding, SQLite, FAISS), with the encoder ``load_encoder`` gives (precision ``auto``);
- ceiling: that same encoder's ``embed_audio`` on windows already decoded in memory, batched.

The model is the full-size ``laion/clap-htsat-unfused`` architecture with random weights (same compute).
The naive loop and the ceiling run on a subset (``--naive-clips``, ``--ceiling-windows``): their
windows/s does not depend on the count. Targets: engine ≥ 5× naive, engine ≥ 85 % of the ceiling.

    python benchmarks/bench_indexing.py --clips 200        # about 10 min on 2 busy cores
    python benchmarks/bench_indexing.py --clips 40 --device cpu
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_device, make_clips, make_full_clap, write_results  # noqa: E402


def naive(paths: list[Path], model_dir: Path) -> tuple[int, float]:
    """The loop a user would write; returns (windows, seconds)."""
    import librosa
    import torch
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(str(model_dir)).eval()
    processor = ClapProcessor.from_pretrained(str(model_dir))
    n = 0
    t0 = time.perf_counter()
    for path in paths:
        audio, _ = librosa.load(path, sr=48_000, mono=True)
        for start in range(0, len(audio), 480_000):  # the engine's windows (hop = window = 10 s)
            window = audio[start : start + 480_000]  # the processor repeat-pads a short last window
            inputs = processor(audio=window, sampling_rate=48_000, return_tensors="pt")
            with torch.no_grad():
                model.get_audio_features(**inputs)
            n += 1
    return n, time.perf_counter() - t0


def ceiling(encoder, paths: list[Path], max_windows: int) -> tuple[int, float]:
    """The engine's encoder alone on pre-decoded windows; returns (windows, seconds of the best of 3 runs)."""
    from diffgap_search.config import WindowConfig
    from diffgap_search.media.audio import load_audio
    from diffgap_search.media.windows import window_audio

    cfg = WindowConfig()
    wins = []
    for path in paths:
        wins.append(window_audio(load_audio(path, cfg.sample_rate), cfg).samples)
        if sum(len(w) for w in wins) >= max_windows:
            break
    batch = np.concatenate(wins)[:max_windows]
    encoder.embed_audio(batch[:2])  # first call: precision probe, lazy init
    best = float("inf")
    for _ in range(3):  # the best of three: the ceiling, and less at the mercy of a noisy machine
        t0 = time.perf_counter()
        encoder.embed_audio(batch)
        best = min(best, time.perf_counter() - t0)
    return len(batch), best


def engine(folder: Path, index_dir: Path, model_dir: Path, device: str, batch_size: int) -> tuple[int, float, dict]:
    """``index_folder`` end to end (model load excluded: loaded once before the clock starts)."""
    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing import index_folder

    cfg = EncoderConfig(model=str(model_dir), device=device, batch_size=batch_size)
    encoder = load_encoder(cfg, progress=False)
    encoder.embed_audio(np.zeros((1, encoder.window_samples), np.float32))  # precision probe, as a warm process
    t0 = time.perf_counter()
    report = index_folder(folder, index_dir, load_encoder=lambda _c: encoder, encoder_cfg=cfg)
    seconds = time.perf_counter() - t0
    info = {"files": report.embedded_files, "audio_dtype": str(encoder.audio_dtype),
            "fast_features": encoder._fast_features is not None, "batch_size": batch_size}
    return report.windows_embedded, seconds, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=200, help="clips the engine indexes (the issue says 200)")
    ap.add_argument("--naive-clips", type=int, default=8, help="clips the naive loop runs on (slow)")
    ap.add_argument("--ceiling-windows", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (GPU parts skipped without one)")
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    ap.add_argument("--clips-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgsearch-bench-clips")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()

    import torch

    device = bench_device(args.device)
    model_dir = make_full_clap(args.model_dir)
    paths = make_clips(args.clips_dir, args.clips)
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-index-"))
    try:
        folder = work / "clips"
        folder.mkdir()
        for p in paths:
            (folder / p.name).symlink_to(p)
        eng_n, eng_s, info = engine(folder, work / "index", model_dir, device, args.batch_size)
        print(f"engine: {eng_n} windows in {eng_s:.1f} s = {eng_n / eng_s:.2f} windows/s {info}", flush=True)
        from diffgap_search.config import EncoderConfig
        from diffgap_search.encoders.loading import load_encoder

        enc = load_encoder(EncoderConfig(model=str(model_dir), device=device, batch_size=args.batch_size),
                           progress=False)
        ceil_n, ceil_s = ceiling(enc, paths, args.ceiling_windows)
        print(f"ceiling: {ceil_n} windows in {ceil_s:.1f} s = {ceil_n / ceil_s:.2f} windows/s", flush=True)
        del enc
        naive_n, naive_s = naive(paths[: args.naive_clips], model_dir)
        print(f"naive: {naive_n} windows in {naive_s:.1f} s = {naive_n / naive_s:.2f} windows/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    eng, ceil, nv = eng_n / eng_s, ceil_n / ceil_s, naive_n / naive_s
    payload = {"device": device, "clips": args.clips, "torch_threads": torch.get_num_threads(),
               "engine": {"windows": eng_n, "seconds": eng_s, "windows_per_s": eng, **info},
               "ceiling": {"windows": ceil_n, "seconds": ceil_s, "windows_per_s": ceil},
               "naive": {"clips": args.naive_clips, "windows": naive_n, "seconds": naive_s, "windows_per_s": nv},
               "engine_vs_naive": eng / nv, "engine_vs_ceiling": eng / ceil}
    table = [("run", "windows", "seconds", "windows/s", "vs naive", "vs ceiling"),
             ("naive loop (librosa + ClapProcessor + model, 1 window at a time, fp32)", naive_n, f"{naive_s:.1f}",
              f"{nv:.2f}", "1.0×", f"{nv / ceil:.0%}"),
             (f"encoder alone, pre-decoded, batch {args.batch_size} ({info['audio_dtype']})", ceil_n,
              f"{ceil_s:.1f}", f"{ceil:.2f}", f"{ceil / nv:.1f}×", "100%"),
             (f"engine: index_folder, {args.clips} clips", eng_n, f"{eng_s:.1f}", f"{eng:.2f}", f"{eng / nv:.1f}×",
              f"{eng / ceil:.0%}")]
    notes = ["full-size laion/clap-htsat-unfused architecture, random weights; clips 10–30 s at 44.1/48/32 kHz",
             f"device {device}, torch threads {torch.get_num_threads()}; targets: engine ≥ 5× naive, ≥ 85 % of ceiling",
             "engine precision: bf16 audio tower where native (AVX512-BF16/AMX, CUDA) and a probe agrees with "
             "fp32 within cosine 0.999 (measured ≥ 0.9999); log-mel in torch (≤ 1e-5 dB from the extractor)"]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("indexing", payload, table, notes, **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
