"""How decoded windows reach the indexing process, alternated in one process: through the decode worker's memory
file (``indexing/spill.py``, today) against through its socket pair, pickled (the way before it).

The same generated clips as ``bench_indexing.py`` (240 clips = about 600 windows of 10 s), the full-size
``laion/clap-htsat-unfused`` architecture with random weights on the path ``--precision auto`` takes here, asked
for lanes as an indexing run asks, the model loaded once, the engine in process (``run_index`` into a fresh index
each time, one decode worker as on 2 cores), the order flipped every round. Reported per way: medians of wall,
of this process's CPU seconds and of the decode workers' (the children's, counted when they are reaped).

    python benchmarks/bench_spill.py --rounds 6
"""

from __future__ import annotations

import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import indexing_encoder, lanes_args, link_folder, write_results  # noqa: E402

WAYS = ("memory file", "pipe")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    args = lanes_args(__doc__, "spill")

    from diffgap_search.config import IndexingConfig
    from diffgap_search.indexing import RunSettings, default_stages, pool, run_index

    cfg, encoder, paths = indexing_encoder(args.clips)
    real_open = pool.open_spill
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-spill-"))
    runs: dict[str, dict[str, list[float]]] = {w: {"wall_s": [], "cpu_s": [], "workers_cpu_s": []} for w in WAYS}
    windows = 0
    try:
        folder = link_folder(work / "clips", paths)
        for r in range(args.rounds):
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                pool.open_spill = real_open if way == WAYS[0] else (lambda: None)  # type: ignore[assignment]
                k0, c0, t0 = _children_cpu(), time.process_time(), time.perf_counter()
                report = run_index(RunSettings(folder, work / f"index-{r}-{way[0]}", load_encoder=lambda _c: encoder,
                                               encoder_cfg=cfg, indexing_cfg=IndexingConfig(decode_workers=1)),
                                   default_stages())
                runs[way]["wall_s"].append(time.perf_counter() - t0)
                runs[way]["cpu_s"].append(time.process_time() - c0)
                runs[way]["workers_cpu_s"].append(_children_cpu() - k0)
                windows = report.windows_embedded
                print(r, way, {k: round(v[-1], 2) for k, v in runs[way].items()}, flush=True)
    finally:
        pool.open_spill = real_open  # type: ignore[assignment]
        shutil.rmtree(work, ignore_errors=True)
    med = {w: {k: statistics.median(v) for k, v in runs[w].items()} for w in WAYS}
    table = [("windows travel through", "engine in process, s", "its CPU s", "decode worker's CPU s")]
    table += [(w, f"{med[w]['wall_s']:.2f}", f"{med[w]['cpu_s']:.1f}", f"{med[w]['workers_cpu_s']:.2f}") for w in WAYS]
    pairs = [b / a for a, b in zip(runs[WAYS[0]]["wall_s"], runs[WAYS[1]]["wall_s"])]
    notes = [f"{windows} windows of {args.clips} clips, medians of {args.rounds} rounds, the order flipped each round;"
             f" audio path {encoder.audio_path}, lanes {'on' if encoder.lanes is not None else 'off'};"
             " one decode worker",
             "pipe ÷ memory file, wall, per round: " + ", ".join(f"{x:.3f}" for x in pairs)]
    write_results(args.name, {"rounds": args.rounds, "runs": runs, "medians": med, "pairs": pairs}, table, notes,
                  **({"out_dir": args.out_dir} if args.out_dir else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
