"""Search at scale: FAISS index choice (recall@10, QPS, build time, memory) and warm query latency.

For each size N (default 10⁵ and 10⁶) the script writes N synthetic 512-d unit vectors into a real catalog
(``executemany`` in transactions of 100 000 rows, 1 000 windows per file), publishes the FAISS index the
engine picks (``store.index_choice``: flat up to ``flat_max``, then IVF-Flat with ≈4·√N lists), then

- recall@10 of that index against exact search (``IndexFlatIP`` over the same vectors), and single-query
  QPS of both (one query per call, as a user's query is);
- build time (training + adding + writing the file) and the process's RSS growth while building;
- ``Searcher.search`` latency for text queries in a warm process (the full-size CLAP architecture with
  random weights, text tower as the engine runs it), median and p95 per stage: text encoding, bridging (no
  DiffGAP bridge in the query path yet: 0), FAISS, SQLite, total.

Synthetic data (not uniform on the sphere, which has no structure and is unrealistically hard for any
ANN index): N/500 cluster centres, each vector = centre + isotropic noise of the same norm, then an
anisotropic linear map with a decaying spectrum (embeddings occupy a low-dimensional part of the space),
then L2-normalised. Queries are fresh points drawn the same way.

    python benchmarks/bench_search.py                       # 10⁵ and 10⁶ (about 15 min on 2 cores)
    python benchmarks/bench_search.py --sizes 100000 --device cpu
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_device, make_full_clap, memory_status_mb, write_results  # noqa: E402

D = 512
QUERIES = ["dog barking", "rain falling on a tin roof", "a car engine starting", "people cheering in a stadium",
           "birds singing in the morning", "glass breaking", "a train passing by", "thunder and heavy rain"]


def synthetic(n: int, seed: int, rng_q: int | None = None, n_queries: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, D)`` clustered unit vectors and ``(n_queries, D)`` queries from the same clusters."""
    rng = np.random.default_rng(seed)
    n_clusters = max(16, n // 500)
    centres = rng.standard_normal((n_clusters, D)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spectrum = (1.0 / np.arange(1, D + 1) ** 0.5).astype(np.float32)
    basis, _ = np.linalg.qr(rng.standard_normal((D, D)))
    mix = (basis * spectrum).astype(np.float32) @ basis.T.astype(np.float32)

    def draw(count: int, r: np.random.Generator) -> np.ndarray:
        out = np.empty((count, D), np.float32)
        for lo in range(0, count, 100_000):
            hi = min(count, lo + 100_000)
            c = centres[r.integers(0, n_clusters, hi - lo)]
            x = c + r.standard_normal((hi - lo, D)).astype(np.float32) / np.sqrt(D)
            x = x @ mix
            out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    data = draw(n, rng)
    queries = draw(n_queries, np.random.default_rng(rng_q if rng_q is not None else seed + 1))
    return data, queries


def realistic(n: int, seed: int, rng_q: int | None = None, n_queries: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, D)`` unit vectors with the spread of real CLAP embeddings, and ``(n_queries, D)`` queries from
    the other modality:

    - anisotropy: a steeply decaying spectrum (σ_i ∝ 1/i), most of the variance in a few dozen directions;
    - a shared component: every audio vector carries one common offset (real embeddings of one modality
      sit in a narrow cone: mean pairwise cosine ≈ 0.5), and the text queries another one (the modality
      gap: a query's best cosine is ≈ 0.57, it lies outside the data's cone, where an IVF quantizer trained
      on the data is least sure);
    - near-duplicates: a third of the vectors are copies of another one plus a tiny perturbation (re-encoded
      files, overlapping windows, loops), so many scores tie to three decimals;
    - N/50 sources (clusters), each a fresh point of the anisotropic distribution, with wide spread.
    """
    rng = np.random.default_rng(seed)
    n_sources = max(16, n // 50)
    spectrum = (1.0 / np.arange(1, D + 1)).astype(np.float32)
    basis, _ = np.linalg.qr(rng.standard_normal((D, D)))
    mix = (basis * spectrum).astype(np.float32) @ basis.T.astype(np.float32)
    sources = rng.standard_normal((n_sources, D)).astype(np.float32) @ mix
    spread = float(np.linalg.norm(sources, axis=1).mean())
    gap = rng.standard_normal((2, D)).astype(np.float32)
    gap *= spread * 1.2 / np.linalg.norm(gap, axis=1, keepdims=True)  # audio offset, text offset

    def draw(count: int, r: np.random.Generator, side: int) -> np.ndarray:
        out = np.empty((count, D), np.float32)
        for lo in range(0, count, 100_000):
            hi = min(count, lo + 100_000)
            x = sources[r.integers(0, n_sources, hi - lo)] + 0.7 * (r.standard_normal((hi - lo, D)).astype(np.float32) @ mix)
            x += gap[side]
            out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    data = draw(n, rng, 0)
    dup = rng.random(n) < 1 / 3
    src = rng.integers(0, n, int(dup.sum()))
    noisy = data[src] + rng.standard_normal((len(src), D)).astype(np.float32) * (1e-3 / np.sqrt(D))
    data[dup] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    queries = draw(n_queries, np.random.default_rng(rng_q if rng_q is not None else seed + 1), 1)
    return data, queries


def rss_mb() -> float:
    return memory_status_mb("VmRSS").get("VmRSS", float("nan"))


def write_catalog(index_dir: Path, vecs: np.ndarray, per_file: int = 1000) -> float:
    """Fill a real catalog with ``vecs`` as windows of files; returns seconds."""
    from diffgap_search.config import WindowConfig
    from diffgap_search.store.catalog import Catalog, now_iso
    from diffgap_search.store.settings import bind_window

    t0 = time.perf_counter()
    with Catalog.open(index_dir, create=True) as cat:
        bind_window(cat, WindowConfig(), str(index_dir))
        conn = cat.conn
        n = len(vecs)
        n_files = -(-n // per_file)
        with cat.batch():
            conn.executemany(
                "INSERT INTO files (id, path_key, path, kind, size, mtime_ns, sha256, status, duration_s, has_audio,"
                " indexed_at) VALUES (?, ?, ?, 'audio', 1, 1, ?, 'ok', ?, 1, ?)",
                [(f + 1, f"/synthetic/{f:07d}.wav".encode(), f"/synthetic/{f:07d}.wav", f"{f:064x}",
                  10.0 * per_file, now_iso()) for f in range(n_files)],
            )
        for lo in range(0, n, 100_000):
            hi = min(n, lo + 100_000)
            with cat.batch():
                conn.executemany(
                    "INSERT INTO segments (id, file_id, seq, start_s, end_s) VALUES (?, ?, ?, ?, ?)",
                    ((i + 1, i // per_file + 1, i % per_file, 10.0 * (i % per_file), 10.0 * (i % per_file) + 10.0)
                     for i in range(lo, hi)),
                )
                conn.executemany(
                    "INSERT INTO vectors (space, segment_id, vector) VALUES ('audio', ?, ?)",
                    ((i + 1, vecs[i].tobytes()) for i in range(lo, hi)),
                )
    return time.perf_counter() - t0


def timed_queries(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """One query per call, threads as the engine sets them; returns (ids (Q, k), queries per second)."""
    from diffgap_search.store.index_choice import search_threads

    ids = np.empty((len(queries), k), np.int64)
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        with search_threads(1):
            ids[i] = index.search(q[None], k)[1][0]
    return ids, len(queries) / (time.perf_counter() - t0)


def bench_size(n: int, work: Path, encoder, n_queries: int, n_text: int, data: str = "clustered") -> dict:
    import faiss

    from diffgap_search.config import FaissConfig, SearchConfig, SearchMode
    from diffgap_search.search import Query, Searcher
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.encoders.base import identity_of
    from diffgap_search.store.settings import bind_encoder
    from diffgap_search.store.vector_index import load_index, publish

    cfg = FaissConfig()
    index_dir = work / f"n{n}"
    vecs, queries = (synthetic if data == "clustered" else realistic)(n, seed=n, n_queries=n_queries)
    write_s = write_catalog(index_dir, vecs)
    print(f"[{n}] catalog written in {write_s:.1f} s", flush=True)
    with Catalog.open(index_dir) as cat:
        bind_encoder(cat, identity_of(encoder), str(index_dir))
        rss0 = rss_mb()
        t0 = time.perf_counter()
        rec = publish(index_dir, cat, "audio", D, cfg)
        build_s = time.perf_counter() - t0
        rss1 = rss_mb()
        loaded = load_index(index_dir, cat, "audio", D, cfg)
    print(f"[{n}] {rec.kind} published in {build_s:.1f} s", flush=True)
    k = 10
    exact = faiss.IndexFlatIP(D)
    exact.add(vecs)
    n_exact = min(len(queries), 50)
    truth, qps_exact = timed_queries(exact, queries[:n_exact], k)
    truth_all = exact.search(queries, k)[1] + 1  # catalog ids are positions + 1
    got, qps_index = timed_queries(loaded.index, queries, k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth_all)]))
    del exact
    lat: dict[str, list[float]] = {"encode": [], "bridge": [], "faiss": [], "sqlite": [], "total": []}
    with Searcher(index_dir, lambda _cfg: encoder, device="cpu") as searcher:
        if n_text:
            searcher.search(Query(text="warm up"), SearchConfig(mode=SearchMode.SEMANTIC))
        for i in range(n_text):
            res = searcher.search(Query(text=QUERIES[i % len(QUERIES)]), SearchConfig(mode=SearchMode.SEMANTIC))
            for key in lat:
                lat[key].append(res.timings_ms.get(key, 0.0))
    stats = {key: {"median_ms": float(np.median(v)) if v else float("nan"),
                   "p95_ms": float(np.percentile(v, 95)) if v else float("nan")} for key, v in lat.items()}
    size_mb = (index_dir / f"audio.{rec.generation}.faiss").stat().st_size / 2**20
    shutil.rmtree(index_dir, ignore_errors=True)
    return {"n": n, "data": data, "kind": rec.kind, "nprobe": cfg.nprobe, "write_catalog_s": write_s, "build_s": build_s,
            "build_rss_growth_mb": rss1 - rss0, "faiss_file_mb": size_mb, "recall_at_10": recall,
            "qps_index": qps_index, "qps_exact": qps_exact, "qps_ratio": qps_index / qps_exact,
            "query_latency": stats, "text_queries": n_text}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200, help="ANN queries for recall and QPS")
    ap.add_argument("--text-queries", type=int, default=50, help="timed Searcher.search text queries")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (GPU parts skipped without one)")
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument("--data", choices=("clustered", "realistic"), default="clustered",
                    help="clustered (results/search.*) or the spread of real embeddings (results/search_realistic.*)")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()

    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder

    device = bench_device(args.device)
    encoder = load_encoder(EncoderConfig(model=str(make_full_clap(args.model_dir)), device=device), progress=False)
    work = args.work or Path(tempfile.mkdtemp(prefix="dgsearch-bench-search-"))
    rows = []
    for n in args.sizes:
        rows.append(bench_size(n, work, encoder, args.queries, args.text_queries, args.data))
        print(rows[-1], flush=True)
    table = [("N", "index", "build s", "recall@10", "QPS index", "QPS exact", "speed-up", "text enc ms (med/p95)",
              "FAISS ms", "SQLite ms", "total ms (med/p95)")]
    for r in rows:
        q = r["query_latency"]
        table.append((f"{r['n']:,}", f"{r['kind']} nprobe {r['nprobe']}" if r["kind"] != "flat" else "flat",
                      f"{r['build_s']:.1f}", f"{r['recall_at_10']:.3f}", f"{r['qps_index']:.0f}",
                      f"{r['qps_exact']:.1f}", f"{r['qps_ratio']:.0f}×",
                      f"{q['encode']['median_ms']:.1f}/{q['encode']['p95_ms']:.1f}",
                      f"{q['faiss']['median_ms']:.2f}/{q['faiss']['p95_ms']:.2f}",
                      f"{q['sqlite']['median_ms']:.2f}/{q['sqlite']['p95_ms']:.2f}",
                      f"{q['total']['median_ms']:.1f}/{q['total']['p95_ms']:.1f}"))
    notes = [("synthetic clustered vectors (N/500 clusters, anisotropic)" if args.data == "clustered" else
              "synthetic vectors with the spread of real embeddings (σ_i ∝ 1/i, a shared offset per modality: the"
              " queries come from the other side of a modality gap; a third near-duplicates; N/50 sources)")
             + ", see the script's docstring",
             "no DiffGAP bridge here: the bridged query (three searches, re-scoring) is timed by bench_query.py",
             (f"encoder: full-size CLAP architecture, random weights, text tower in {encoder.text_dtype}"
              if encoder.text_dtype is not None else "text queries not timed in this run (--text-queries 0)"),
             f"device: {device}; targets: recall@10 ≥ 0.95 at ≥ 10× exact QPS; median total ≤ 30 ms at 10⁶"]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("search" if args.data == "clustered" else "search_realistic", {"sizes": rows, "device": device}, table, notes, **kwargs)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
