"""The Ray engine's row payloads (``indexing/ray_engine/rows_codec.py``): milliseconds to pack and to unpack one
decoded window, the way every window travels from its decode task to the embedding actor, against the
``.npz`` payload it replaced (``np.savez`` / ``np.load(allow_pickle=False)``, what a careful user writes to
avoid pickle) and, for scale only, pickle (which ``--engine ray`` never reads: it can run code).

    python benchmarks/bench_rows_codec.py                 # a 10 s window at 48 kHz: (0.0, 10.0, audio, None)
    python benchmarks/bench_rows_codec.py --samples 96000 # a 2 s one
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import write_results  # noqa: E402

from diffgap_search.indexing.ray_engine.rows_codec import pack, unpack  # noqa: E402


def npz_pack(window: tuple[float, float, np.ndarray, None]) -> bytes:
    """The previous payload: the tree as JSON beside the array in an ``.npz``."""
    buf = io.BytesIO()
    tree = json.dumps([window[0], window[1], {"$nd": 0}, None]).encode("utf-8")
    np.savez(buf, tree=np.frombuffer(tree, dtype=np.uint8), a0=window[2])
    return buf.getvalue()


def npz_unpack(data: bytes) -> tuple[float, float, np.ndarray, None]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        start, end, _, frames = json.loads(npz["tree"].tobytes().decode("utf-8"))
        return start, end, npz["a0"], frames


def best_ms(fn: Callable[[], Any], calls: int, rounds: int) -> tuple[float, float]:
    """Best and median over ``rounds`` of the mean milliseconds per call of ``calls`` calls."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls * 1e3)
    return min(times), statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=480_000, help="samples of the window (float32)")
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()
    audio = np.random.default_rng(0).standard_normal(args.samples).astype(np.float32)
    window = (0.0, 10.0, audio, None)
    rows: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
        "rows_codec (served)": (pack, unpack),
        ".npz (before)": (npz_pack, npz_unpack),
        "pickle (for scale; never read by --engine ray)": (lambda w: pickle.dumps(w, protocol=5), pickle.loads),
    }
    figures: dict[str, dict[str, float]] = {}
    table = [("payload", "pack ms (best / median)", "unpack ms (best / median)", "bytes")]
    for name, (enc, dec) in rows.items():
        data = enc(window)
        np.testing.assert_array_equal(dec(data)[2], audio)  # a round trip first: every row returns the window
        p_best, p_med = best_ms(lambda: enc(window), args.calls, args.rounds)
        u_best, u_med = best_ms(lambda: dec(data), args.calls, args.rounds)
        figures[name] = {"pack_ms": p_best, "pack_median_ms": p_med, "unpack_ms": u_best,
                         "unpack_median_ms": u_med, "bytes": len(data)}
        table.append((name, f"{p_best:.3f} / {p_med:.3f}", f"{u_best:.3f} / {u_med:.3f}", str(len(data))))
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("rows_codec", {"samples": args.samples, "calls": args.calls, "rounds": args.rounds,
                                 "figures": figures}, table,
                  [f"one window of {args.samples} float32 samples ({args.samples / 48_000:.1f} s at 48 kHz) with its"
                   " start and end; one thread; best and median of the rounds' mean per call",
                   "every window is packed once by its decode task and unpacked once by the embedding actor"],
                  **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
