"""``dgsearch index --engine ray`` against ``--engine local`` on one machine: the same ~600 windows, each run a
fresh ``dgsearch index`` process (process start, model loads and, for Ray, joining or starting the runtime
included). Issue 22's target: Ray's overhead <= 15 % here.

Four runs per repeat, each into a new index: ``local`` (default decode workers: 1 on 2 CPUs) and ``local,
--workers 2`` (as many decoders as Ray runs decode tasks on 2 CPUs); ``ray, joined``: a driver
joining a loopback Ray runtime started by this script beforehand (``ray start --head``, its start not counted:
a cluster is up before its jobs); ``ray, own runtime``: no ``RAY_ADDRESS``, so the run starts (and stops) a
local Ray runtime itself. The model is the tests' tiny CLAP (``tests/fixtures_models.py``, dim 32): its
embedding is cheap, so the fixed costs of Ray show at their largest; with a real model they are a smaller
share.

    python benchmarks/bench_ray.py --clips 200 --repeats 1
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=200, help="30 s clips: 3 windows of 10 s each")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()
    from fixtures_models import make_tiny_clap

    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-ray-"))
    model = make_tiny_clap(work / "model")
    make_clips(work / "clips", args.clips, min_s=29.95, max_s=30.0)
    windows = 3 * args.clips
    dg = str(Path(sys.executable).with_name("dgsearch"))
    base = [dg, "index", str(work / "clips"), "--model", str(model), "--device", "cpu", "--json"]
    port, token = _free_port(), secrets.token_hex(16)
    loopback = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
                "RAY_USAGE_STATS_ENABLED": "0"}
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={work / 'ray'}"],
                            env={**env, **loopback}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    times: dict[str, list[float]] = {"local": [], "local, --workers 2": [], "ray, joined": [], "ray, own runtime": []}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("ray start did not come up")
                time.sleep(0.5)
        time.sleep(3)  # the raylet registers after the GCS listens
        for r in range(args.repeats):
            times["local"].append(_run([*base, "--index", str(work / f"local{r}")], env))
            times["local, --workers 2"].append(_run([*base, "--index", str(work / f"local2w{r}"), "--workers", "2"],
                                                    env))  # as many decoders as Ray's 2 CPUs run tasks
            times["ray, joined"].append(_run([*base, "--index", str(work / f"joined{r}"), "--engine", "ray"],
                                             {**env, **loopback, "RAY_ADDRESS": f"127.0.0.1:{port}"}))
            times["ray, own runtime"].append(_run([*base, "--index", str(work / f"own{r}"), "--engine", "ray"],
                                                  {**env, **loopback}))
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        try:
            os.killpg(head.pid, signal.SIGKILL)  # anything of the runtime left in its session
        except ProcessLookupError:
            pass
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()
    best = min(med["local"], med["local, --workers 2"])
    table = [("run", "median s (wall, process start included)", "windows/s", "overhead vs the faster local run")]
    for k, v in med.items():
        table.append((k, f"{v:.1f}", f"{windows / v:.1f}", "" if k.startswith("local") else f"{v / best - 1:+.0%}"))
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("ray", {"clips": args.clips, "windows": windows, "model": "tiny CLAP (tests/fixtures_models.py)",
                          "times_s": times, "median_s": med, "load_avg": load,
                          "overhead_joined": med["ray, joined"] / best - 1,
                          "overhead_own_runtime": med["ray, own runtime"] / best - 1}, table,
                  [f"{args.clips} clips of 30 s = {windows} windows of 10 s; tiny CLAP (dim 32): Ray's fixed costs"
                   " at their largest share", f"load average during the run: {load[0]:.1f} / {load[1]:.1f} /"
                   f" {load[2]:.1f} (a shared machine: compare the rows, not absolute times)",
                   "ray, joined: a loopback runtime started beforehand (not counted); ray, own runtime: the run"
                   " starts and stops one itself"], **kwargs)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
