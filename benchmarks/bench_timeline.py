"""``--timeline`` against what a competent user writes without it: one query per window of the file.

Spotting a long file (a video's soundtrack, a broadcast) window by window without ``--timeline`` means a query
per window: ``Searcher.search(Query(audio=FILE, start_s=S, end_s=S + W))`` in one process (the loop a user
writes against the library; the CLI equivalent also pays a process start per window). Each such query decodes
the file from its start and embeds its window; ``search_timeline`` decodes and embeds the file once and searches
each window's vector. Both must give the same lists (asserted: ids, and scores to 1e-5).

The library is the real aisfx index of CC0 one-shots in recordings (``tests/oneshot_reels.py``, the real aisfx
weights); the query file is ``--minutes`` of quiet noise holding a one-shot every 7 s (seeded, the same
sonic-pi samples), as FLAC. In-process, warm (the model loaded by an untimed query first), ``--repeats``
alternated, medians.

    python benchmarks/bench_timeline.py [--minutes 1 5] [--repeats 3]

Writes ``results/timeline.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_flags, write_results  # noqa: E402


def spotting_file(path: Path, minutes: float) -> Path:
    """``minutes`` of seeded quiet noise with a sonic-pi one-shot every 7 s (``oneshot_reels.write_reel``)."""
    from oneshot_reels import write_reel

    stems = ["tabla_ghe4", "misc_crow", "drum_tom_mid_hard", "elec_bong", "bd_boom", "perc_bell", "elec_ping"]
    seconds = minutes * 60
    events = [(stems[i % len(stems)], 1.0 + 7.0 * i) for i in range(int((seconds - 3) // 7))]
    return write_reel(path, events, seconds, seed=11)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from oneshot_reels import indexed_reels

    from diffgap_search.config import SearchConfig, SearchMode
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.timeline import search_timeline

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-timeline-") as tmp:
        _, ix = indexed_reels(Path(tmp))
        cfg = SearchConfig(top_k=3, mode=SearchMode.SEMANTIC)
        with Searcher(ix, load_encoder) as searcher:
            for minutes in args.minutes:
                clip = spotting_file(Path(tmp) / f"spot-{minutes:g}.flac", minutes)
                # warm (model loaded, file in the page cache) and the windows' seconds the loop asks for: untimed
                spans = [(w.start_s, w.end_s) for w in search_timeline(searcher, Query(audio=clip), cfg).windows]
                timed: dict[str, list[float]] = {"timeline": [], "loop": []}
                lists: dict[str, list[list[tuple[int, float]]]] = {}
                for repeat in range(args.repeats):
                    for how in (("timeline", "loop") if repeat % 2 == 0 else ("loop", "timeline")):
                        t0 = time.perf_counter()
                        if how == "timeline":
                            found = [[(h.segment_id, h.score) for h in w.hits]
                                     for w in search_timeline(searcher, Query(audio=clip), cfg).windows]
                        else:
                            found = [[(h.segment_id, h.score) for h in searcher.search(
                                Query(audio=clip, start_s=s, end_s=e), cfg).hits] for s, e in spans]
                        timed[how].append(time.perf_counter() - t0)
                        lists[how] = found
                a, b = lists["timeline"], lists["loop"]
                assert [[i for i, _ in w] for w in a] == [[i for i, _ in w] for w in b]
                assert all(abs(x[1] - y[1]) < 1e-5 for u, v in zip(a, b) for x, y in zip(u, v))
                row = {"minutes": minutes, "windows": len(spans),
                       "timeline_s": statistics.median(timed["timeline"]), "loop_s": statistics.median(timed["loop"])}
                rows.append(row)
                print(f"{minutes:g} min, {len(spans)} windows: timeline {row['timeline_s']:.2f} s, loop"
                      f" {row['loop_s']:.2f} s", file=sys.stderr)
    table = [("query file", "windows", "--timeline (s)", "a query per window (s)", "ratio")]
    table += [(f"{r['minutes']:g} min", str(r["windows"]), f"{r['timeline_s']:.2f}", f"{r['loop_s']:.2f}",
               f"{r['loop_s'] / r['timeline_s']:.1f}x") for r in rows]
    notes = [f"aisfx (real weights), in process, warm, top 3 per window, medians of {args.repeats} alternated runs; "
             f"CPU flags: {', '.join(cpu_flags())}; the same lists both ways (ids; scores to 1e-5)"]
    write_results("timeline", {"rows": rows, "cpu_flags": cpu_flags()}, table, notes,
                  out_dir=args.out_dir or ROOT / "benchmarks" / "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
