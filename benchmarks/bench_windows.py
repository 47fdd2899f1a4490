"""Window length vs retrieval: how ``--window`` changes what a query by example finds and where it says it is.

A sound designer looks for a one-shot inside long recordings. Built from real CC0 recordings (sonic-pi's
samples, ``/usr/share/sonic-pi/samples``) with the real aisfx model (its weights ship in its wheel):

- **reels**: ``--reels`` recordings of ``--reel-s`` seconds, each a seeded -60 dBFS white-noise bed holding
  ``--events`` one-shots (real samples of at most 2.5 s, each used once) at seeded, non-overlapping offsets;
- the reels are windowed as ``dgsearch index --window W --hop W/2`` does (``media/windows.window_audio`` with
  ``encoders.base.fit_window``) and embedded (``encoders.base.embed_windows``: a short window from its own
  samples, since 2026-12-07; before, the repeat-padded window); a query is the one-shot's own file, windowed
  and embedded the same way, and an indexed window scores its best cosine over the query's windows (as
  ``search/scoring.candidates`` does);
- per window length: **file@1** (the top window is in the reel that holds the one-shot), **span@1** (the top
  window's seconds contain the one-shot's middle), and the median distance between the top window's middle
  and the one-shot's middle (seconds, over the file@1 hits).

Only aisfx, whose input is any length, has real weights here: CLAP's windows shorter than 10 s are repeat-padded
to 10 s (``WindowConfig.embed_samples``), and with random weights their retrieval says nothing.

    python benchmarks/bench_windows.py [--windows 10 5 2 1] [--reels 8] [--events 5] [--seeds 0 1 2]
    python benchmarks/bench_windows.py --windows 10 5 --hop-share 1 --pinpoint-mins 0.5 1 2 \
        --seeds 0 1 2 --name pinpoint_choose      # choosing --pinpoint's rule and finest span
    ... --seeds 3 4 5 --name pinpoint_judge       # judging the choice on reels nobody tuned on
    python benchmarks/bench_windows.py --windows 10 5 2 1 --beds wesnoth --bed-db -40 --name windows_ambient
    python benchmarks/bench_windows.py --windows 10 --hop-share 1 --pinpoint-mins 0.5 --scenes --beds wesnoth \
        --bed-db -40 --seeds 3 4 5 6 7 8 --name pinpoint_ambient_judge   # spotting, judged over real ambiences

``--scenes``: each query is a window-long scene holding the one-shot at a seeded offset over a noise bed of its own
(one window of a video being spotted with ``--timeline``), not the one-shot's own file; ``--scene-s`` makes it
shorter or longer than the window (where a query's length changes the best rule).

``--beds DIR``: the beds are real recordings instead of white noise (every ``.ogg``/``.flac``/``.wav`` under DIR,
looped to length, at ``--bed-db`` dBFS RMS): each reel over one of them and each scene over another (a video's
own background), both chosen by the seed. ``--beds wesnoth`` takes Wesnoth's eight ambient loops (birds,
campfire, morning, night, a ship, war drums; Debian's ``wesnoth-1.16-data``, fetched once into the real-gap
cache as ``real_gap/packages.fetch`` does): the second judge of the rules, since white noise flatters a
whole-window match.

``--pinpoint-mins``: each file@1 hit's top window is also narrowed as ``dgsearch query --pinpoint`` does
(``search/spans.py``), with the span rules of ``pinpointed``: span@1, the middle's error and the IoU of the
narrowed span with the one-shot's own seconds, and the milliseconds per hit.

Writes ``results/NAME.json`` and ``.md`` (``--name``, default ``bench_windows``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _beds import BED_DB, bed_name, beds_folder, load_beds, make_bed  # noqa: E402
from _common import RESULTS, ROOT, write_results  # noqa: E402

SAMPLES = Path("/usr/share/sonic-pi/samples")
MAX_EVENT_S = 2.5
TOLERANCES = (0.0, 0.02, 0.05)  # pinpoint: go one level finer while its best score drops by at most this


@dataclass(frozen=True)
class Event:
    """One one-shot placed in a reel: its source file, reel, onset and length in seconds."""

    path: Path
    reel: int
    onset_s: float
    length_s: float
    bed: int = -1  # which of --beds the reel lies over (-1: white noise)

    @property
    def middle_s(self) -> float:
        return self.onset_s + self.length_s / 2


def one_shots(rate: int) -> list[tuple[Path, np.ndarray]]:
    """The sonic-pi samples of at most ``MAX_EVENT_S`` seconds, by name, decoded at ``rate``."""
    from diffgap_search.media.audio import load_audio

    out = []
    for path in sorted(SAMPLES.glob("*.flac")):
        audio = load_audio(path, rate)
        if 0 < len(audio) <= MAX_EVENT_S * rate and np.abs(audio).max() > 1e-3:
            out.append((path, audio))
    return out


def build_reels(shots: list[tuple[Path, np.ndarray]], reels: int, events: int, reel_s: float, rate: int,
                seed: int, beds: list[np.ndarray] = (), db: float = BED_DB,  # type: ignore[assignment]
                ) -> tuple[list[np.ndarray], list[Event]]:
    """``reels`` ``(reel_s * rate,) float32`` recordings and the events placed in them (each shot used once), over
    white noise or ``beds`` (:func:`make_bed`)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(shots), size=reels * events, replace=False)
    slot = reel_s / events  # one event per slot, at a seeded offset inside it: never overlapping
    out, placed = [], []
    for r in range(reels):
        bed, which = make_bed(int(reel_s * rate), rng, list(beds), db)
        for e in range(events):
            path, audio = shots[int(chosen[r * events + e])]
            length_s = len(audio) / rate
            onset_s = e * slot + float(rng.uniform(0, slot - length_s))
            start = int(round(onset_s * rate))
            bed[start : start + len(audio)] += audio
            placed.append(Event(path, r, start / rate, length_s, which))
        out.append(bed)
    return out, placed


def scene(shot: np.ndarray, scene_s: float, rate: int, seed: int, beds: list[np.ndarray] = (),  # type: ignore[assignment]
          db: float = BED_DB, avoid: int = -1) -> np.ndarray:
    """``(scene_s * rate,) float32``: a query holding ``shot`` at a seeded offset over a bed of its own (another
    recording's: the reel's bed, ``avoid``, is not reused; :func:`make_bed`), as one window of a video being
    spotted."""
    rng = np.random.default_rng(seed)
    bed, _ = make_bed(int(scene_s * rate), rng, list(beds), db, avoid)
    start = int(rng.integers(0, max(1, len(bed) - len(shot))))
    bed[start : start + len(shot)] += shot[: len(bed) - start]
    return bed


def run(encoder: object, reels: list[np.ndarray], placed: list[Event], shots: dict[Path, np.ndarray],
        window_s: float, rate: int, pinpoint_mins: tuple[float, ...] = (), hop_share: float = 0.5,
        scenes: bool = False, scene_s: float | None = None, beds: list[np.ndarray] = (),  # type: ignore[assignment]
        bed_db: float = BED_DB) -> dict[str, Any]:
    """The three figures (see the module docstring) for ``--window window_s --hop window_s / 2``; ``scenes``: each
    query is a scene of ``scene_s`` seconds (default the window) holding the one-shot (:func:`scene`, over one of
    ``beds`` other than its reel's), not the one-shot's own file."""
    from diffgap_search.config import WindowConfig
    from diffgap_search.encoders.base import embed_windows, fit_window
    from diffgap_search.media.windows import window_audio

    cfg = fit_window(WindowConfig(window_s=window_s, hop_s=window_s * hop_share, sample_rate=rate), encoder)
    index, owner, spans = index_reels(encoder, reels, cfg)
    file_hits, span_hits, errors, overlaps = 0, 0, [], []
    narrowed: dict[str, Placing] = {}
    for n, event in enumerate(placed):
        query = (scene(shots[event.path], scene_s or window_s, rate, 10_000 + n, beds, bed_db, event.bed) if scenes
                 else shots[event.path])
        qw = window_audio(query, cfg)
        q = embed_windows(encoder, qw.samples, qw.ends - qw.starts)  # type: ignore[arg-type]: as a query embeds
        best = int(np.argmax((q @ index.T).max(axis=0)))
        start, end = spans[best]
        if owner[best] == event.reel:
            file_hits += 1
            span_hits += int(start <= event.middle_s <= end)
            errors.append(abs((start + end) / 2 - event.middle_s))
            overlaps.append(iou((start, end), event))
            for min_s in pinpoint_mins:
                pinpointed(encoder, reels[event.reel], q, (start, end), event, min_s, rate, narrowed,
                           (query, index[best]) if scenes else None)
    n = len(placed)
    out: dict[str, Any] = {
        "window_s": window_s, "windows": int(index.shape[0]), "file_at_1": 100 * file_hits / n,
        "span_at_1": 100 * span_hits / n, "median_middle_error_s": statistics.median(errors) if errors else float("nan"),
        "median_iou": statistics.median(overlaps) if overlaps else float("nan")}
    out["pinpoint"] = {key: p.figures(n) for key, p in narrowed.items()}
    return out


def index_reels(encoder: object, reels: list[np.ndarray],
                cfg: Any) -> tuple[np.ndarray, list[int], list[tuple[float, float]]]:
    """The reels windowed by ``cfg`` (a ``WindowConfig``) and embedded as ``dgsearch index`` does: ``((W, D)
    float32 vectors, each window's reel, each window's seconds)``."""
    from diffgap_search.encoders.base import embed_windows
    from diffgap_search.media.windows import window_audio

    vecs, owner, spans = [], [], []
    for r, reel in enumerate(reels):
        w = window_audio(reel, cfg)
        vecs.append(embed_windows(encoder, w.samples, w.ends - w.starts))  # type: ignore[arg-type]
        owner += [r] * len(w)
        spans += list(zip(w.starts, w.ends))
    return np.concatenate(vecs), owner, spans


def span_scorer(encoder: object, samples: np.ndarray, q: np.ndarray,
                rate: int) -> Callable[[list[tuple[float, float]]], np.ndarray]:
    """Spans of ``samples`` (a reel from 0 s) -> ``(n,)`` scores: each span embedded as the product embeds it
    (``search/spans.padded``, ``encoders.base.embed_windows``) and scored as a window: its best cosine over the query's vectors ``q`` ``(Q, D)``."""
    from diffgap_search.encoders.base import embed_windows
    from diffgap_search.search.spans import cut_spans, padded

    def score(spans: list[tuple[float, float]]) -> np.ndarray:
        windows, durations = padded(cut_spans(samples, 0.0, rate, spans), rate, 0)
        return (q @ embed_windows(encoder, windows, durations).T).max(axis=0)  # type: ignore[arg-type]

    return score


@dataclass
class Placing:
    """One pinpoint rule's tallies over the file@1 hits: span contains the middle, middle errors, IoUs, seconds."""

    contains: int = 0
    errors: list[float] = field(default_factory=list)
    overlaps: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)

    def add(self, span: tuple[float, float], event: Event, seconds: float, embedded: int) -> None:
        self.contains += int(span[0] <= event.middle_s <= span[1])
        self.errors.append(abs((span[0] + span[1]) / 2 - event.middle_s))
        self.overlaps.append(iou(span, event))
        self.seconds.append(seconds)
        self.spans.append(embedded)

    def figures(self, n: int) -> dict[str, float]:
        return {"span_at_1": 100 * self.contains / n, "median_middle_error_s": statistics.median(self.errors),
                "median_iou": statistics.median(self.overlaps), "ms_per_hit": 1000 * statistics.median(self.seconds),
                "spans_per_hit": statistics.mean(self.spans)}


def iou(span: tuple[float, float], event: Event) -> float:
    """Intersection over union of ``span`` and the event's seconds."""
    inter = max(0.0, min(span[1], event.onset_s + event.length_s) - max(span[0], event.onset_s))
    union = (span[1] - span[0]) + event.length_s - inter
    return inter / union if union > 0 else 0.0


def pinpointed(encoder: object, reel: np.ndarray, q: np.ndarray, window: tuple[float, float], event: Event,
               min_s: float, rate: int, out: dict[str, Placing],
               scene_and_hit: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Narrow the top window (``search/spans.narrow``, each span scored as the query scores windows: its best
    cosine over the query's windows) and tally each rule of choosing a level's span. ``scene_and_hit``: a scene
    query's samples and the top window's vector, for the two-sided rule (an experiment, not served): the scene
    narrowed first to its part that best matches the hit's window (best level, the whole scene not a candidate),
    then the hit's window narrowed with that part as the query."""
    from diffgap_search.search.spans import Spot, chosen, cut_spans, descended, narrow, padded

    embedded = 0
    score_reel = span_scorer(encoder, reel, q, rate)

    def score(spans: list[tuple[float, float]]) -> np.ndarray:
        nonlocal embedded
        embedded += len(spans)
        return score_reel(spans)

    t0 = time.perf_counter()
    spots = narrow(window, len(reel) / rate, min_s, score)
    seconds, served = time.perf_counter() - t0, embedded
    if not spots:
        return
    whole = Spot(window[0], window[1], float(score([window])[0]))  # every window a candidate: measured, not served
    rules = {"finest": spots[-1], "best": chosen(spots), "best+window": chosen([whole, *spots])}
    for tol in TOLERANCES:
        rules[f"descend-{tol:g}"] = descended(spots, tol)  # type: ignore[assignment]
    if scene_and_hit is not None:
        samples, hit = scene_and_hit

        def score_scene(spans: list[tuple[float, float]]) -> np.ndarray:
            windows, durations = padded(cut_spans(samples, 0.0, rate, spans), rate, 0)
            return encoder.embed_audio(windows, durations) @ hit  # type: ignore[attr-defined]

        part = chosen(narrow((0.0, len(samples) / rate), len(samples) / rate, min_s, score_scene)[1:])
        if part is not None:
            cut, durations = padded(cut_spans(samples, 0.0, rate, [(part.start_s, part.end_s)]), rate, 0)
            q_part = encoder.embed_audio(cut, durations)  # type: ignore[attr-defined]
            score_part = span_scorer(encoder, reel, q_part, rate)
            rules["two-sided"] = chosen(narrow(window, len(reel) / rate, min_s, score_part)) or rules["best"]
    for rule, spot in rules.items():
        out.setdefault(f"{min_s:g}/{rule}", Placing()).add((spot.start_s, spot.end_s), event, seconds, served)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=float, nargs="+", default=[10.0, 5.0, 2.0, 1.0])
    parser.add_argument("--hop-share", type=float, default=0.5, help="the index's hop as a share of the window")
    parser.add_argument("--pinpoint-mins", type=float, nargs="*", default=[],
                        help="also narrow each top window (--pinpoint) down to spans of these seconds")
    parser.add_argument("--reels", type=int, default=8)
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--reel-s", type=float, default=40.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one set of reels per seed")
    parser.add_argument("--scenes", action="store_true",
                        help="query with a window-long scene holding the one-shot (a window of a video being spotted,"
                             " --timeline) instead of the one-shot's own file")
    parser.add_argument("--scene-s", type=float, default=None, help="with --scenes: the scene's seconds (default the"
                        " window)")
    parser.add_argument("--beds", type=Path, default=None, help="a folder of real recordings to lay the reels and"
                        " scenes over instead of white noise, or 'wesnoth' for Wesnoth's ambient loops")
    parser.add_argument("--bed-db", type=float, default=-30.0, help="with --beds: their level, dBFS RMS")
    parser.add_argument("--name", default="bench_windows", help="the results' file name")
    parser.add_argument("--out-dir", type=Path, default=None, help="where results go (default benchmarks/results)")
    args = parser.parse_args()
    if not SAMPLES.is_dir():
        print(f"needs the sonic-pi-samples package ({SAMPLES})", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT))
    from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder

    encoder = load_aisfx_encoder("cpu", batch_size=16)
    rate = int(encoder.sample_rate)
    shots = one_shots(rate)
    beds = load_beds(beds_folder(args.beds), rate) if args.beds else []
    if args.beds and not beds:
        print(f"no recordings under {args.beds}", file=sys.stderr)
        return 1
    bed_db = args.bed_db if beds else BED_DB
    per_seed = []
    for seed in args.seeds:
        reels, placed = build_reels(shots, args.reels, args.events, args.reel_s, rate, seed, beds, bed_db)
        per_seed.append([run(encoder, reels, placed, dict(shots), w, rate, tuple(args.pinpoint_mins), args.hop_share,
                             args.scenes, args.scene_s, beds, bed_db) for w in args.windows])
    keys = ("file_at_1", "span_at_1", "median_middle_error_s", "median_iou")
    rows = [{"window_s": w, "windows": per_seed[0][i]["windows"],
             **{k: [seed_rows[i][k] for seed_rows in per_seed] for k in keys},
             "pinpoint": {rule: {k: [seed_rows[i]["pinpoint"][rule][k] for seed_rows in per_seed]
                                 for k in per_seed[0][i]["pinpoint"][rule]}
                          for rule in per_seed[0][i]["pinpoint"]}}
            for i, w in enumerate(args.windows)]

    def ms(values: list[float], digits: int) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

    hop = "W/2" if args.hop_share == 0.5 else f"{args.hop_share:g} W"
    table = [(f"--window (hop {hop})", "windows per seed", "file@1", "span@1", "median middle error (s)",
              "median IoU", "ms per hit")]
    for r in rows:
        table.append((f"{r['window_s']:g} s", str(r["windows"]), ms(r["file_at_1"], 1), ms(r["span_at_1"], 1),
                      ms(r["median_middle_error_s"], 2), ms(r["median_iou"], 2), "-"))
        for rule, f in r["pinpoint"].items():
            min_s, how = rule.split("/")
            table.append((f"{r['window_s']:g} s, pinpoint to {min_s} s, {how}", f"{statistics.mean(f['spans_per_hit']):.1f} spans",
                          "", ms(f["span_at_1"], 1), ms(f["median_middle_error_s"], 2), ms(f["median_iou"], 2),
                          f"{statistics.mean(f['ms_per_hit']):.0f}"))
    setup = {"model": "aisfx", "reels": args.reels, "events_per_reel": args.events, "reel_s": args.reel_s,
             "one_shots_available": len(shots), "seeds": args.seeds, "bed_dbfs": BED_DB, "hop_share": args.hop_share,
             "pinpoint_mins": args.pinpoint_mins, "scenes": args.scenes,
             "scene_s": args.scene_s, "beds": str(args.beds) if args.beds else None, "bed_count": len(beds),
             "bed_dbfs_rms": bed_db if beds else None}
    notes = [f"{args.reels * args.events} one-shots per seed (sonic-pi samples <= {MAX_EVENT_S} s, of "
             f"{len(shots)}) in {args.reels} reels of {args.reel_s:g} s over "
             + (f"{len(beds)} real recordings ({bed_name(args.beds)}, looped, {bed_db:g} dBFS RMS)" if beds
                else f"{BED_DB:g} dBFS noise") + "; mean ± sd "
             f"over seeds {', '.join(map(str, args.seeds))}",
             "queries: " + (f"a {args.scene_s or 'window'}{' s' if args.scene_s else '-long'} scene per one-shot (the"
                            " one-shot at a seeded offset over a bed of its own: a window of a video being spotted)"
                            if args.scenes else "each one-shot's own file"),
             "pinpoint rows narrow the file@1 hits' top window (search/spans.narrow, the model's own embedding of "
             "each span); rules: finest = the last level's best span, best = the best-scoring span over the levels "
             "(what --pinpoint serves a query shorter than half a window), best+window = over the window itself too "
             "(as for a one-shot file's window; not served for recordings), descend-T = go one level finer while its "
             "best score drops by at most T (descend-0.02: what --pinpoint serves a query at least half a window "
             "long, since 2026-12-07); "
             "span@1 counts over all one-shots, the error and IoU over the file@1 hits; ms per hit: median, "
             "this process's aisfx torch network"]
    write_results(args.name, {"setup": setup, "rows": rows}, table, notes, out_dir=args.out_dir or RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
