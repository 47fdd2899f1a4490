"""``dgsearch index --engine ray`` against ``--engine local`` on one machine: the same ~600 windows, each run a
fresh ``dgsearch index`` process (process start, model loads and, for Ray, joining or starting the runtime
included). Issue 22's target: Ray's overhead <= 15 % here, against the faster of the two local rows.

Five runs per repeat, each into a new index: ``local`` (default decode workers: 1 on 2 CPUs) and ``local,
--workers 2`` (as many decoders as Ray runs decode tasks on 2 CPUs); ``ray, joined``: a driver joining a
loopback Ray runtime started by this script just before that run (``ray start --head``, its start not
counted: a cluster is up before its jobs) and stopped after it, so that no idle runtime takes CPU from the
other rows; ``ray, joined after a job``: the same, but an untimed 5-clip ``--engine ray`` job runs through the
runtime first, so Ray Data's helper actors (its stats actor, autoscaling coordinator and actor-location
tracker: detached, one per cluster) are already up, as on any cluster that has served a job before;
``ray, own runtime``: no ``RAY_ADDRESS``, so the run starts (and stops) a local Ray runtime
itself. Fairness: one untimed warm-up run first (the clips and the model read into the page cache, a
5-clip run for the imports), the order of the
five rows rotated from repeat to repeat, and the load average recorded before the first run and after each
(the 1-minute figure after a run includes the run itself, about 2 on 2 CPUs). The model is the tests' tiny
CLAP (``tests/fixtures_models.py``, dim 32): its embedding is cheap, so the fixed costs of Ray show at their
largest; with a real model they are a smaller share.

    python benchmarks/bench_ray.py --clips 200 --repeats 3
    python benchmarks/bench_ray.py --clips 100 --model-dir /tmp/dgsearch-bench-clap --name ray_full_clap

The second line measures the full-size CLAP (``bench_indexing.py`` writes that folder): the embedding's real
cost, against which Ray's fixed costs are a smaller share.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from _common import make_clips, write_results  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - t0


@contextmanager
def _runtime(work: Path, env: dict[str, str], tries: int = 3) -> Iterator[str]:
    """A loopback Ray runtime (``ray start --head --block``) for one run: its address; stopped, with anything
    left of it in its session, on exit. A start that fails (seen once in ~10: the free port taken again
    before the GCS bound it) is retried on another port, up to ``tries`` times, each failure's log kept."""
    for attempt in range(1, tries + 1):
        port = _free_port()
        log = work / f"ray-start-{port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                                     f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                                     "--disable-usage-stats", f"--temp-dir={work}"],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if _came_up(head, port):
            break
        _stop(head)
        if attempt == tries:
            raise SystemExit(f"ray start did not come up {tries} times; last log {log}:\n"
                             + log.read_text(errors="replace")[-2000:])
        print(f"ray start on port {port} did not come up (try {attempt}); see {log}", file=sys.stderr)
    try:
        time.sleep(3)  # the raylet registers after the GCS listens
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head)


def _came_up(head: subprocess.Popen[bytes], port: int, timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            if time.monotonic() > deadline or head.poll() is not None:
                return False
            time.sleep(0.5)


def _stop(head: subprocess.Popen[bytes]) -> None:
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # anything of the runtime left in its session
    except ProcessLookupError:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=200, help="30 s clips: 3 windows of 10 s each")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="a CLAP folder to index with (default: the tests' tiny CLAP, Ray's fixed costs at their"
                         " largest share); e.g. bench_indexing.py's full-size one, /tmp/dgsearch-bench-clap")
    ap.add_argument("--name", default="ray", help="results file name (benchmarks/results/NAME.md)")
    args = ap.parse_args()
    from fixtures_models import make_tiny_clap

    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-ray-"))
    model = args.model_dir or make_tiny_clap(work / "model")
    model_words = (f"the CLAP at {args.model_dir}" if args.model_dir
                   else "tiny CLAP (dim 32): Ray's fixed costs at their largest share")
    make_clips(work / "clips", args.clips, min_s=29.95, max_s=30.0)
    windows = 3 * args.clips
    dg = str(Path(sys.executable).with_name("dgsearch"))
    base = [dg, "index", str(work / "clips"), "--model", str(model), "--device", "cpu", "--json"]
    warm = [dg, "index", str(work / "warm"), *base[3:]]  # the same run of 5 clips (untimed)
    loopback = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    def joined(ix: Path, after_a_job: bool = False) -> float:
        with _runtime(work / "ray", {**env, **loopback}) as address:
            ray_env = {**env, **loopback, "RAY_ADDRESS": address}
            if after_a_job:  # untimed: a 5-clip job first, as on a cluster that has served one before
                _run([*warm, "--index", str(ix.with_name(ix.name + "-first-job")), "--engine", "ray"], ray_env)
            return _run([*base, "--index", str(ix), "--engine", "ray"], ray_env)

    rows: dict[str, Callable[[Path], float]] = {
        "local": lambda ix: _run([*base, "--index", str(ix)], env),
        "local, --workers 2": lambda ix: _run([*base, "--index", str(ix), "--workers", "2"], env),
        "ray, joined": joined,
        "ray, joined after a job": lambda ix: joined(ix, after_a_job=True),
        "ray, own runtime": lambda ix: _run([*base, "--index", str(ix), "--engine", "ray"], {**env, **loopback}),
    }
    times: dict[str, list[float]] = {k: [] for k in rows}
    load_before = os.getloadavg()
    for f in [*(work / "clips").rglob("*"), *model.rglob("*")]:  # untimed warm-up: files in the page cache,
        if f.is_file():
            f.read_bytes()
    make_clips(work / "warm", 5, min_s=29.95, max_s=30.0)  # ... and a small run for the imports
    _run([*warm, "--index", str(work / "warm-ix")], env)
    loads: list[dict[str, object]] = []
    names = list(rows)
    for r in range(args.repeats):
        for k in names[r % len(names):] + names[: r % len(names)]:  # rotated: no row always first or last
            times[k].append(rows[k](work / f"ix-{r}-{names.index(k)}"))
            loads.append({"repeat": r, "run": k, "load_avg_after": os.getloadavg()})
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()
    after_1min = [float(x["load_avg_after"][0]) for x in loads]  # type: ignore[index]
    best_name = min(("local", "local, --workers 2"), key=lambda k: med[k])
    best = med[best_name]
    table = [("run", "median s (wall, process start included)", "windows/s", f"overhead vs {best_name}")]
    for k, v in med.items():
        table.append((k, f"{v:.1f}", f"{windows / v:.1f}", "" if k.startswith("local") else f"{v / best - 1:+.0%}"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = load_before[0] > 0.5 * cpus
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results(args.name, {"clips": args.clips, "windows": windows,
                              "model": str(args.model_dir or "tiny CLAP (tests/fixtures_models.py)"),
                          "repeats": args.repeats, "times_s": times, "median_s": med, "baseline": best_name,
                          "load_avg_before": load_before, "load_avg_after_each_run": loads, "load_avg": load,
                          "overhead_joined": med["ray, joined"] / best - 1,
                          "overhead_joined_after_a_job": med["ray, joined after a job"] / best - 1,
                          "overhead_own_runtime": med["ray, own runtime"] / best - 1}, table,
                  [f"{args.clips} clips of 30 s = {windows} windows of 10 s; {model_words}; overhead against the"
                   " faster local row",
                   f"load average (1 / 5 / 15 min) before the first run: {load_before[0]:.1f} / {load_before[1]:.1f}"
                   f" / {load_before[2]:.1f} on {cpus} CPUs; 1-minute load after each run: {min(after_1min):.1f} to"
                   f" {max(after_1min):.1f} (the run itself adds about {min(2, cpus)})"
                   + (" -- a BUSY machine: compare the rows of this run, not absolute times, and rerun on a quiet"
                      " one before quoting the overhead" if busy else ""),
                   f"{args.repeats} repeat(s), medians; one untimed warm-up run first; the rows' order rotated"
                   " from repeat to repeat",
                   "ray, joined: a loopback runtime started before its run (not counted) and stopped after it;"
                   " ray, joined after a job: the same, with an untimed 5-clip job run through it first (Ray"
                   " Data's detached helper actors already up, as on any cluster that has served a job);"
                   " ray, own runtime: the run starts and stops one itself"], **kwargs)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
