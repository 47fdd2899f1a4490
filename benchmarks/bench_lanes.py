"""An indexing run's bf16 audio tower in two lanes (``encoders/clap/lanes.py``) against one OpenMP team,
alternated in one process.

The same generated clips as ``bench_indexing.py`` (240 clips = about 600 windows of 10 s), the full-size
``laion/clap-htsat-unfused`` architecture with random weights on its bf16 path (forced: the path lanes apply
to; a CPU without native bf16 measures emulation), the model loaded once. Each round runs, in turn (the order
flips every round):

- the engine in process (``run_index`` into a fresh index, as ``bench_indexing.py``'s in-process row), with the
  encoder's calls in lanes, then as the engine runs them (each call one batch over all torch threads);
- the encoder alone on the same windows decoded beforehand, in the engine's batches of 16, both ways.

Reported: the medians of wall seconds and of this process's CPU seconds (the decode workers' apart), and each
way's in-process share of its own encoder alone.

    python benchmarks/bench_lanes.py --rounds 4
"""

from __future__ import annotations

import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bf16_encoder_in_lanes, lanes_args, link_folder, windows_of, write_results  # noqa: E402

WAYS = ("lanes", "one team")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    args = lanes_args(__doc__, "lanes")

    import torch

    from diffgap_search.encoders.clap import lanes as lanes_module
    from diffgap_search.encoders.clap.lanes import LANE_WINDOWS, lanes_for
    from diffgap_search.indexing import RunSettings, default_stages, run_index

    cfg, encoder, paths = bf16_encoder_in_lanes(args.clips)
    lanes = encoder.lanes
    decoded = windows_of(paths)
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-lanes-"))
    runs: dict[str, dict[str, list[float]]] = {w: {"engine_s": [], "engine_cpu_s": [], "decode_cpu_s": [],
                                                   "alone_s": [], "alone_cpu_s": []} for w in WAYS}
    try:
        folder = link_folder(work / "clips", paths)
        for r in range(args.rounds):
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                encoder.lanes = lanes if way == "lanes" else None
                lanes_module.lanes_for = lanes_for if way == "lanes" else lambda *_: None  # run_index asks again
                c0, k0, t0 = time.process_time(), children_cpu(), time.perf_counter()
                report = run_index(RunSettings(folder, work / f"index-{r}-{way[0]}", load_encoder=lambda _c: encoder,
                                               encoder_cfg=cfg), default_stages())
                runs[way]["engine_s"].append(time.perf_counter() - t0)
                runs[way]["engine_cpu_s"].append(time.process_time() - c0)
                runs[way]["decode_cpu_s"].append(children_cpu() - k0)
                c0, t0 = time.process_time(), time.perf_counter()
                for i in range(0, len(decoded), 16):
                    encoder.embed_audio(decoded[i:i + 16])  # as embed_windows calls CLAP
                runs[way]["alone_s"].append(time.perf_counter() - t0)
                runs[way]["alone_cpu_s"].append(time.process_time() - c0)
                print(r, way, {k: round(v[-1], 2) for k, v in runs[way].items()}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {w: {k: statistics.median(v) for k, v in runs[w].items()} for w in WAYS}
    table = [("way", "engine in process, s", "its CPU s (+ decode workers)", "encoder alone, s", "its CPU s",
              "in process vs alone")]
    for w in WAYS:
        m = med[w]
        table.append((w, f"{m['engine_s']:.2f}", f"{m['engine_cpu_s']:.1f} (+ {m['decode_cpu_s']:.1f})",
                      f"{m['alone_s']:.2f}", f"{m['alone_cpu_s']:.1f}", f"{m['alone_s'] / m['engine_s']:.0%}"))
    pairs = [o / l for o, l in zip(runs["one team"]["engine_s"], runs["lanes"]["engine_s"])]
    notes = [f"{report.windows_embedded} windows of {args.clips} clips, medians of {args.rounds} rounds, the order "
             "flipped each round; bf16 path forced; torch threads " + str(torch.get_num_threads())
             + f", two lanes of {lanes.per_lane} thread(s) each, an even number of chunks of about {LANE_WINDOWS}"
             " windows",
             "engine one team ÷ lanes per round: " + ", ".join(f"{x:.3f}" for x in pairs),
             "encoder alone: the same windows decoded beforehand, batches of 16 as the engine makes them"]
    write_results(args.name, {"rounds": args.rounds, "runs": runs, "medians": med, "pairs": pairs}, table, notes,
                  **({"out_dir": args.out_dir} if args.out_dir else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
