"""One vector space at 10⁶-10⁷ windows through dgsearch's own path (issue 23): a real catalog (SQLite, the
vectors as BLOBs), published by ``store/vector_index.publish`` under a memory budget, searched by
``Searcher.search_vectors`` with its exact re-scoring from the catalog.

``bench_large_index.py`` measures the FAISS side alone (vectors and re-scoring from a memory-mapped file);
this one measures what a user runs:

1. **Vectors**: ``bench_large_index.generate``'s realistic spread, in a float32 file (kept for the ground
   truth); then a catalog of ``size / 100`` files of 100 windows each, filled through ``Catalog.put_file`` in
   transactions of 100 files (segment ids 1..N in the file's row order): fill time and catalog bytes per window.
2. **Publish** (a child process, its own peak RSS): ``publish(index_dir, catalog, "audio", D, budget)`` as
   ``dgsearch index`` ends a run: the sample read in one pass over the catalog, training, shards, on-disk merge.
3. **Ground truth**: ``bench_large_index.ground_truth`` (exact top-10 by chunked products, float64 re-rank).
4. **Query** (a child process): ``Searcher(load_encoder=None)`` opens the published generation as ``dgsearch
   query`` does (CRC-checked, lists memory-mapped); one query at a time, windows not grouped by file,
   ``search_vectors`` timed whole (FAISS, the catalog's BLOB reads, exact re-scoring); recall@10, median /
   p95, RSS after.

    nice python benchmarks/bench_large_catalog.py --size 1000000 --budget-mb 1000 --out benchmarks/results/large_catalog_1e6.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, memory_status_mb, write_results  # noqa: E402
from bench_large_index import D, K, AnonPeak, generate, ground_truth  # noqa: E402

PER_FILE = 100  # windows per file (a 1 000 s recording in 10 s windows)
FILES_PER_TX = 100


def fill(index_dir: Path, vectors: Path) -> dict[str, float]:
    """Writes every row of ``vectors`` (N, D) into a new catalog at ``index_dir`` (segment id = row + 1)."""
    from diffgap_search.store.catalog import CATALOG_NAME, Catalog, SegmentInput

    vecs = np.load(vectors, mmap_mode="r")
    t0 = time.perf_counter()
    with Catalog.open(index_dir, create=True) as cat:
        cat.set_meta({"encoder": {"model": "synthetic", "fingerprint": "0" * 64, "dim": D, "sample_rate": 48_000,
                                  "modalities": ["audio", "text"]},
                      "window": {"window_s": 10.0, "hop_s": 10.0, "sample_rate": 48_000}})
        n_files = len(vecs) // PER_FILE
        for lo in range(0, n_files, FILES_PER_TX):
            block = np.asarray(vecs[lo * PER_FILE : min(n_files, lo + FILES_PER_TX) * PER_FILE])
            with cat.batch():
                for j in range(len(block) // PER_FILE):
                    f = lo + j
                    cat.put_file(path_key=f"/archive/{f:07d}.wav".encode(), path=f"/archive/{f:07d}.wav",
                                 kind="audio", size=1, mtime_ns=f, sha256=f"{f:064x}", duration_s=10.0 * PER_FILE,
                                 segments=[SegmentInput(10.0 * s, 10.0 * s + 10.0, {"audio": block[j * PER_FILE + s]})
                                           for s in range(PER_FILE)])
    return {"fill_s": time.perf_counter() - t0,
            "catalog_bytes_per_window": (index_dir / CATALOG_NAME).stat().st_size / len(vecs)}  # closed: WAL folded in


def build(index_dir: Path, budget_mb: float) -> dict[str, object]:
    """Child process: ``publish`` of the ``audio`` space, timed, with its peak memory."""
    from diffgap_search.config import FaissConfig
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.store.vector_index import publish

    anon = AnonPeak()
    t0 = time.perf_counter()
    with Catalog.open(index_dir) as cat:
        rec = publish(index_dir, cat, "audio", D, FaissConfig(memory_budget_mb=budget_mb))
    return {"publish_s": time.perf_counter() - t0, "kind": rec.kind, "count": rec.count,
            "build_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "build_peak_anon_mb": anon.reset(),
            "index_bytes_per_vector": sum(p.stat().st_size for p in index_dir.glob("audio.*")) / rec.count}


SWEEP = [(nprobe, ef) for nprobe in (32, 64, 128) for ef in (16, 128)]  # (lists probed, HNSW beam)


def query(index_dir: Path, queries: Path) -> dict[str, object]:
    """Child process: every query through ``Searcher.search_vectors`` (timed whole) with the default search
    parameters, then the validation half again for each of :data:`SWEEP` (set on the loaded index)."""
    import faiss

    from diffgap_search.config import SearchConfig
    from diffgap_search.search import Searcher

    cfg = SearchConfig(top_k=K, group_by_file=False, all_copies=True)
    qs = np.load(queries)

    def run(s: Searcher, rows: np.ndarray) -> tuple[list[list[int]], list[float]]:
        found, ms = [], []
        for q in rows:
            t = time.perf_counter()
            hits, _, _ = s.search_vectors(q[None], "audio", cfg)
            ms.append((time.perf_counter() - t) * 1000)
            found.append([h.segment_id - 1 for h in hits])  # segment id = row + 1
        return found, ms

    t0 = time.perf_counter()
    with Searcher(index_dir, load_encoder=None) as s:  # type: ignore[arg-type]
        loaded = s.index_for("audio")
        open_s = time.perf_counter() - t0
        ivf = faiss.extract_index_ivf(loaded.index)
        quantizer = faiss.downcast_index(ivf.quantizer)
        hnsw = isinstance(quantizer, faiss.IndexHNSW)
        default = {"nprobe": ivf.nprobe, "ef_search": quantizer.hnsw.efSearch if hnsw else None}
        found, ms = run(s, qs)
        status = memory_status_mb("VmRSS", "RssAnon", "RssFile", "RssShmem")
        sweep = []
        for nprobe, ef in SWEEP if hnsw else []:
            ivf.nprobe = nprobe
            quantizer.hnsw.efSearch = ef
            f, m = run(s, qs[: len(qs) // 2])
            sweep.append({"nprobe": nprobe, "ef_search": ef, "found": f, "ms": m})
    return {"found": found, "ms": ms, "open_s": open_s, "served_kind": loaded.kind, "rebuilt": loaded.rebuilt,
            "default_params": default, "sweep": sweep,
            "query_rss_mb": status["VmRSS"], "query_rss_anon_mb": status.get("RssAnon"),
            "query_rss_file_mb": status.get("RssFile")}


def child(phase: str, keep: Path | None, *args: str) -> dict[str, object]:
    """Runs ``phase`` in a fresh interpreter (its own peak RSS) and returns its JSON (also kept as
    ``keep/<phase>.json`` when ``keep`` is given: an hour's run survives a failure after it)."""
    out = subprocess.run([sys.executable, __file__, "--phase", phase, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{phase} failed ({out.returncode}): {out.stderr[-2000:]}")
    if keep is not None:
        (keep / f"{phase}.json").write_text(out.stdout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="windows (a multiple of 100)")
    ap.add_argument("--budget-mb", type=float, default=1000.0)
    ap.add_argument("--queries", type=int, default=400, help="the first half chooses, the second judges")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (an .md beside it); default benchmarks/results/")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="a folder a run kept (vectors.npy, queries.npy, filled.json, index/): build and query it again")
    ap.add_argument("--phase", choices=("build", "query"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "build":
        print(json.dumps(build(args.dir, args.budget_mb)))
        return
    if args.phase == "query":
        print(json.dumps(query(args.dir, args.dir.parent / "queries.npy")))
        return
    if args.size % PER_FILE:
        raise SystemExit(f"--size must be a multiple of {PER_FILE}")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = args.reuse or Path(tmp)
        if args.reuse is None:
            t0 = time.perf_counter()
            queries = generate(work / "vectors.npy", args.size, 0, args.queries)
            np.save(work / "queries.npy", queries)
            t_gen = time.perf_counter() - t0
            filled = fill(work / "index", work / "vectors.npy")
            (work / "filled.json").write_text(json.dumps({"generate_s": t_gen, **filled}))
        else:  # a kept run's vectors, queries and catalog (filled.json: its figures); published files swept
            from diffgap_search.store.catalog import Catalog
            from diffgap_search.store.vector_index import sweep_unpublished

            queries = np.load(work / "queries.npy")
            kept = json.loads((work / "filled.json").read_text())
            t_gen = kept.pop("generate_s")
            filled = kept
            with Catalog.open(work / "index") as cat:
                if cat.get_meta("faiss.audio"):
                    raise SystemExit(f"{work} holds a published index: --reuse builds a catalog not yet published")
                sweep_unpublished(work / "index", cat)
        built = child("build", args.work, "--dir", str(work / "index"), "--budget-mb", str(args.budget_mb))
        truth = ground_truth(np.load(work / "vectors.npy", mmap_mode="r"), queries)
        if args.work is not None:
            np.save(args.work / "truth.npy", truth)
        res = child("query", args.work, "--dir", str(work / "index"))
    half = args.queries // 2  # the first half chooses (the sweep), the second half judges

    def recall(found: list[list[int]], rows: range) -> float:
        return float(np.mean([len(set(found[i]) & set(truth[r].tolist())) / K for i, r in enumerate(rows)]))

    found, ms = res.pop("found"), np.asarray(res.pop("ms"))  # type: ignore[arg-type]
    sweep = [{"nprobe": row["nprobe"], "ef_search": row["ef_search"],
              "recall_at_10_validation": recall(row["found"], range(half)),
              "ms_median": float(np.median(row["ms"])), "ms_p95": float(np.percentile(row["ms"], 95))}
             for row in res.pop("sweep")]  # type: ignore[union-attr]
    test = range(half, args.queries)
    payload = {"size": args.size, "dim": D, "budget_mb": args.budget_mb,
               "recall_at_10": recall([found[i] for i in test], test),  # type: ignore[index]
               "recall_at_10_validation": recall(found[:half], range(half)),  # type: ignore[index]
               "queries": args.queries, "query_ms_median": float(np.median(ms[half:])),
               "query_ms_p95": float(np.percentile(ms[half:], 95)), "generate_s": t_gen, **filled, **built, **res,
               "sweep_on_validation": sweep, "loadavg": os.getloadavg(), "machine": machine()}
    recall_test = payload["recall_at_10"]
    out = args.out or Path(__file__).resolve().parent / "results" / f"large_catalog_{args.size}.json"
    table = [("size", "kind", "recall@10", "query median ms", "p95 ms", "fill s", "publish s",
              "publish peak MB (own)", "query RSS MB (own)", "catalog B/window", "index B/vector"),
             (str(args.size), str(built["kind"]), f"{recall_test:.3f}", f"{payload['query_ms_median']:.2f}",
              f"{payload['query_ms_p95']:.2f}", f"{filled['fill_s']:.0f}", f"{built['publish_s']:.0f}",
              f"{built['build_peak_rss_mb']:.0f} ({built['build_peak_anon_mb']:.0f})",
              f"{res['query_rss_mb']:.0f} ({res['query_rss_anon_mb']:.0f})",
              f"{filled['catalog_bytes_per_window']:.0f}", f"{built['index_bytes_per_vector']:.0f}")]
    notes = [f"default search parameters {res['default_params']}; recall and latency on the second half of the"
             f" queries (the first half chose them: sweep below); load average {os.getloadavg()}"]
    notes += [f"sweep (validation half): nprobe {r['nprobe']}, HNSW efSearch {r['ef_search']}: recall@10"
              f" {r['recall_at_10_validation']:.3f}, median {r['ms_median']:.2f} ms, p95 {r['ms_p95']:.2f} ms"
              for r in sweep]
    write_results(out.stem, payload, table, notes, out_dir=out.parent)
    print(json.dumps({k: v for k, v in payload.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
