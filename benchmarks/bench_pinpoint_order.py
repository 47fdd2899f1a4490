"""The order of pinpointed hits: by their window's score (the index's) or by their narrowed seconds' score.

A 10 s window's vector is mostly what fills its 10 s: over a real background, a one-shot's recording often ranks
below other recordings' windows. ``--pinpoint`` embeds the best span of each hit shown anyway; ordering the hits
by that span's score costs nothing more. This measures both orders on ``bench_windows.py``'s reels (40 sonic-pi
one-shots per seed in 8 recordings of 40 s, over white noise or real ambiences with ``--beds``), windowed as
``dgsearch index`` does by default (hop = window) and embedded by the real aisfx model:

- each query (the one-shot's own file, or a window-long scene holding it with ``--scenes``) ranks the windows by
  the best cosine over its windows; the top ``N`` hits (``--tops``: what ``-k N`` shows: one per recording, its
  best window, or every window with ``--segments``) are narrowed as ``--pinpoint`` narrows them (``search/spans.narrow`` and ``spans.answer``, the
  rule by the query's length);
- **file@1** by the window's score (``N`` = 1: the index's order) and by the best narrowed span among the top
  ``N``, and **span@1**: that hit's narrowed seconds hold the one-shot's middle.

    python benchmarks/bench_pinpoint_order.py --seeds 0 1 2 --beds wesnoth --bed-db -40 --name pinpoint_order_choose
    python benchmarks/bench_pinpoint_order.py --seeds 3 4 5 6 7 8 --beds wesnoth --bed-db -40 --name pinpoint_order_judge

Writes ``results/NAME.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402
from _beds import BED_DB, bed_name, beds_folder, load_beds  # noqa: E402
from bench_windows import SAMPLES, build_reels, index_reels, one_shots, scene, span_scorer  # noqa: E402


def orders(encoder: Any, reels: list[np.ndarray], placed: list[Any], shots: dict[Path, np.ndarray], window_s: float,
           rate: int, tops: tuple[int, ...], scenes: bool, beds: list[np.ndarray], bed_db: float,
           by_file: bool = True) -> dict[str, Any]:
    """file@1 and span@1 per ``N`` of ``tops`` (the best narrowed span among the top N hits: one per recording,
    its best window, with ``by_file``; else windows, as ``--segments``) for one seed."""
    from diffgap_search.config import WindowConfig
    from diffgap_search.encoders.base import embed_windows, fit_window
    from diffgap_search.media.windows import window_audio
    from diffgap_search.search.spans import answer, narrow

    cfg = fit_window(WindowConfig(window_s=window_s, hop_s=window_s, sample_rate=rate), encoder)
    index, owner, spans = index_reels(encoder, reels, cfg)
    found = {n: 0 for n in tops}
    held = {n: 0 for n in tops}
    seconds = []
    for k, event in enumerate(placed):
        query = (scene(shots[event.path], window_s, rate, 10_000 + k, beds, bed_db, event.bed) if scenes
                 else shots[event.path])
        qw = window_audio(query, cfg)
        q = embed_windows(encoder, qw.samples, qw.ends - qw.starts)
        query_s = float(max(qw.ends - qw.starts))
        ranked = np.argsort(-(q @ index.T).max(axis=0), kind="stable")
        if by_file:  # one hit per recording, its best window (dgsearch query's default)
            seen: set[int] = set()
            ranked = np.array([j for j in ranked if not (owner[j] in seen or seen.add(owner[j]))])
        ranked = ranked[: max(tops)]
        t0 = time.perf_counter()
        narrowed = []
        for j in ranked:
            reel = reels[owner[j]]
            score = span_scorer(encoder, reel, q, rate)
            spot = answer(narrow(spans[j], len(reel) / rate, 0.5, score), query_s, window_s)
            narrowed.append((int(j), spot))
        seconds.append((time.perf_counter() - t0) / len(ranked))
        for n in tops:  # the first of the top n by the narrowed score (n = 1: the index's first); ties: the index's
            j, spot = max(narrowed[:n], key=lambda t: t[1].score if t[1] is not None else -1.0)
            lo, hi = (spot.start_s, spot.end_s) if spot is not None else spans[j]
            found[n] += owner[j] == event.reel
            held[n] += owner[j] == event.reel and lo <= event.middle_s <= hi
    total = len(placed)
    return {"file_at_1": {n: 100 * found[n] / total for n in tops}, "span_at_1": {n: 100 * held[n] / total for n in tops},
            "ms_per_hit": 1000 * statistics.median(seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tops", type=int, nargs="+", default=[1, 3, 5, 10], help="hits shown (-k) whose order is"
                        " measured")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--segments", action="store_true", help="hits are windows (--segments), not one per file")
    parser.add_argument("--scenes", action="store_true", help="query with a window-long scene holding the one-shot")
    parser.add_argument("--beds", type=Path, default=None, help="a folder of real recordings, or 'wesnoth'")
    parser.add_argument("--bed-db", type=float, default=-40.0)
    parser.add_argument("--name", default="pinpoint_order")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    if not SAMPLES.is_dir():
        print(f"needs the sonic-pi-samples package ({SAMPLES})", file=sys.stderr)
        return 1
    from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder

    encoder = load_aisfx_encoder("cpu", batch_size=16)
    rate = int(encoder.sample_rate)
    shots = one_shots(rate)
    beds = load_beds(beds_folder(args.beds), rate) if args.beds else []
    bed_db = args.bed_db if beds else BED_DB
    tops = tuple(sorted(args.tops))
    per_seed = []
    for seed in args.seeds:
        reels, placed = build_reels(shots, 8, 5, 40.0, rate, seed, beds, bed_db)
        per_seed.append(orders(encoder, reels, placed, dict(shots), args.window, rate, tops, args.scenes, beds, bed_db,
                               not args.segments))

    def ms(values: list[float]) -> str:
        return f"{statistics.mean(values):.1f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.1f}"

    table = [("order of the hits", "file@1", "span@1 (narrowed)")]
    for n in tops:
        how = "by the window's score (the index's)" if n == 1 else f"by the narrowed score among the top {n}"
        table.append((how, ms([s["file_at_1"][n] for s in per_seed]), ms([s["span_at_1"][n] for s in per_seed])))
    background = (f"{len(beds)} real recordings ({bed_name(args.beds)}, looped, {bed_db:g} dBFS RMS)" if beds
                  else f"{BED_DB:g} dBFS white noise")
    notes = [f"40 one-shots per seed (sonic-pi samples <= 2.5 s) in 8 recordings of 40 s over {background}; "
             f"{args.window:g} s windows, hop = window; mean ± sd over seeds {', '.join(map(str, args.seeds))}",
             ("hits: windows (--segments)" if args.segments else "hits: one per recording, its best window (the "
              "default grouping)"),
             "queries: " + ("a window-long scene per one-shot over another recording" if args.scenes
                            else "each one-shot's own file"),
             f"narrowing: {statistics.median([s['ms_per_hit'] for s in per_seed]):.0f} ms per hit (median of the "
             "seeds' medians; aisfx's torch network, this process)"]
    payload = {"setup": {"seeds": args.seeds, "tops": list(tops), "window_s": args.window, "scenes": args.scenes,
                         "segments": args.segments,
                         "beds": str(args.beds) if args.beds else None, "bed_dbfs": bed_db},
               "per_seed": per_seed}
    write_results(args.name, payload, table, notes, out_dir=args.out_dir or RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
