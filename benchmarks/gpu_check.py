"""The measurements of ``benchmarks/gpu_check.sh`` (run that: it checks for a GPU first): every model path and
the DiffGAP training loop on CUDA against this machine's CPUs, the fp16/bf16 cosine of CLAP's audio vectors to
fp32, ``dgsearch train`` and ``dgsearch index`` with ``--device cuda``, FAISS k-means, and ``--engine ray`` with a
GPU actor where Ray is installed. Parts run in order of what they tell; each is bounded, one that fails is
recorded with its error, and a part that would not fit in what is left of ``--budget-s`` is skipped and said
to be. Results are rewritten after every part (a run cut short keeps what it measured).

    benchmarks/gpu_check.sh [--out-dir DIR] [--budget-s 420]
    python benchmarks/gpu_check.py --dry-run --out-dir /tmp/g   # every part on the CPU, short: checks the code
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import gpu_parts  # noqa: E402
from _common import RESULTS, write_results  # noqa: E402

# (name, the part, seconds it needs on an H200 with 16 CPUs, measured or estimated: skipped with less left)
PARTS: list[tuple[str, Callable[[gpu_parts.Check], None], float]] = [
    ("clap", gpu_parts.clap, 60),  # H200, 2026-12-04: 51 s
    ("training", gpu_parts.training, 30),  # 20 s
    ("index", gpu_parts.index_e2e, 40),  # 28 s
    ("clip", gpu_parts.clip_frames, 40),  # 29 s
    ("cavp", gpu_parts.cavp, 60),  # 54 s
    ("aisfx", gpu_parts.aisfx, 40),  # 27 s
    ("train_cli", gpu_parts.train_cli, 120),  # > 240 s while validation ran on the CPU; not re-measured since
    ("faiss", gpu_parts.faiss_kmeans, 20),  # 13 s on 16 CPUs
    ("ray", gpu_parts.ray_engine, 90),  # not run on a GPU yet
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--budget-s", type=float, default=420.0, help="Seconds the whole check may take.")
    ap.add_argument("--only", default="", help="Comma-separated part names (default: all).")
    ap.add_argument("--dry-run", action="store_true", help="Every part on the CPU with short timings.")
    args = ap.parse_args()
    t_start = time.perf_counter()
    import torch

    gpu = "cpu" if args.dry_run else "cuda"
    name = "CPU (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    work = Path(tempfile.mkdtemp(prefix="dgsearch-gpu-check-"))
    check = gpu_parts.Check(gpu=gpu, work=work, scale=0.02 if args.dry_run else 1.0)
    check.results.update(gpu=name, torch=torch.__version__, cuda=torch.version.cuda, parts={})
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    notes = [f"GPU: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}"]
    for part, fn, needs in PARTS:
        if only and part not in only:
            continue
        left = args.budget_s - (time.perf_counter() - t_start)
        if left < needs * (0.1 if args.dry_run else 1.0):
            check.results["parts"][part] = f"skipped: {left:.0f} s left of the budget, needs about {needs:.0f}"
            check.row(part, "not measured", f"out of time ({left:.0f} s left, needs about {needs:.0f})")
            continue
        t0 = time.perf_counter()
        try:
            fn(check)
            check.results["parts"][part] = f"ok in {time.perf_counter() - t0:.0f} s"
        except ImportError as exc:
            check.results["parts"][part] = f"skipped: {exc}"
            check.row(part, "not measured", f"not installed here: {exc}")
        except Exception as exc:  # noqa: BLE001 - a failed part is recorded, the others still run
            err = getattr(exc, "stderr", None)
            tail = (err.decode(errors="replace") if isinstance(err, bytes) else (err or ""))[-600:]
            check.results["parts"][part] = f"failed: {type(exc).__name__}: {exc} {tail}".strip()
            check.row(part, "failed", f"{type(exc).__name__}: {str(exc)[:160]}")
            traceback.print_exc()
            print(tail, file=sys.stderr)
        print(f"gpu_check: {part}: {check.results['parts'][part][:200]} ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)
        with contextlib.redirect_stdout(io.StringIO()):  # rewritten after every part: a cut-short run keeps them
            write_results("gpu_check", check.results, [("measure", "value", "note"), *check.rows], notes,
                          out_dir=args.out_dir)
    check.results["seconds"] = time.perf_counter() - t_start
    write_results("gpu_check", check.results, [("measure", "value", "note"), *check.rows], notes, out_dir=args.out_dir)
    shutil.rmtree(work, ignore_errors=True)  # clips, indexes, pairs: scratch (the CLAP folder stays cached)
    return 0


if __name__ == "__main__":
    sys.exit(main())
