"""Peak memory while indexing N and 10·N clips: streaming, not accumulating (target: growth ≤ 20 %).

Each run is a fresh subprocess that indexes its own generated clips (10–30 s WAVs) with ``index_folder``
and reports its peak RSS (``ru_maxrss``) and its decode workers' peak. The model is the tiny test CLAP by
default (the pipeline's own memory is then what shows; a full-size model adds the same constant to both
runs), ``--model full`` uses the full-size random-weight architecture.

    python benchmarks/bench_memory.py --clips 20            # 20 and 200 clips, about 2 min
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_clips, make_full_clap, write_results  # noqa: E402


def child(clips: Path, model: Path, index: Path) -> None:
    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing import index_folder

    cfg = EncoderConfig(model=str(model), device="cpu")
    report = index_folder(clips, index, load_encoder=lambda c: load_encoder(c, progress=False), encoder_cfg=cfg)
    print(json.dumps({"windows": report.windows_embedded, "files": report.embedded_files,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=20, help="the small run; the large one is 10×")
    ap.add_argument("--model", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--device", default="cpu", help="accepted for symmetry; memory is measured on CPU")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-mem-"))
    if args.model == "full":
        model = make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    else:
        from tests.fixtures_models import make_tiny_clap

        model = make_tiny_clap(work / "tiny-clap", seed=0)
    rows = {}
    for n in (args.clips, 10 * args.clips):
        clips = work / f"clips{n}"
        make_clips(clips, n, seed=n)
        out = subprocess.run([sys.executable, __file__, "--child", str(clips), str(model), str(work / f"idx{n}")],
                             check=True, capture_output=True, text=True).stdout
        rows[n] = json.loads(out.strip().splitlines()[-1])
        print(n, rows[n], flush=True)
    small, large = rows[args.clips], rows[10 * args.clips]
    growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
    table = [("clips", "windows", "peak RSS MB (main)", "peak RSS MB (decode worker)"),
             *[(n, r["windows"], f"{r['peak_rss_mb']:.0f}", f"{r['workers_peak_rss_mb']:.0f}") for n, r in rows.items()]]
    notes = [f"growth of the main process's peak RSS at 10× the clips: {growth:+.1%} (target ≤ +20 %)",
             f"model: {args.model} CLAP; clips 10–30 s mono WAV"]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("memory", {"runs": {str(k): v for k, v in rows.items()}, "growth": growth, "model": args.model},
                  table, notes, **kwargs)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
