"""Window length vs retrieval: how ``--window`` changes what a query by example finds and where it says it is.

A sound designer looks for a one-shot inside long recordings. Built from real CC0 recordings (sonic-pi's
samples, ``/usr/share/sonic-pi/samples``) with the real aisfx model (its weights ship in its wheel):

- **reels**: ``--reels`` recordings of ``--reel-s`` seconds, each a seeded -60 dBFS white-noise bed holding
  ``--events`` one-shots (real samples of at most 2.5 s, each used once) at seeded, non-overlapping offsets;
- the reels are windowed as ``dgsearch index --window W --hop W/2`` does (``media/windows.window_audio`` with
  ``encoders.base.fit_window``) and embedded; a query is the one-shot's own file, windowed the same way, and an
  indexed window scores its best cosine over the query's windows (as ``search/scoring.candidates`` does);
- per window length: **file@1** (the top window is in the reel that holds the one-shot), **span@1** (the top
  window's seconds contain the one-shot's middle), and the median distance between the top window's middle
  and the one-shot's middle (seconds, over the file@1 hits).

Only aisfx, whose input is any length, has real weights here: CLAP's windows shorter than 10 s are repeat-padded
to 10 s (``WindowConfig.embed_samples``), and with random weights their retrieval says nothing.

    python benchmarks/bench_windows.py [--windows 10 5 2 1] [--reels 8] [--events 5] [--seeds 0 1 2]

Writes ``results/bench_windows.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, write_results  # noqa: E402

SAMPLES = Path("/usr/share/sonic-pi/samples")
BED_DB = -60.0
MAX_EVENT_S = 2.5


@dataclass(frozen=True)
class Event:
    """One one-shot placed in a reel: its source file, reel, onset and length in seconds."""

    path: Path
    reel: int
    onset_s: float
    length_s: float

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
                seed: int) -> tuple[list[np.ndarray], list[Event]]:
    """``reels`` ``(reel_s * rate,) float32`` recordings and the events placed in them (each shot used once)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(shots), size=reels * events, replace=False)
    slot = reel_s / events  # one event per slot, at a seeded offset inside it: never overlapping
    out, placed = [], []
    for r in range(reels):
        bed = (10 ** (BED_DB / 20) * rng.standard_normal(int(reel_s * rate))).astype(np.float32)
        for e in range(events):
            path, audio = shots[int(chosen[r * events + e])]
            length_s = len(audio) / rate
            onset_s = e * slot + float(rng.uniform(0, slot - length_s))
            start = int(round(onset_s * rate))
            bed[start : start + len(audio)] += audio
            placed.append(Event(path, r, start / rate, length_s))
        out.append(bed)
    return out, placed


def run(encoder: object, reels: list[np.ndarray], placed: list[Event], shots: dict[Path, np.ndarray],
        window_s: float, rate: int) -> dict[str, float]:
    """The three figures (see the module docstring) for ``--window window_s --hop window_s / 2``."""
    from diffgap_search.config import WindowConfig
    from diffgap_search.encoders.base import fit_window
    from diffgap_search.media.windows import window_audio

    cfg = fit_window(WindowConfig(window_s=window_s, hop_s=window_s / 2, sample_rate=rate), encoder)
    vecs, owner, spans = [], [], []
    for r, reel in enumerate(reels):
        w = window_audio(reel, cfg)
        vecs.append(encoder.embed_audio(w.samples))  # type: ignore[attr-defined]
        owner += [r] * len(w)
        spans += list(zip(w.starts, w.ends))
    index = np.concatenate(vecs)
    file_hits, span_hits, errors = 0, 0, []
    for event in placed:
        q = encoder.embed_audio(window_audio(shots[event.path], cfg).samples)  # type: ignore[attr-defined]
        best = int(np.argmax((q @ index.T).max(axis=0)))
        start, end = spans[best]
        if owner[best] == event.reel:
            file_hits += 1
            span_hits += int(start <= event.middle_s <= end)
            errors.append(abs((start + end) / 2 - event.middle_s))
    n = len(placed)
    return {"window_s": window_s, "windows": int(index.shape[0]),
            "file_at_1": 100 * file_hits / n, "span_at_1": 100 * span_hits / n,
            "median_middle_error_s": statistics.median(errors) if errors else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=float, nargs="+", default=[10.0, 5.0, 2.0, 1.0])
    parser.add_argument("--reels", type=int, default=8)
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--reel-s", type=float, default=40.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one set of reels per seed")
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
    per_seed = []
    for seed in args.seeds:
        reels, placed = build_reels(shots, args.reels, args.events, args.reel_s, rate, seed)
        per_seed.append([run(encoder, reels, placed, dict(shots), w, rate) for w in args.windows])
    keys = ("file_at_1", "span_at_1", "median_middle_error_s")
    rows = [{"window_s": w, "windows": per_seed[0][i]["windows"],
             **{k: [seed_rows[i][k] for seed_rows in per_seed] for k in keys}}
            for i, w in enumerate(args.windows)]

    def ms(values: list[float], digits: int) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

    table = [("--window (hop W/2)", "windows per seed", "file@1", "span@1", "median middle error (s)")]
    table += [(f"{r['window_s']:g} s", str(r["windows"]), ms(r["file_at_1"], 1), ms(r["span_at_1"], 1),
               ms(r["median_middle_error_s"], 2)) for r in rows]
    setup = {"model": "aisfx", "reels": args.reels, "events_per_reel": args.events, "reel_s": args.reel_s,
             "one_shots_available": len(shots), "seeds": args.seeds, "bed_dbfs": BED_DB}
    notes = [f"{args.reels * args.events} one-shots per seed (sonic-pi samples <= {MAX_EVENT_S} s, of "
             f"{len(shots)}) in {args.reels} reels of {args.reel_s:g} s over {BED_DB:g} dBFS noise; mean ± sd "
             f"over seeds {', '.join(map(str, args.seeds))}"]
    write_results("bench_windows", {"setup": setup, "rows": rows}, table, notes,
                  out_dir=args.out_dir or RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
