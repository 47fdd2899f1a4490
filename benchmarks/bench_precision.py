"""The CLAP towers' precision paths against float32: speed and per-window cosine (issue 27).

On pre-decoded windows (the encoder's features already computed: only the tower is timed), for the audio
tower of the full-size ``laion/clap-htsat-unfused`` architecture with random weights (``_common.make_full_clap``):

- fp32 (torch), bf16 (a bfloat16 copy), int8 (torch dynamic int8 Linear layers), onnx (ONNX Runtime fp32, all
  graph optimisations), onnx-int8 (ONNX Runtime dynamic int8, per-channel weight scales), and with
  ``--compile`` torch.compile (inductor, float32);
- accuracy: the cosine of each window's vector to float32's, min and median, on real recordings (Debian's CC0
  sonic-pi samples, windowed as indexed: short ones repeat-padded to 10 s) and on real-shaped inputs
  (generated 10–30 s clips of tones, sweeps and noise, ``_common.make_clips``);
- the text tower (RoBERTa-base) for a one-text query: fp32, bf16 and torch int8, cosine on 16 texts;
- each row under the machine's native ISA and under the AVX2 caps (``ATEN_CPU_CAPABILITY=avx2``,
  ``ONEDNN_MAX_CPU_ISA=AVX2``: torch's own kernels and oneDNN then use AVX2 only, which the run checks with
  ``torch.backends.cpu.get_cpu_capability()``). ONNX Runtime's MLAS picks its kernels from CPUID and has no
  such cap: its rows under "avx2" still run AVX-512/VNNI/AMX kernels where the CPU has them, so they are
  not an AVX2-only figure.

Random weights: the activations' scales of a random network are not a trained one's, so quantisation error
can be smaller or larger on trained weights; the cosine figures here say the path is sound on these shapes,
not that it holds on every checkpoint — which is why ``--precision auto`` probes the real weights at first use.

    python benchmarks/bench_precision.py                 # native and AVX2 caps; a few minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, make_clips, make_full_clap, windows_of, write_results  # noqa: E402

AVX2_CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
AUDIO_PATHS = ("fp32", "bf16", "int8", "onnx", "onnx-int8")
TEXTS = ("a dog barking in the distance", "rain falling on a tin roof", "people talking", "piano music",
         "a kick drum", "a snare roll", "a crash cymbal", "tabla strokes", "a synth bass note", "an ambient drone",
         "a drum loop", "an electronic blip", "a guitar chord", "vinyl crackle", "a whoosh", "finger snaps")


def real_paths() -> list[Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from real_sounds import available_real_sounds  # type: ignore[import-not-found]

    sounds = available_real_sounds()
    return [s.path for s in sounds[:: max(1, len(sounds) // 40)]]  # spread over the kinds


def timed(run, features, batch: int, repeats: int) -> float:
    """Seconds per window of the best of ``repeats`` passes over ``features`` in batches of ``batch`` (after one
    untimed batch)."""
    import torch

    best = float("inf")
    with torch.inference_mode():
        run(features[:batch])
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, len(features), batch):
                run(features[i : i + batch])
            best = min(best, time.perf_counter() - t0)
    return best / len(features)


def cosines(ref: np.ndarray, run, features, batch: int) -> np.ndarray:
    import torch

    from diffgap_search.encoders.clap.batches import unit_rows

    with torch.inference_mode():
        rows = np.concatenate([unit_rows(run(features[i : i + batch])) for i in range(0, len(features), batch)])
    return np.sum(ref * rows, axis=1)


def child(args: argparse.Namespace) -> dict:
    """One ISA setting: every path's seconds per window and cosines (this process's environment)."""
    import torch

    from diffgap_search.encoders.clap import fast_paths
    from diffgap_search.encoders.clap.encoder import ClapEncoder
    from diffgap_search.encoders.clap.path_choice import audio_runner
    from diffgap_search.encoders.precision import Precision

    os.environ.setdefault("DGSEARCH_CACHE_DIR", str(args.model_dir / "cache"))
    enc = ClapEncoder.from_folder(args.model_dir, model_id="bench", device="cpu", precision="fp32")
    sets = {"real recordings (sonic-pi CC0)": windows_of(real_paths(), args.windows),
            "real-shaped (generated clips)": windows_of(make_clips(args.clips_dir, 8), args.windows // 2)}
    feats = {name: enc._features(w) for name, w in sets.items()}
    real = next(iter(feats.values()))
    out: dict = {"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                 "audio": {}, "text": {}}
    fp32 = audio_runner(enc, Precision.FP32)
    with torch.inference_mode():
        from diffgap_search.encoders.clap.batches import unit_rows

        refs = {name: np.concatenate([unit_rows(fp32(f[i : i + args.batch])) for i in range(0, len(f), args.batch)])
                for name, f in feats.items()}
    paths = [p for p in AUDIO_PATHS if not p.startswith("onnx") or fast_paths.onnx_available()]
    runs, rows = {}, {}
    for path in paths + (["compile"] if args.compile else []):
        t0 = time.perf_counter()
        if path == "compile":
            run = torch.compile(fast_paths.AudioTower(enc.model).eval())
            with torch.inference_mode():
                run(real[: args.batch])
        else:
            run = audio_runner(enc, Precision(path), real[:1])
        runs[path], rows[path] = run, {"build_s": time.perf_counter() - t0, "s_per_window": float("inf")}
        for name, f in feats.items():
            c = cosines(refs[name], run, f, args.batch)
            rows[path][name] = {"windows": len(c), "min": float(c.min()), "median": float(np.median(c))}
    for _ in range(args.repeats):  # round robin: a burst of load on the machine hits every path alike
        for path, run in runs.items():
            rows[path]["s_per_window"] = min(rows[path]["s_per_window"], timed(run, real, args.batch, 1))
    for path, row in rows.items():
        print(path, json.dumps(row), file=sys.stderr, flush=True)
    out["audio"] = rows
    del runs
    out["text"] = text_rows(enc, args.repeats)
    return out


def text_rows(enc, repeats: int) -> dict:
    """The text tower for one query text: fp32, bf16, torch int8; cosine on ``TEXTS``."""
    import copy

    import torch

    from diffgap_search.encoders.clap.batches import unit_rows

    model = enc.model
    tok_all = enc.tokenizer(list(TEXTS), padding="longest", return_tensors="pt")
    tok_one = enc.tokenizer([TEXTS[0]], padding="longest", return_tensors="pt")

    def tower(text_model, proj, dtype=None):
        def run(tok):
            out = text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
            return proj(out.pooler_output if not isinstance(out, tuple) else out[1]).float()
        return run

    runs = {"fp32": tower(model.text_model, model.text_projection),
            "bf16": tower(copy.deepcopy(model.text_model).to(torch.bfloat16), copy.deepcopy(model.text_projection).to(torch.bfloat16)),
            "int8": tower(*[torch.ao.quantization.quantize_dynamic(copy.deepcopy(m), {torch.nn.Linear}, dtype=torch.qint8)
                            for m in (model.text_model, model.text_projection)])}
    rows = {}
    with torch.inference_mode():
        ref = unit_rows(runs["fp32"](tok_all))
        for name, run in runs.items():
            run(tok_one)
            best = float("inf")
            for _ in range(max(3, repeats)):
                t0 = time.perf_counter()
                run(tok_one)
                best = min(best, time.perf_counter() - t0)
            c = np.sum(ref * unit_rows(run(tok_all)), axis=1)
            rows[name] = {"s_per_query": best, "min": float(c.min()), "median": float(np.median(c))}
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    ap.add_argument("--clips-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgsearch-bench-clips")
    ap.add_argument("--windows", type=int, default=16, help="real windows timed and compared (half as many generated)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--isa", choices=("native", "avx2", "both"), default="both")
    ap.add_argument("--compile", action="store_true", help="also torch.compile (minutes to compile on 2 cores)")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    make_full_clap(args.model_dir)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    results = {}
    for isa in (("native", "avx2") if args.isa == "both" else (args.isa,)):
        env = {**os.environ, **(AVX2_CAPS if isa == "avx2" else {})}
        argv = [sys.executable, __file__, "--child", "--model-dir", str(args.model_dir), "--clips-dir",
                str(args.clips_dir), "--windows", str(args.windows), "--batch", str(args.batch), "--repeats",
                str(args.repeats)] + (["--compile"] if args.compile else [])
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True, check=True)
        results[isa] = json.loads(proc.stdout.strip().splitlines()[-1])
    table = [("ISA (torch capability)", "path", "ms / window", "× fp32", "min cos real", "median cos real",
              "min cos real-shaped", "holds (≥ 0.999)")]
    for isa, res in results.items():
        base = res["audio"]["fp32"]["s_per_window"]
        for path, row in res["audio"].items():
            r, g = row["real recordings (sonic-pi CC0)"], row["real-shaped (generated clips)"]
            ok = min(r["min"], g["min"]) >= 0.999
            table.append((f"{isa} ({res['capability']})", f"audio {path}", f"{row['s_per_window'] * 1000:.0f}",
                          f"{base / row['s_per_window']:.2f}", f"{r['min']:.5f}", f"{r['median']:.5f}",
                          f"{g['min']:.5f}", "yes" if ok else "no"))
        tbase = res["text"]["fp32"]["s_per_query"]
        for path, row in res["text"].items():
            table.append((f"{isa} ({res['capability']})", f"text {path}", f"{row['s_per_query'] * 1000:.1f} / query",
                          f"{tbase / row['s_per_query']:.2f}", f"{row['min']:.5f}", f"{row['median']:.5f}", "",
                          "yes" if row["min"] >= 0.999 else "no"))
    notes = [f"load average at the end: {os.getloadavg()[0]:.1f} (1 min); {results[next(iter(results))]['threads']} torch threads",
             "Timed: the tower alone on pre-computed features, batch " + f"{args.batch}, best of {args.repeats} passes, the paths taken in turn.",
             "ONNX Runtime's MLAS dispatches on CPUID with no cap: its rows under the avx2 caps still use the CPU's "
             "AVX-512/VNNI/AMX kernels and are not AVX2-only figures.",
             "Random weights (full-size architecture): a trained checkpoint's quantisation error can differ; "
             "`--precision auto` probes the real weights at first use."]
    write_results("bench_precision", {"results": results, "args": {k: str(v) for k, v in vars(args).items()}},
                  table, notes, **({"out_dir": args.out_dir} if args.out_dir else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
