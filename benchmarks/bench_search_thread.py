"""Why a served query cost three times one in process (issue 24): torch called from many threads.

``dgsearch serve`` used to run each search on whichever thread of the web server's pool took the request;
torch (and FAISS) parallelise with OpenMP, and GNU OpenMP keeps one team of worker threads per calling
thread. This measures the text encode of the full-size CLAP architecture (random weights, no download) —
the bulk of a text query — called

- ``dedicated``: always from one long-lived thread (what ``serve/state.py`` does now), and
- ``pool``: from a pool of ``--pool`` threads in turn, one call per thread (what the server did),

in interleaved rounds (``--rounds`` x ``--per-round`` calls each), so a machine whose load drifts weighs on
both alike. Results: ``benchmarks/results/search_thread.json`` and ``.md``.

    python benchmarks/bench_search_thread.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_full_clap, write_results  # noqa: E402

TEXTS = ["dog barking", "rain on a roof", "a bell ringing", "footsteps", "a car engine", "birds singing",
         "thunder", "a door closing", "people talking", "an alarm", "water flowing", "a drum loop"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--pool", type=int, default=8, help="threads of the pool the calls rotate over")
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: full-size random CLAP)")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()
    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder

    model = args.model or make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    dedicated = ThreadPoolExecutor(max_workers=1)
    pool = ThreadPoolExecutor(max_workers=args.pool)
    encoder = dedicated.submit(load_encoder, EncoderConfig(model=str(model), device="cpu"), progress=False).result()

    def timed(i: int) -> float:
        s = time.perf_counter()
        encoder.embed_text([TEXTS[i % len(TEXTS)]])
        return time.perf_counter() - s

    for i in range(3):  # warm both
        dedicated.submit(timed, i).result()
    for i in range(args.pool):
        pool.submit(timed, i).result()
    lat: dict[str, list[float]] = {"dedicated": [], "pool": []}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        for mode in (("dedicated", "pool") if r % 2 == 0 else ("pool", "dedicated")):
            ex = dedicated if mode == "dedicated" else pool
            for i in range(args.per_round):
                # one call at a time; the pool hands each call to its next idle thread, as a web server does
                lat[mode].append(ex.submit(timed, i).result())
    dedicated.shutdown()
    pool.shutdown()
    p50 = {m: 1000 * statistics.median(v) for m, v in lat.items()}
    ratio = p50["pool"] / p50["dedicated"]
    table = [("calls from", "calls", "p50 ms", "mean ms"),
             *[(m, str(len(v)), f"{p50[m]:.1f}", f"{1000 * statistics.fmean(v):.1f}") for m, v in lat.items()]]
    notes = [f"p50 from {args.pool} pool threads / p50 from one dedicated thread: {ratio:.2f}",
             f"interleaved: {args.rounds} rounds of {args.per_round} calls per mode, the order alternating",
             f"load average (1 min) before / after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} CPUs: other processes shared the machine; compare the two modes of one run only"]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("search_thread", {"p50_ms": p50, "ratio_pool_vs_dedicated": ratio, "latencies_s": lat,
                                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
                  table, notes, **kwargs)
    print(f"p50 ms: {p50}; pool / dedicated: {ratio:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
