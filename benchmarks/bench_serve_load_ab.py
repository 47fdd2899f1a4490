"""Under load, one search thread against pool threads: the two servers alternated in one run.

``dgsearch serve`` runs every search on one dedicated thread (``serve/state.py``) with GNU OpenMP's idle threads
sleeping at once (``OMP_WAIT_POLICY=PASSIVE``, ``serve/run.py``); ``DGSEARCH_SERVE_POOL_THREADS=1`` runs each on
whichever pool thread took the request, the way before issue 24. One client is faster on the one thread
(``bench_serve.py``); this script asks whether many clients beside a writer are slower there, and what the
wait policy does to it.

Each round starts one server of each kind in turn (each round starts at the next kind, so a machine whose
speed drifts over minutes favours none), runs ``--clients`` clients against it while ``dgsearch index`` adds
``--new-clips`` fresh clips to the same index, and stops it. Results: ``serve_load_ab.json`` and ``.md``.

    python benchmarks/bench_serve_load_ab.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_clips, make_full_clap, write_results  # noqa: E402
from bench_serve import clients, start_server, summary  # noqa: E402

MODES = {"one search thread, passive (the default)": {},
         "one search thread, OMP_WAIT_POLICY=ACTIVE (spinning)": {"OMP_WAIT_POLICY": "ACTIVE"},
         "pool threads (DGSEARCH_SERVE_POOL_THREADS=1)": {"DGSEARCH_SERVE_POOL_THREADS": "1"}}


def loaded_phase(dg: list[str], index: Path, more: Path, device: str, env: dict[str, str], n_clients: int,
                 segments: list[int], min_seconds: float) -> dict[str, Any]:
    """One server of ``env``'s kind under ``n_clients`` clients while a writer indexes ``more``."""
    proc, url, err = start_server(dg, index, device, env)
    try:
        stop = threading.Event()
        writer: dict[str, Any] = {}

        def write() -> None:
            t0 = time.perf_counter()
            r = subprocess.run([*dg, "index", str(more), "--index", str(index), "--device", device, "--workers", "1"],
                               capture_output=True, text=True)
            writer.update(exit_code=r.returncode, seconds=time.perf_counter() - t0)
            while time.perf_counter() - t0 < min_seconds:
                time.sleep(0.1)
            stop.set()

        w = threading.Thread(target=write)
        w.start()
        lat, errors, why, wall = clients(url, n_clients, segments, stop)
        w.join()
        return {**summary(lat, errors, wall), "problems": why, "writer": writer}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        err.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each runs every kind of server once")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--clips", type=int, default=30, help="clips in the index before the first round")
    ap.add_argument("--new-clips", type=int, default=30, help="clips each phase's writer adds")
    ap.add_argument("--min-seconds", type=float, default=20.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()
    dg = [str(Path(sys.executable).parent / "dgsearch")]
    model = make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-serve-ab-"))
    index = work / "index"
    load_before = os.getloadavg()
    try:
        make_clips(work / "clips", args.clips, seed=1)
        subprocess.run([*dg, "index", str(work / "clips"), "--index", str(index), "--model", str(model),
                        "--device", args.device], check=True, capture_output=True)
        from diffgap_search.store.catalog import Catalog

        with Catalog.open(index) as cat:
            segments = [int(r[0]) for r in cat.conn.execute("SELECT id FROM segments ORDER BY id")]
        phases: list[dict[str, Any]] = []
        for r in range(args.rounds):
            order = list(MODES)[r % len(MODES):] + list(MODES)[:r % len(MODES)]  # each round starts elsewhere
            for name in order:
                more = work / f"more-{len(phases)}"
                make_clips(more, args.new_clips, seed=10 + len(phases))
                phase = loaded_phase(dg, index, more, args.device, MODES[name], args.clients, segments,
                                     args.min_seconds)
                phases.append({"round": r, "server": name, **phase})
                print(f"round {r}, {name}: {phase['qps']:.2f} q/s, p50 {phase['p50_ms']:.0f} ms, "
                      f"errors {phase['errors']}, writer {phase['writer']}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = [("round", "server", "queries", "errors", "p50 ms", "p99 ms", "queries/s", "writer s")]
    table += [(p["round"], p["server"], p["queries"], p["errors"], f"{p['p50_ms']:.0f}", f"{p['p99_ms']:.0f}",
               f"{p['qps']:.2f}", f"{p['writer'].get('seconds', float('nan')):.1f}") for p in phases]
    medians = {name: statistics.median([p["qps"] for p in phases if p["server"] == name]) for name in MODES}
    ok = all(p["errors"] == 0 and p["writer"].get("exit_code") == 0 for p in phases)
    notes = ["median queries/s: " + ", ".join(f"{name} {qps:.2f}" for name, qps in medians.items()),
             f"{args.clients} clients; each phase's writer adds {args.new_clips} clips (`--workers 1`); query mix and "
             "model as `bench_serve.py` (full-size CLAP architecture, random weights)",
             f"load average (1 min) before / after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} CPUs",
             "PASS: 0 errors, every writer succeeded" if ok else "FAIL: see serve_load_ab.json"]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("serve_load_ab", {"phases": phases, "median_qps": medians, "ok": ok, "clients": args.clients,
                                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
                  table, notes, **kwargs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
