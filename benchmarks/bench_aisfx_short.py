"""aisfx on short sounds: the 10 s window a short file is repeat-padded to (what `dgsearch index` embeds today,
LAION-CLAP's rule) against the file's own samples (aisfx's own rule: its frames, zero-padded to one 100-frame
block when shorter). Sound-effects libraries are mostly one-shots of one to three seconds.

For each set, every file shorter than the window is embedded both ways (files as long as the window or longer
the same way in both); the figures are the seconds each way takes (one torch thread, the own-samples side one
file at a time, since their lengths differ), the cosine between the two vectors of a file, and leave-one-out
kind agreement (precision@1 and @5 of the nearest files' kinds, ``tests/neighbour_agreement.py``).
Sets: sonic-pi's 130 CC0 samples (``tests/real_sounds.py``; where aisfx's settings were chosen: validation) and
the described sounds of Debian's real-gap packages (``real_gap/packages.py``, their category as the kind; nobody
tuned anything on them: the judge).

    python benchmarks/bench_aisfx_short.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "real_gap"))
from _common import ROOT, write_results  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from neighbour_agreement import Agreement, file_similarity, file_windows, neighbour_agreement  # noqa: E402

RATE = 44_100
WINDOW = 10 * RATE


def both_ways(encoder: object, paths: list[str]) -> tuple[list[np.ndarray], list[np.ndarray], float, float, int]:
    """Each file's vectors the index's way (repeat-padded windows, batches of 16) and its own way; the seconds of
    each and the number of files shorter than the window."""
    from diffgap_search.media.audio import load_audio

    tiled = file_windows(paths, RATE)
    raw = [load_audio(p, RATE) for p in paths]
    t0 = time.perf_counter()
    flat = np.concatenate(tiled)
    vectors = np.concatenate([encoder.embed_audio(flat[i:i + 16]) for i in range(0, len(flat), 16)])
    padded_s = time.perf_counter() - t0
    bounds = np.cumsum([0] + [w.shape[0] for w in tiled])
    padded = [vectors[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
    t0 = time.perf_counter()
    own = [encoder.embed_audio(r[None, :].astype(np.float32)) if 0 < len(r) < WINDOW else encoder.embed_audio(w)
           for w, r in zip(tiled, raw)]
    own_s = time.perf_counter() - t0
    return padded, own, padded_s, own_s, sum(0 < len(r) < WINDOW for r in raw)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", type=Path,
                   default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgsearch-real-gap")
    p.add_argument("--name", default="aisfx_short")
    args = p.parse_args(argv)
    import torch

    from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder
    from packages import build_table
    from real_sounds import available_real_sounds

    torch.set_num_threads(1)
    encoder = load_aisfx_encoder("cpu")
    sonic = available_real_sounds()
    debian, _ = build_table(args.cache_dir)
    sets = {"sonic-pi (validation)": ([str(s.path) for s in sonic], [s.kind for s in sonic]),
            "Debian packages (judge)": ([s.path for s in debian], [s.category for s in debian])}
    rows = [("set", "files (shorter than 10 s)", "way", "seconds", "windows/s", "p@1", "p@5", "cosine to the other way: min / median")]
    payload: dict[str, object] = {}
    for name, (paths, kinds) in sets.items():
        padded, own, padded_s, own_s, short = both_ways(encoder, paths)
        windows = sum(len(v) for v in padded)
        cos = [float(a[0] @ b[0]) for a, b in zip(padded, own)]
        result: dict[str, Agreement] = {way: neighbour_agreement(file_similarity(v), kinds)
                                        for way, v in (("padded", padded), ("own", own))}
        for way, seconds in (("repeat-padded to 10 s (today)", padded_s), ("own samples", own_s)):
            a = result["padded" if way.startswith("repeat") else "own"]
            rows.append((name, f"{len(paths)} ({short})", way, f"{seconds:.1f}", f"{windows / seconds:.1f}",
                         f"{a.p_at_1:.3f}", f"{a.p_at_5:.3f}", f"{min(cos):.3f} / {float(np.median(cos)):.3f}"))
        payload[name] = {"files": len(paths), "short": short, "padded_s": padded_s, "own_s": own_s,
                         "padded": result["padded"].__dict__, "own": result["own"].__dict__,
                         "cosine_min": min(cos), "cosine_median": float(np.median(cos)), "queries": result["own"].queries}
    notes = ["one torch thread; own samples embedded one file at a time (their lengths differ), the padded way in"
             " batches of 16 as indexing does", "kind agreement: leave-one-out over the files of kinds with two or more"]
    write_results(args.name, payload, rows, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
