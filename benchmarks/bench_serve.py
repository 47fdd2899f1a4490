"""Load: N concurrent clients query a real ``dgsearch serve`` while ``dgsearch index`` writes the same index.

Three measurements in one run, the same query mix each time (text queries, and one in five "more like
this" from a segment id):

1. baseline: a warm in-process ``Searcher.search``, one query at a time (what the server wraps), and
2. the server, one client, no writer (the HTTP and JSON cost), measured in alternating rounds of
   ``--round-queries`` queries each (in process, then over HTTP, ``--rounds`` times), the same queries in the
   same mode (``semantic``) both ways: this machine's speed drifts by 2-3x over minutes (shared host), so
   two phases run one after the other compare the minutes, not the paths; with ``--compare-pool-threads``, also a server
   running its searches on whichever pool thread took the request (``DGSEARCH_SERVE_POOL_THREADS=1``, the way
   before issue 24; ``serve/state.py``), one client, for the before/after ratio in one run;
3. the server, ``--clients`` threads (httpx, one connection each), while a ``dgsearch index`` of
   ``--new-clips`` more clips runs on the same index: errors (must be 0), p50 / p99 latency, throughput;
   the phase lasts until the writer is done and at least ``--min-seconds``. Afterwards the server must
   see every new file (``/api/info``), without a restart.

The index is embedded with the full-size ``laion/clap-htsat-unfused`` architecture with random weights (same
compute, no download), or ``--model DIR``. Results: ``benchmarks/results/serve.json`` and ``serve.md``.

    python benchmarks/bench_serve.py --clients 8
"""

from __future__ import annotations

import argparse
import os
import re
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

TEXTS = ["dog barking", "rain on a roof", "a bell ringing", "footsteps", "a car engine", "birds singing",
         "thunder", "a door closing", "people talking", "an alarm", "water flowing", "a drum loop"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def query_params(i: int, segments: list[int]) -> dict[str, Any]:
    if i % 5 == 4 and segments:
        return {"like": segments[i % len(segments)], "k": 10, "mode": "semantic"}
    return {"q": TEXTS[i % len(TEXTS)], "k": 10, "mode": "semantic"}


def summary(lat_s: list[float], errors: int, wall_s: float) -> dict[str, float]:
    return {"queries": len(lat_s), "errors": errors, "p50_ms": 1000 * percentile(lat_s, 50),
            "p99_ms": 1000 * percentile(lat_s, 99), "mean_ms": 1000 * statistics.fmean(lat_s) if lat_s else 0.0,
            "qps": len(lat_s) / wall_s if wall_s > 0 else 0.0, "seconds": wall_s}


def in_process_searcher(index: Path, device: str) -> Any:
    """A warm in-process ``Searcher`` (the object the server wraps), opened as the server opens its own."""
    from diffgap_search.config import SearchConfig, SearchMode
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Query, Searcher

    searcher = Searcher(index, lambda cfg: load_encoder(cfg, progress=False), device=device)
    if hasattr(searcher.encoder, "text_serving"):  # the text path the server takes (serve/state.py's warm-up)
        searcher.encoder.text_serving = True
    searcher.search(Query(text="warm up"), SearchConfig(mode=SearchMode.SEMANTIC))
    return searcher


def in_process_queries(searcher: Any, first: int, n: int, segments: list[int]) -> list[float]:
    """Seconds of queries ``first .. first + n - 1`` of the mix, run by ``searcher`` one at a time."""
    from diffgap_search.config import SearchConfig, SearchMode
    from diffgap_search.search import Query

    lat = []
    for i in range(first, first + n):
        p = query_params(i, segments)
        q = Query(text=p["q"]) if "q" in p else Query(segment_id=int(p["like"]))
        s = time.perf_counter()
        searcher.search(q, SearchConfig(mode=SearchMode.SEMANTIC, top_k=10))
        lat.append(time.perf_counter() - s)
    return lat


def http_queries(http: Any, first: int, n: int, segments: list[int]) -> tuple[list[float], list[str]]:
    """Seconds of queries ``first .. first + n - 1`` over one keep-alive connection; problems seen."""
    lat, problems = [], []
    for i in range(first, first + n):
        s = time.perf_counter()
        r = http.get("api/search", params=query_params(i, segments))
        took = time.perf_counter() - s
        if r.status_code == 200 and r.json()["hits"]:
            lat.append(took)
        else:
            problems.append(f"HTTP {r.status_code}: {r.text[:200]}")
    return lat, problems


def interleaved(url: str, searcher: Any, rounds: int, per_round: int, segments: list[int]
                ) -> tuple[dict[str, float], dict[str, Any]]:
    """In process and over HTTP in alternating rounds of the same queries: ``(baseline, single client)``."""
    import httpx

    inproc: list[float] = []
    served: list[float] = []
    problems: list[str] = []
    wall_in = wall_http = 0.0
    with httpx.Client(base_url=url, timeout=120) as http:
        http_queries(http, 0, 3, segments)  # the connection and the server's first requests
        for r in range(rounds):
            t0 = time.perf_counter()
            inproc += in_process_queries(searcher, r * per_round, per_round, segments)
            t1 = time.perf_counter()
            lat, why = http_queries(http, r * per_round, per_round, segments)
            wall_in, wall_http = wall_in + t1 - t0, wall_http + time.perf_counter() - t1
            served += lat
            problems += why
    return summary(inproc, 0, wall_in), {**summary(served, len(problems), wall_http), "problems": problems[:5]}


def start_server(dg: list[str], index: Path, device: str, env: dict[str, str] | None = None
                 ) -> tuple[subprocess.Popen[bytes], str, Any]:
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([*dg, "serve", "--index", str(index), "--port", "0", "--device", device],
                            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        err.seek(0)
        m = re.search(rb"dgsearch serve: (http://\S+/) ", err.read())
        if m:
            return proc, m.group(1).decode(), err
        if proc.poll() is not None:
            err.seek(0)
            raise RuntimeError(f"dgsearch serve exited: {err.read().decode(errors='replace')}")
        time.sleep(0.1)
    raise RuntimeError("dgsearch serve did not start")


def clients(url: str, n_clients: int, segments: list[int], stop: threading.Event, min_queries: int = 0
            ) -> tuple[list[float], int, list[str], float]:
    """Run ``n_clients`` threads until ``stop`` is set (and each did ``min_queries``); latencies, errors."""
    import httpx

    lat: list[float] = []
    problems: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            i = c * 7
            done = 0
            while not stop.is_set() or done < min_queries:
                params = query_params(i, segments)
                s = time.perf_counter()
                try:
                    r = http.get("api/search", params=params)
                    ok = r.status_code == 200 and len(r.json()["hits"]) > 0
                    why = "" if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                except Exception as exc:  # noqa: BLE001 - every failure counts as an error
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                took = time.perf_counter() - s
                with lock:
                    (lat.append(took) if ok else problems.append(why))
                i += 1
                done += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, len(problems), problems[:5], time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--clips", type=int, default=30, help="clips in the index before the load phase")
    ap.add_argument("--new-clips", type=int, default=60, help="clips the concurrent `dgsearch index` adds")
    ap.add_argument("--min-seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=6, help="alternating in-process / HTTP rounds")
    ap.add_argument("--round-queries", type=int, default=10, help="queries per round, each way")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: full-size random CLAP)")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="an environment variable for the servers only (repeatable), e.g. OMP_WAIT_POLICY=ACTIVE")
    ap.add_argument("--compare-pool-threads", action="store_true",
                    help="also measure one client against a server searching from its pool threads (the old way)")
    args = ap.parse_args()
    import httpx

    exe = Path(sys.executable).parent / "dgsearch"
    dg = [str(exe)]
    model = args.model or make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-serve-"))
    index = work / "index"
    make_clips(work / "clips", args.clips, seed=1)
    make_clips(work / "more", args.new_clips, seed=2)
    subprocess.run([*dg, "index", str(work / "clips"), "--index", str(index), "--model", str(model), "--device",
                    args.device], check=True, capture_output=True)
    from diffgap_search.store.catalog import Catalog

    with Catalog.open(index) as cat:
        segments = [int(r[0]) for r in cat.conn.execute("SELECT id FROM segments ORDER BY id")]
    load_before = os.getloadavg()
    n_single = args.rounds * args.round_queries
    server_env = dict(item.split("=", 1) for item in args.server_env)
    pool: dict[str, Any] | None = None
    if args.compare_pool_threads:
        old, old_url, old_err = start_server(dg, index, args.device, {**server_env, "DGSEARCH_SERVE_POOL_THREADS": "1"})
        try:
            done = threading.Event()
            done.set()
            latp, errp, whyp, wallp = clients(old_url, 1, segments, done, min_queries=n_single)
            pool = {**summary(latp, errp, wallp), "problems": whyp}
        finally:
            old.terminate()
            old.wait(timeout=30)
            old_err.close()
        print(f"server searching from its pool threads (before issue 24), 1 client: {pool}", file=sys.stderr)
    proc, url, err = start_server(dg, index, args.device, server_env)
    try:
        searcher = in_process_searcher(index, args.device)
        try:
            base, single = interleaved(url, searcher, args.rounds, args.round_queries, segments)
        finally:
            searcher.close()
        print(f"baseline (in-process Searcher, sequential): {base}", file=sys.stderr)
        print(f"server, 1 client, no writer: {single}", file=sys.stderr)
        stop = threading.Event()
        files_before = httpx.get(url + "api/info").json()["summary"]["files"]
        writer_result: dict[str, Any] = {}

        def writer() -> None:
            t0 = time.perf_counter()
            r = subprocess.run([*dg, "index", str(work / "more"), "--index", str(index), "--device", args.device,
                                "--workers", "1"], capture_output=True, text=True)
            writer_result.update(exit_code=r.returncode, seconds=time.perf_counter() - t0,
                                 stdout=r.stdout.strip().splitlines()[-1:] if r.stdout else [], stderr_tail=r.stderr[-300:])
            end = time.monotonic() + max(0.0, args.min_seconds - (time.perf_counter() - t0))
            while time.monotonic() < end:
                time.sleep(0.1)
            stop.set()

        w = threading.Thread(target=writer)
        w.start()
        lat, errors, why, wall = clients(url, args.clients, segments, stop)
        w.join()
        loaded = {**summary(lat, errors, wall), "problems": why}
        files_after = httpx.get(url + "api/info").json()["summary"]["files"]
        print(f"server, {args.clients} clients, writer running: {loaded}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        err.close()
        shutil.rmtree(work, ignore_errors=True)
    ok = loaded["errors"] == 0 and writer_result.get("exit_code") == 0 and files_after == files_before + args.new_clips
    ratio = loaded["qps"] / base["qps"] if base["qps"] else float("nan")
    table = [("phase", "queries", "errors", "p50 ms", "p99 ms", "queries/s"),
             ("baseline: in-process Searcher.search, sequential (rounds alternating with the next row)", base["queries"], 0, f"{base['p50_ms']:.1f}",
              f"{base['p99_ms']:.1f}", f"{base['qps']:.1f}"),
             *([("server searching from pool threads (before), 1 client", pool["queries"], pool["errors"],
                 f"{pool['p50_ms']:.1f}", f"{pool['p99_ms']:.1f}", f"{pool['qps']:.1f}")] if pool else []),
             ("server, 1 client, no writer (rounds alternating with the row above)", single["queries"], single["errors"], f"{single['p50_ms']:.1f}",
              f"{single['p99_ms']:.1f}", f"{single['qps']:.1f}"),
             (f"server, {args.clients} clients, `dgsearch index` writing", loaded["queries"], loaded["errors"],
              f"{loaded['p50_ms']:.1f}", f"{loaded['p99_ms']:.1f}", f"{loaded['qps']:.1f}")]
    single_ratio = single["p50_ms"] / base["p50_ms"] if base["p50_ms"] else float("nan")
    notes = [f"one client's p50 over HTTP / in-process p50: {single_ratio:.2f}"
             + (f" (searching from pool threads, as before issue 24: {pool['p50_ms'] / base['p50_ms']:.2f})"
                if pool and base["p50_ms"] else ""),
             f"the writer indexed {args.new_clips} clips ({writer_result.get('seconds', 0):.1f} s, exit "
             f"{writer_result.get('exit_code')}) during the loaded phase; the server then listed {files_after} files "
             f"(was {files_before}): new generations picked up without a restart",
             f"throughput under load / sequential in-process baseline: {ratio:.2f} (queries run one at a time "
             "behind the server's lock, sharing 2 cores with the writer; see serve/state.py)",
             f"query mix: text queries, one in five 'more like this' (segment id); k = 10, mode semantic; in process "
             f"and over HTTP alternate in {args.rounds} rounds of {args.round_queries} queries each; full-size CLAP "
             "architecture with random weights" if args.model is None else f"model {args.model}",
             *([f"servers' environment: {' '.join(args.server_env)}"] if args.server_env else []),
             f"load average (1 min) before / after the run: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} CPUs: other processes shared the machine; compare phases of one run only",
             "PASS: 0 errors, writer succeeded, every new file visible" if ok else "FAIL: see serve.json"]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("serve", {"clients": args.clients, "baseline": base, "single_client": single, "under_load": loaded,
                            "writer": writer_result, "files_before": files_before, "files_after": files_after,
                            "throughput_ratio_vs_baseline": ratio, "ok": ok, "pool_threads_single_client": pool,
                            "single_p50_ratio_vs_baseline": single_ratio,
                            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}, table, notes, **kwargs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
