"""``--model aisfx``: embedding speed on CPU and nearest-neighbour agreement on real recordings.

Speed: windows per second for 10 s windows at 44.1 kHz in batches of 16 (median of ``--repeats``
batches after a warm-up), the spectrogram's share, and the RSS growth of one batch; also the speed of
aisfx's own scheme (7 blocks of 100 frames at a hop of 50 per 10 s window), for comparison.

Agreement: the 130 CC0 sonic-pi samples (``tests/real_sounds.py``; 126 of them have a kind with another
member and serve as queries), leave-one-out precision@1 and @5 of the nearest files' kinds
(``tests/neighbour_agreement.py``), in five settings:

- ``index``: every file windowed as the index does (10 s, short files repeat-padded);
- ``event``: every file once (its first 10 s) at a seeded offset in 10 s of -60 dBFS noise;
- ``event->index``: the ``event`` windows as queries against the ``index`` windows (a short sound
  searched in longer recordings);
- ``-20 dB->index``, ``-40 dB->index``: the ``index`` windows made 20 or 40 dB quieter, as queries
  against the ``index`` windows (a query recorded at another level); also the share of queries whose
  own indexed copy comes first ("own file first");

for the encoder as shipped (per-window peak normalisation, one pass over the whole window), the same
without the peak normalisation, aisfx's own blocks (100 frames, hop 50) pooled by mean or max, and the
MFCC baseline (20 MFCCs, mean and std, standardised, cosine). Per-kind figures are for ``index``.

    python benchmarks/bench_aisfx.py                    # about 5 min on 2 cores
    python benchmarks/bench_aisfx.py --repeats 3 --device cpu
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, bench_device, write_results  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from neighbour_agreement import (  # noqa: E402
    Agreement,
    embed_files,
    file_similarity,
    file_windows,
    mfcc_files,
    neighbour_agreement,
)
from real_sounds import available_real_sounds, kind_counts  # noqa: E402

RATE = 44_100
WINDOW = 10 * RATE
BLOCK, BLOCK_HOP = 100, 50  # aisfx inference.EMB_BLOCK_LENGTH and emb_hop_size = 0.5
NOISE_DBFS = -60.0
QUIET_DB = (-20, -40)  # query gains for the level-robustness settings
SHIPPED = "aisfx as shipped (whole window, peak-normalised)"
MFCC = "MFCC baseline"
Embed = Callable[[np.ndarray], np.ndarray]


def aisfx_blocks(encoder: Any, windows: np.ndarray) -> np.ndarray:
    """``(N, S)`` -> ``(N, B, 512) float32``: the network on aisfx's own blocks (``preprocessing.blocking``
    with ``drop_partial_block=True``: every whole 100-frame block on a 50-frame grid)."""
    import torch

    with torch.inference_mode():
        spec = encoder.model_input(windows)
        starts = list(range(0, int(spec.shape[1]) - BLOCK + 1, BLOCK_HOP))
        blocks = torch.stack([spec[:, s : s + BLOCK] for s in starts], dim=1)
        flat = blocks.reshape(-1, BLOCK, spec.shape[2])
        out = torch.cat([encoder.net(part) for part in flat.split(4 * len(starts))])  # 4 windows a pass
    return out.reshape(len(windows), len(starts), -1).numpy()


def pooled(encoder: Any, how: str) -> Embed:
    """An embed function pooling aisfx's block vectors by ``mean`` or ``max``, then L2-normalising."""

    def embed(windows: np.ndarray) -> np.ndarray:
        blocks = aisfx_blocks(encoder, windows)
        vectors = blocks.mean(axis=1) if how == "mean" else blocks.max(axis=1)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    return embed


def unnormalised(encoder: Any) -> Embed:
    """The shipped whole-window pass without the per-window peak normalisation (Essentia's path as is)."""
    import torch

    def embed(windows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            vectors = encoder.net(encoder.model_input(windows, normalise_peaks=False))
        return torch.nn.functional.normalize(vectors, dim=1).numpy()

    return embed


def event_windows(paths: list[Path], seed: int = 0) -> list[np.ndarray]:
    """Each file's first 10 s once, at a seeded offset, in 10 s of seeded -60 dBFS white noise: ``(1, S)``."""
    from diffgap_search.media.audio import load_audio

    rng = np.random.default_rng(seed)
    out = []
    for path in paths:
        sound = load_audio(path, RATE)[:WINDOW]
        window = (rng.standard_normal(WINDOW) * 10 ** (NOISE_DBFS / 20)).astype(np.float32)
        offset = int(rng.integers(0, WINDOW - sound.shape[0] + 1))
        window[offset : offset + sound.shape[0]] += sound
        out.append(window[None])
    return out


def cross_similarity(queries: list[np.ndarray], items: list[np.ndarray]) -> np.ndarray:
    """``(F, F)``: query file i against indexed file j, by their closest window pair."""
    return np.array([[float((q @ d.T).max()) for d in items] for q in queries])


def self_at_1(sim: np.ndarray) -> float:
    """Share of queries whose nearest indexed file is their own (the diagonal)."""
    return float(np.mean(np.argmax(sim, axis=1) == np.arange(sim.shape[0])))


def agreement_rows(encoder: Any, index_w: list[np.ndarray], event_w: list[np.ndarray],
                   kinds: list[str]) -> tuple[dict[str, dict[str, Agreement]], dict[str, dict[str, float]]]:
    """``{method: {setting: Agreement}}`` for every method and setting in the module docstring, and
    ``{method: {quiet setting: self@1}}``."""
    methods: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {
        SHIPPED: lambda ws: embed_files(ws, encoder.embed_audio),
        "aisfx whole window, not peak-normalised": lambda ws: embed_files(ws, unnormalised(encoder)),
        "aisfx blocks, mean-pooled": lambda ws: embed_files(ws, pooled(encoder, "mean")),
        "aisfx blocks, max-pooled": lambda ws: embed_files(ws, pooled(encoder, "max")),
        MFCC: lambda ws: mfcc_files(ws, RATE),
    }
    quiet = {f"{db} dB->index": [w * np.float32(10 ** (db / 20)) for w in index_w] for db in QUIET_DB}
    rows: dict[str, dict[str, Agreement]] = {}
    selves: dict[str, dict[str, float]] = {}
    for name, vectors_of in methods.items():
        started = time.perf_counter()
        idx, evt = vectors_of(index_w), vectors_of(event_w)
        rows[name] = {"index": neighbour_agreement(file_similarity(idx), kinds),
                      "event": neighbour_agreement(file_similarity(evt), kinds)}
        selves[name] = {}
        for setting, queries in {"event->index": event_w, **quiet}.items():
            q_vecs, i_vecs = evt if setting == "event->index" else vectors_of(queries), idx
            if name == MFCC:  # standardised over the queries and the index together, as one index of both
                both = vectors_of(index_w + queries)
                i_vecs, q_vecs = both[: len(index_w)], both[len(index_w) :]
            sim = cross_similarity(q_vecs, i_vecs)
            rows[name][setting] = neighbour_agreement(sim, kinds)
            selves[name][setting] = self_at_1(sim)
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows, selves


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(encoder: Any, repeats: int, batch: int = 16) -> dict[str, float]:
    """Windows/s of the shipped encoder and of aisfx's 7-block scheme; spectrogram seconds per batch."""
    import torch

    rng = np.random.default_rng(0)
    t = np.arange(WINDOW) / RATE
    windows = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal((batch, WINDOW))).astype(np.float32)
    rss_before = rss_mb()

    def median_s(fn: Callable[[], object]) -> float:
        fn()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    shipped = median_s(lambda: encoder.embed_audio(windows))
    rss_growth = rss_mb() - rss_before
    with torch.inference_mode():
        spectrogram = median_s(lambda: encoder.model_input(windows))
    blocks = median_s(lambda: aisfx_blocks(encoder, windows))
    return {"batch": batch, "windows_per_s": batch / shipped, "batch_s": shipped,
            "spectrogram_s": spectrogram, "blocks_windows_per_s": batch / blocks, "rss_growth_mb": rss_growth}


def fmt(a: Agreement) -> str:
    return f"{a.p_at_1:.3f} / {a.p_at_5:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args()
    from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder

    sounds = available_real_sounds()
    if not sounds:
        print(f"no real recordings: install Debian's sonic-pi-samples ({len(sounds)} found)", file=sys.stderr)
        return 1
    encoder = load_aisfx_encoder(bench_device(args.device), batch_size=16)
    load_before = os.getloadavg()[0]
    speed = throughput(encoder, args.repeats)
    kinds = [s.kind for s in sounds]
    paths = [s.path for s in sounds]
    rows, selves = agreement_rows(encoder, file_windows(paths, RATE), event_windows(paths), kinds)
    settings = ("index", "event", "event->index", *(f"{db} dB->index" for db in QUIET_DB))
    table = [("method (p@1 / p@5)", *settings)]
    table += [(name, *(fmt(row[s]) for s in settings)) for name, row in rows.items()]
    table += [(f"{name}: own file first", "", "", *(f"{selves[name][s]:.2f}" for s in settings[2:]))
              for name in rows]
    shipped, mfcc = rows[SHIPPED]["index"], rows[MFCC]["index"]
    counts = kind_counts()
    per_kind = [("kind", "files", "queries", "aisfx p@1", "aisfx p@5", "MFCC p@1", "MFCC p@5")]
    for kind, (queries, p1, p5) in shipped.per_kind.items():
        _, m1, m5 = mfcc.per_kind[kind]
        per_kind.append((kind, str(counts[kind]), str(queries), f"{p1:.2f}", f"{p5:.2f}", f"{m1:.2f}", f"{m5:.2f}"))
    speed_table = [("what", "value"),
                   ("aisfx windows/s (10 s windows, batch 16, shipped)", f"{speed['windows_per_s']:.2f}"),
                   ("seconds per batch of 16", f"{speed['batch_s']:.2f}"),
                   ("of which spectrogram, s", f"{speed['spectrogram_s']:.3f}"),
                   ("aisfx's 7-block scheme, windows/s", f"{speed['blocks_windows_per_s']:.2f}"),
                   ("RSS growth of the first batch, MB", f"{speed['rss_growth_mb']:.0f}")]
    notes = [f"{len(sounds)} CC0 sonic-pi samples, {shipped.queries} queries (kinds with >= 2 files); "
             f"device {encoder.device}, torch threads {__import__('torch').get_num_threads()}",
             f"load average at start {load_before:.2f}, at end {os.getloadavg()[0]:.2f} (timings are wall-clock)"]
    payload = {"throughput": speed,
               "agreement": {n: {s: vars(a) for s, a in r.items()} for n, r in rows.items()},
               "own_file_first": selves,
               "kinds": dict(counts)}
    write_results("aisfx", payload, table, notes, out_dir=args.out_dir)
    _append_tables(args.out_dir / "aisfx.md", [("Per kind, index setting", per_kind), ("Speed", speed_table)])
    return 0


def _append_tables(path: Path, sections: list[tuple[str, list[tuple[str, ...]]]]) -> None:
    """Add titled markdown tables after what ``write_results`` wrote (and print them)."""
    lines: list[str] = []
    for title, (header, *rows) in sections:
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
