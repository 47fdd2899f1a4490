"""How an indexing run's calls are cut into chunks for the two lanes (``encoders/clap/lanes.py``), alternated in
one process: ``lane_chunks`` (an even number of chunks of about 4 windows, today's rule) against chunks of at most
4 (``even_chunks(batch, 4)``, the rule before it: 17 or 18 windows made five chunks, so one lane ran a third while
the other waited).

The same generated clips as ``bench_indexing.py`` (240 clips = about 600 windows of 10 s), the full-size
``laion/clap-htsat-unfused`` architecture with random weights on its bf16 path (forced), the model loaded once,
the engine in process (``run_index`` into a fresh index each time), the order flipped every round. Reported per
rule: medians of wall and of this process's CPU seconds, and the lanes' idle time (two lanes × each call's wall
time, less the time its chunks ran), summed over the run.

    python benchmarks/bench_lane_chunks.py --rounds 4
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bf16_encoder_in_lanes, lanes_args, link_folder, write_results  # noqa: E402

RULES = ("even, about 4", "at most 4")


def main() -> int:
    args = lanes_args(__doc__, "lane-chunks")

    from diffgap_search.encoders.clap.batches import even_chunks
    from diffgap_search.encoders.clap.lanes import LANE_WINDOWS, LANES, lane_chunks
    from diffgap_search.indexing import RunSettings, default_stages, run_index

    cfg, encoder, paths = bf16_encoder_in_lanes(args.clips)
    lanes = encoder.lanes

    rule = [RULES[0]]
    chunk_s: list[float] = []
    idle = [0.0]
    lanes_map = lanes.map

    def timed_map(fn: Callable[[np.ndarray], np.ndarray], chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
        batch = np.concatenate(chunks)  # the call's windows, cut again by the rule measured
        cut = lane_chunks(batch) if rule[0] == RULES[0] else list(even_chunks(batch, LANE_WINDOWS))

        def run(chunk: np.ndarray) -> np.ndarray:
            t = time.perf_counter()
            out = fn(chunk)
            chunk_s.append(time.perf_counter() - t)
            return out

        n0, t0 = len(chunk_s), time.perf_counter()
        parts = lanes_map(run, cut)
        idle[0] += LANES * (time.perf_counter() - t0) - sum(chunk_s[n0:])
        return parts

    lanes.map = timed_map  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-lane-chunks-"))
    runs: dict[str, dict[str, list[float]]] = {r: {"wall_s": [], "cpu_s": [], "lane_idle_s": []} for r in RULES}
    windows = 0
    try:
        folder = link_folder(work / "clips", paths)
        for r in range(args.rounds):
            for name in RULES if r % 2 == 0 else RULES[::-1]:
                rule[0], idle[0] = name, 0.0
                c0, t0 = time.process_time(), time.perf_counter()
                report = run_index(RunSettings(folder, work / f"index-{r}-{name[0]}", load_encoder=lambda _c: encoder,
                                               encoder_cfg=cfg), default_stages())
                runs[name]["wall_s"].append(time.perf_counter() - t0)
                runs[name]["cpu_s"].append(time.process_time() - c0)
                runs[name]["lane_idle_s"].append(idle[0])
                windows = report.windows_embedded
                print(r, name, {k: round(v[-1], 2) for k, v in runs[name].items()}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {r: {k: statistics.median(v) for k, v in runs[r].items()} for r in RULES}
    table = [("rule", "engine in process, s", "its CPU s", "lanes idle, s")]
    table += [(r, f"{med[r]['wall_s']:.2f}", f"{med[r]['cpu_s']:.1f}", f"{med[r]['lane_idle_s']:.2f}") for r in RULES]
    pairs = [b / a for a, b in zip(runs[RULES[0]]["wall_s"], runs[RULES[1]]["wall_s"])]
    notes = [f"{windows} windows of {args.clips} clips, medians of {args.rounds} rounds, the order flipped each round;"
             " bf16 path forced; two lanes of " + str(lanes.per_lane) + " thread(s)",
             "at most 4 ÷ even, wall, per round: " + ", ".join(f"{x:.3f}" for x in pairs)]
    write_results(args.name, {"rounds": args.rounds, "runs": runs, "medians": med, "pairs": pairs}, table, notes,
                  **({"out_dir": args.out_dir} if args.out_dir else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
