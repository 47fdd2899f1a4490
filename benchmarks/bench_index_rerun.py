"""``dgsearch index FOLDER`` again over a library where nothing changed: what keeping an index up to date costs.

A sound library is indexed once and then again whenever files may have come in; on most of those runs nothing
(or little) changed, and the run is the walk of the tree, the plan against the catalog and the process around
them. The library is ``--library`` (default ``/usr/share``: about 48,000 files of every kind, among them
Debian's sonic-pi samples, real recordings), indexed once with ``--model aisfx --no-frames`` (real weights from
its package, no network) by this tree; then every command runs ``--repeats`` times in fresh processes,
alternated: this tree's no-op run and, with ``--against TREE`` (a ``git worktree`` of an older commit), the same
run with that tree's code. Both must report the same counts.

    python benchmarks/bench_index_rerun.py --repeats 7 [--library DIR] [--against /tmp/oldtree]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _alternated import alternated, timing_rows, tree_cli  # noqa: E402
from _common import ROOT, write_results  # noqa: E402

COUNTS = ("found", "unchanged", "renamed", "copied", "deleted", "embedded_files")


def tree_size(folder: Path) -> int:
    """Regular files under ``folder`` (what the walk stats), hidden ones included."""
    return sum(len(files) for _dir, _dirs, files in os.walk(folder))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--library", type=Path, default=Path("/usr/share"))
    p.add_argument("--against", type=Path, help="another source tree whose CLI runs the same no-op run, alternated")
    p.add_argument("--name", default="index_rerun")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dg-rerun-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DGSEARCH_CACHE_DIR": str(tmp / "cache")}
    try:
        index = tmp / "index"
        t0 = time.perf_counter()
        subprocess.run([*tree_cli(ROOT), "index", str(args.library), "--index", str(index), "--model", "aisfx",
                        "--no-frames"], check=True, stdout=subprocess.DEVNULL, env=env)
        built_s = time.perf_counter() - t0
        trees = {"this tree": ROOT} | ({"--against": args.against.resolve()} if args.against else {})
        commands = {f"{label}: no-op `dgsearch index`": [*tree_cli(tree), "index", str(args.library), "--index",
                                                       str(index), "--json"] for label, tree in trees.items()}
        times, outputs = alternated(commands, args.repeats, env)
        counts = {label: {k: json.loads(out)[k] for k in COUNTS} for label, out in outputs.items()}
        same = len({json.dumps(c, sort_keys=True) for c in counts.values()}) == 1
        medians = {k: statistics.median(v) for k, v in times.items()}
        first = next(iter(counts.values()))
        notes = [f"library {args.library}: {tree_size(args.library)} files, {first['found']} of them audio or video;"
                 f" indexed once by this tree in {built_s:.0f} s (--model aisfx --no-frames)",
                 f"{args.repeats} fresh processes per command, alternated; every run embedded nothing",
                 f"counts of the last runs: {first}; the same on every tree: {same}"]
        if args.against:
            label, old = "this tree: no-op `dgsearch index`", "--against: no-op `dgsearch index`"
            notes.append(f"this tree / --against: {medians[label] / medians[old]:.2f}")
        write_results(args.name, {"times": times, "medians": medians, "counts": counts, "same_counts": same,
                                  "library": str(args.library)}, timing_rows(times), notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
