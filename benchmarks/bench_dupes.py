"""``dgsearch dupes`` at scale: one batched range_search over the published index vs the alternatives.

A real catalog of N one-window files (synthetic clustered 512-d vectors, as ``bench_search.py`` draws them)
in which 1 % of the files get 1–3 near-copies (the original plus Gaussian noise, cosine ≈ 0.98 to it);
the engine publishes its FAISS index (IVF-Flat above 50 000 vectors). Timed, in one process:

- ``engine``: ``dupes.find_dupes`` end to end (catalog read, the published IVF index probed at
  ``DUPES_NPROBE`` lists, one batched ``range_search`` of every window, exact verification, grouping),
  and the same probing search's 32 lists;
- ``exact``: the same on a copy of the catalog published with an exact (flat) index: the ground truth
  (``--no-exact`` skips it: at 10⁵ vectors it costs minutes, and the planted pairs are a ground truth too);
- ``batched kNN``: one ``search`` of every window for its 16 nearest (FAISS part only), the other one-pass
  design, which misses pairs beyond the 16th neighbour;
- ``per-file queries``: one FAISS query per file, as ``dgsearch similar`` run over every file would do
  (timed on a sample of files, extrapolated to all N): what the issue rules out.

Recall is the fraction of the planted near-copy pairs that end in one group; ``groups equal`` compares
the engine's groups with the exact ones.

    python benchmarks/bench_dupes.py                     # 10⁵ vectors (a few minutes on 2 cores)
    python benchmarks/bench_dupes.py --size 20000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from bench_search import D, synthetic, write_catalog  # noqa: E402


def plant_copies(base: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``base (n, D)`` with ``frac·n`` originals given 1–3 near-copies each, appended; returns ``(all vectors,
    planted pairs of row indices)`` (every pair within a planted group)."""
    rng = np.random.default_rng(seed)
    n = len(base)
    originals = rng.choice(n, size=int(frac * n), replace=False)
    extra, pairs = [], []
    row = n
    for o in originals.tolist():
        members = [o]
        for _ in range(int(rng.integers(1, 4))):
            x = base[o] + 0.2 * rng.standard_normal(D).astype(np.float32) / np.sqrt(D)
            extra.append(x / np.linalg.norm(x))
            members.append(row)
            row += 1
        pairs += [(a, b) for i, a in enumerate(members) for b in members[i + 1:]]
    return np.concatenate([base, np.stack(extra).astype(np.float32)]), pairs


def make_index(work: Path, vecs: np.ndarray, flat: bool) -> Path:
    from diffgap_search.config import FaissConfig
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.store.vector_index import publish

    index_dir = work / ("flat" if flat else "engine")
    write_catalog(index_dir, vecs, per_file=1)
    with Catalog.open(index_dir) as cat:
        cat.set_meta({"encoder": {"model": "synthetic", "dim": D, "fingerprint": "0" * 64, "sample_rate": 48000}})
        publish(index_dir, cat, "audio", D, FaissConfig(flat_max=10**9) if flat else FaissConfig())
    return index_dir


def recall(groups, pairs: list[tuple[int, int]]) -> float:  # type: ignore[no-untyped-def]
    """Fraction of planted pairs (row indices; file id = row + 1) that share a group."""
    where = {f.file_id: g for g, group in enumerate(groups) for f in group.files}
    hit = sum(1 for a, b in pairs if where.get(a + 1) is not None and where.get(a + 1) == where.get(b + 1))
    return hit / len(pairs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="vectors before planting copies")
    ap.add_argument("--frac", type=float, default=0.01, help="fraction of files given near-copies")
    ap.add_argument("--sample", type=int, default=5_000, help="files timed for the per-file baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-exact", action="store_true", help="skip the exact (flat) run")
    args = ap.parse_args()

    from diffgap_search.config import FaissConfig
    from diffgap_search.search.dupes import DEFAULT_THRESHOLD, DUPES_NPROBE, find_dupes
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.store.index_choice import search_threads
    from diffgap_search.store.vector_index import load_index

    base, _ = synthetic(args.size, args.seed)
    vecs, pairs = plant_copies(base, args.frac, args.seed + 7)
    n = len(vecs)
    work = Path(tempfile.mkdtemp(prefix="bench-dupes-"))
    try:
        t = time.perf_counter()
        engine_dir = make_index(work, vecs, flat=False)
        flat_dir = None if args.no_exact else make_index(work, vecs, flat=True)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        engine = find_dupes(engine_dir)
        engine_s = time.perf_counter() - t
        t = time.perf_counter()
        engine32 = find_dupes(engine_dir, nprobe=FaissConfig().nprobe)
        engine32_s = time.perf_counter() - t
        t = time.perf_counter()
        exact = find_dupes(flat_dir) if flat_dir is not None else None
        exact_s = time.perf_counter() - t
        with Catalog.open(engine_dir) as cat:
            loaded = load_index(engine_dir, cat, "audio", D, FaissConfig(nprobe=DUPES_NPROBE))
            t = time.perf_counter()
            loaded.search(vecs, 16)
            knn_s = time.perf_counter() - t
            sample = np.random.default_rng(args.seed).choice(n, size=min(args.sample, n), replace=False)
            t = time.perf_counter()
            for i in sample.tolist():
                with search_threads(1):
                    loaded.index.search(vecs[i : i + 1], 16)
            per_file_s = (time.perf_counter() - t) * n / len(sample)
        same = None if exact is None else [sorted(f.file_id for f in g.files) for g in engine.groups] == [
            sorted(f.file_id for f in g.files) for g in exact.groups]
        rows = [
            ("method", "seconds", "vs engine", "planted-pair recall", "groups"),
            (f"engine: one range_search over {engine.index_kind}, nprobe {DUPES_NPROBE}", f"{engine_s:.2f}", "1.0×",
             f"{recall(engine.groups, pairs):.4f}", str(len(engine.groups))),
            (f"the same, nprobe {FaissConfig().nprobe} (search's)", f"{engine32_s:.2f}", f"{engine32_s / engine_s:.1f}×",
             f"{recall(engine32.groups, pairs):.4f}", str(len(engine32.groups))),
        ]
        if exact is not None:
            rows.append(("exact: one range_search over flat", f"{exact_s:.2f}", f"{exact_s / engine_s:.1f}×",
                         f"{recall(exact.groups, pairs):.4f}", str(len(exact.groups))))
        rows += [
            (f"batched kNN (k=16, nprobe {DUPES_NPROBE}), FAISS only", f"{knn_s:.2f}", f"{knn_s / engine_s:.1f}×", "-", "-"),
            (f"one query per file (k=16, nprobe {DUPES_NPROBE}; extrapolated from {len(sample)})", f"{per_file_s:.2f}",
             f"{per_file_s / engine_s:.1f}×", "-", "-"),
        ]
        payload = {"vectors": n, "files": n, "planted_pairs": len(pairs), "threshold": DEFAULT_THRESHOLD,
                   "engine": engine.to_dict() | {"groups": len(engine.groups), "seconds": engine_s},
                   "engine_nprobe32": {"seconds": engine32_s, "groups": len(engine32.groups),
                                       "recall": recall(engine32.groups, pairs)},
                   "exact": None if exact is None else {"seconds": exact_s, "groups": len(exact.groups),
                                                        "timings_ms": exact.timings_ms},
                   "knn_s": knn_s, "per_file_s": per_file_s, "groups_equal_exact": same, "build_s": build_s}
        notes = [f"{n} vectors ({args.size} + {n - args.size} planted near-copies), threshold {DEFAULT_THRESHOLD},"
                 f" engine stages (ms): {', '.join(f'{k} {v:.0f}' for k, v in engine.timings_ms.items())}",
                 f"engine groups equal the exact groups: {'not run' if same is None else same};"
                 f" catalog and indexes built in {build_s:.0f} s; machine shared with other jobs (load average"
                 f" {os.getloadavg()[0]:.1f} at the end): compare ratios"]
        write_results("dupes", payload, rows, notes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
