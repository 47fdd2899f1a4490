"""The indexing process's heap policy (``indexing/memory.py``): seconds, kernel time, page faults and peak RSS of
the engine in process, one fresh process per run, the policies alternated round by round.

- ``trim-each-batch``: malloc as glibc sets it, ``malloc_trim(0)`` after every committed batch (the engine
  before 2026-12-05);
- ``keep-first-limit``: ``keep_freed_memory()`` (large blocks from the heap, freed memory kept) in the indexing
  process, and a guard that trims whenever resident memory is 10 % past its size after the run's first batch;
  the decode workers' malloc as glibc sets it (the engine from the first to the second change of 2026-12-05);
- ``keep-rebase``: the same, but the guard measures the working set again one batch after each trim (the
  ``HeapGuard`` of now);
- ``keep``: that, and each decode worker keeping its freed heap too (``decode.decode_task``) — what
  ``run_index`` does now;
- ``mmap-threshold-32`` / ``mmap-threshold-8``: the alternatives measured and not taken — the mmap threshold
  pinned at 32 or 8 MiB (blocks above it still mapped and unmapped each time), freed heap kept, the guard and
  the decode workers of ``keep-first-limit``.

Each child loads the model (untimed, as ``indexing_measures.engine`` does), indexes the clips, and reports the
run's seconds and its ``getrusage`` deltas; the peak RSS includes the model. The full-size CLAP architecture with
random weights, the engine's own precision path (``--precision auto``, remembered for this machine).

    python benchmarks/bench_heap.py --clips 240 --rounds 2      # about 5 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_clips, make_full_clap, write_results  # noqa: E402

POLICIES = ("trim-each-batch", "keep-first-limit", "keep-rebase", "keep", "mmap-threshold-32", "mmap-threshold-8")
M_MMAP_THRESHOLD = -3


class FirstLimitGuard:
    """``HeapGuard`` before 2026-12-05's second change: the limit set after the run's first batch, kept after trims."""

    def __init__(self, keep: bool) -> None:
        from diffgap_search.indexing.memory import HeapGuard

        self._guard = HeapGuard(keep)

    def after_batch(self) -> bool:
        limit = self._guard.limit
        trimmed = self._guard.after_batch()
        if trimmed and limit is not None:
            self._guard.limit = limit
        return trimmed


def child(policy: str, folder: Path, index_dir: Path, model_dir: Path) -> dict:
    """One run under ``policy``, in this (fresh) process."""
    import resource

    from diffgap_search.indexing import memory, runner
    from diffgap_search.libc import libc_function

    trims = [0]
    release = memory.release_free_memory

    def counted() -> bool:
        trims[0] += 1
        return release()

    memory.release_free_memory = counted  # the guard's trims, counted
    if policy == "keep-first-limit" or policy.startswith("mmap-threshold-"):
        runner.HeapGuard = FirstLimitGuard
    stages = None
    if policy != "keep":
        from dataclasses import replace
        from functools import partial

        from indexing_measures import decode_plain

        from diffgap_search.indexing import default_stages
        from diffgap_search.indexing.stages import decode_in_workers

        stages = replace(default_stages(), decode=partial(decode_in_workers, task=decode_plain))  # workers as glibc sets them
    if policy == "trim-each-batch":
        runner.keep_freed_memory = lambda: False  # the guard then trims after every batch
    elif policy.startswith("mmap-threshold-"):
        mallopt = libc_function("mallopt")
        mb = int(policy.rsplit("-", 1)[1])
        ok = bool(mallopt(M_MMAP_THRESHOLD, mb << 20)) and bool(mallopt(memory.M_TRIM_THRESHOLD, memory.KEPT_TOP_BYTES))
        runner.keep_freed_memory = lambda: ok
    from indexing_measures import engine

    before, workers0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    windows, seconds, info = engine(folder, index_dir, model_dir, "cpu", 16, stages)
    after, workers1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"policy": policy, "windows": windows, "seconds": seconds, "audio_path": info["audio_path"],
            "sys_s": after.ru_stime - before.ru_stime, "user_s": after.ru_utime - before.ru_utime,
            "minor_faults": after.ru_minflt - before.ru_minflt, "peak_rss_mb": after.ru_maxrss / 1024,
            "decoders_cpu_s": workers1.ru_utime - workers0.ru_utime + workers1.ru_stime - workers0.ru_stime,
            "decoders_faults": workers1.ru_minflt - workers0.ru_minflt, "trims": trims[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    ap.add_argument("--clips-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgsearch-bench-clips")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        policy, folder, index_dir, model_dir = args.child
        print(json.dumps(child(policy, Path(folder), Path(index_dir), Path(model_dir))))
        return 0
    policies = args.policies.split(",")
    model_dir = make_full_clap(args.model_dir)
    paths = make_clips(args.clips_dir, args.clips)
    runs: dict[str, list[dict]] = {p: [] for p in policies}
    with tempfile.TemporaryDirectory(prefix="dgsearch-bench-heap-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        for p in paths:
            (folder / p.name).symlink_to(p)
        for r in range(args.rounds):
            for policy in policies if r % 2 == 0 else policies[::-1]:
                out = subprocess.run([sys.executable, __file__, "--child", policy, str(folder),
                                      str(Path(tmp) / f"index-{r}-{policy}"), str(model_dir)],
                                     check=True, capture_output=True, text=True).stdout
                runs[policy].append(json.loads(out.strip().splitlines()[-1]))
                print(runs[policy][-1], flush=True)
    table = [("policy", "windows", "seconds (median; each run)", "kernel s", "minor faults", "peak RSS MB", "trims",
              "decode workers: CPU s, minor faults")]
    for policy, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        table.append((policy, rs[0]["windows"], f"{med:.1f} ({', '.join(format(r['seconds'], '.1f') for r in rs)})",
                      ", ".join(f"{r['sys_s']:.1f}" for r in rs), ", ".join(f"{r['minor_faults'] / 1e6:.2f} M" for r in rs),
                      ", ".join(f"{r['peak_rss_mb']:.0f}" for r in rs), ", ".join(str(r["trims"]) for r in rs),
                      ", ".join(f"{r['decoders_cpu_s']:.1f} s, {r['decoders_faults'] / 1e3:.0f} k" for r in rs)))
    notes = [f"engine in process (model loaded before the clock), full-size CLAP, audio path {rs[0]['audio_path']};"
             f" {args.clips} clips of 10–30 s; one fresh process per run, policies alternated over {args.rounds} rounds",
             "kernel s, minor faults and peak RSS from getrusage of the child, model load included; the decode"
             " workers' from its RUSAGE_CHILDREN over the run"]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("heap", {"runs": runs, "clips": args.clips}, table, notes, **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
