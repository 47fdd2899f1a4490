"""One vector space at 10⁵-10⁷ windows under a memory budget (issue 23): the index type the rule chooses,
built in bounded memory, searched with exact re-scoring.

1. **Vectors**: the spread of ``bench_search.py --data realistic`` (anisotropic, one shared audio offset,
   text-side queries across the modality gap, a third near-duplicates), generated in chunks of 10⁵ into a
   float32 vector file read through ``np.memmap`` (the per-space vector file re-scoring reads).
2. **Build** (a child process, so its peak RSS is its own): the kind ``store/index_budget.choose_index``
   gives for ``--budget-mb``; trained on a sample (``index_choice.build_index``), then the path ``dgsearch
   index`` publishes a compressed index by (``store/ondisk_index.build_sharded``): filled in chunks into
   shards of ``--shard`` vectors written to disk, the shards merged into on-disk inverted lists
   (``faiss.contrib.ondisk.merge_ondisk``), the data file fsynced and CRC'd (``seal``). IVF-Flat (below the
   budget) is built the same way here, for comparison (``dgsearch`` keeps IVF-Flat in memory).
3. **Ground truth**: exact top-10 of every query, by chunked float32 products, re-ranked in float64.
4. **Query** (a child process): the merged index read back as a reader does (``IO_FLAG_MMAP |
   IO_FLAG_READ_ONLY``, then ``ondisk_index.map_data``: size and CRC-32 checked, ``index.ivfdata`` mapped
   read-only); one query at a time on one thread
   (as ``search_threads`` does for a query), FAISS's candidates (``(10 + 32) · rescore_factor`` for a
   compressed index, ``10 + 32`` for IVF-Flat, as ``search/scoring.py`` asks) re-scored exactly from the
   vector file; recall@10 against the ground truth, median / p95 of FAISS + re-scoring, RSS after.

    nice python benchmarks/bench_large_index.py --size 100000 --budget-mb 5 --out benchmarks/results/large_index_1e5.json
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
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, memory_status_mb, write_results  # noqa: E402

from diffgap_search.config import FaissConfig  # noqa: E402
from diffgap_search.store.index_budget import bytes_in_ram, choose_index, is_compressed  # noqa: E402

D = 512
CHUNK = 100_000
K = 10
CANDIDATES = K + 32  # search/scoring.py's first k for windows (group_by_file off)


def generate(path: Path, n: int, seed: int, n_queries: int) -> np.ndarray:
    """Writes ``n`` realistic unit vectors to ``path`` (float32, row-major) chunk by chunk; returns the
    ``(n_queries, D)`` text-side queries (``bench_search.realistic``'s spread, near-duplicates within a
    chunk)."""
    rng = np.random.default_rng(seed)
    n_sources = max(16, n // 50)
    spectrum = (1.0 / np.arange(1, D + 1)).astype(np.float32)
    basis, _ = np.linalg.qr(rng.standard_normal((D, D)))
    mix = (basis * spectrum).astype(np.float32) @ basis.T.astype(np.float32)
    sources = np.zeros((n_sources, D), np.float32)
    for lo in range(0, n_sources, CHUNK):
        hi = min(n_sources, lo + CHUNK)
        sources[lo:hi] = rng.standard_normal((hi - lo, D)).astype(np.float32) @ mix
    spread = float(np.linalg.norm(sources[:10_000], axis=1).mean())
    gap = rng.standard_normal((2, D)).astype(np.float32)
    gap *= spread * 1.2 / np.linalg.norm(gap, axis=1, keepdims=True)

    def draw(count: int, r: np.random.Generator, side: int) -> np.ndarray:
        x = sources[r.integers(0, n_sources, count)] + 0.7 * (r.standard_normal((count, D)).astype(np.float32) @ mix)
        x += gap[side]
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
    for lo in range(0, n, CHUNK):
        r = np.random.default_rng([seed, lo])
        part = draw(min(CHUNK, n - lo), r, 0)
        dup = r.random(len(part)) < 1 / 3
        src = r.integers(0, len(part), int(dup.sum()))
        noisy = part[src] + r.standard_normal((len(src), D)).astype(np.float32) * (1e-3 / np.sqrt(D))
        part[dup] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
        out[lo : lo + len(part)] = part
    out.flush()
    del out
    return draw(n_queries, np.random.default_rng([seed, 1 << 40]), 1)


def build(work: Path, kind: str, cfg: FaissConfig, shard: int) -> dict[str, float]:
    """Child process: trains on a sample, then publish's path (``store/ondisk_index.py``): chunks into shards of
    ``shard`` vectors on disk, merged by ``merge_ondisk`` into ``index.ivfdata``, made durable (``seal``);
    writes ``work/index.faiss`` (naming its data file by base name) and ``work/data.json`` (its size, CRC-32)."""
    from diffgap_search.libc import libc_function
    from diffgap_search.store import ondisk_index as ondisk
    from diffgap_search.store.faiss_files import write_atomic
    from diffgap_search.store.index_choice import build_index

    anon = AnonPeak()
    t0 = time.perf_counter()
    vecs = np.load(work / "vectors.npy", mmap_mode="r")
    wrapped = build_index(kind, D, vecs, cfg)
    index = wrapped if is_compressed(kind) else wrapped.index  # IVF keeps the ids itself: no IndexIDMap2
    t1 = time.perf_counter()
    trim = libc_function("malloc_trim")
    if trim is not None:  # hand back what training freed, so the fill's peak is its own
        trim(0)
    train_anon = anon.reset()
    after_train = anon.now()

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for lo in range(0, len(vecs), CHUNK):
            rows = np.ascontiguousarray(vecs[lo : lo + CHUNK])
            yield np.arange(lo, lo + len(rows), dtype=np.int64), rows

    times: dict[str, float] = {}

    def shard_file(i: int) -> Path:  # called as a shard is full: the time to here is encoding (add)
        times.setdefault("first_shard_s", time.perf_counter() - t1)
        times["add_s"] = time.perf_counter() - t1
        return work / f".shard{i}.tmp"

    merged, _ = ondisk.build_sharded(index, chunks(), work / ".index.ivfdata.tmp", shard_file, shard)
    t2 = time.perf_counter()
    size, crc = ondisk.seal(merged, work / ".index.ivfdata.tmp", work / "index.ivfdata")
    write_atomic(merged, work / "index.faiss")
    (work / "data.json").write_text(json.dumps({"size": size, "crc32": crc}))
    t3 = time.perf_counter()
    return {"train_s": t1 - t0, "add_s": times.get("add_s", t2 - t1), "merge_s": t2 - t1 - times.get("add_s", 0.0),
            "seal_s": t3 - t2, "build_s": t3 - t0,
            "build_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "train_peak_anon_mb": train_anon, "anon_after_train_mb": after_train,
            "fill_merge_peak_anon_mb": anon.reset()}


class AnonPeak:
    """The highest ``RssAnon`` (the process's own memory, without mapped file pages) seen since the last
    :meth:`reset`, sampled every 50 ms by a daemon thread."""

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(0.05)

    @staticmethod
    def now() -> float:
        """``RssAnon`` now, in MB."""
        return memory_status_mb("RssAnon")["RssAnon"]

    def reset(self) -> float:
        """The peak in MB so far; the next one starts from now (from the memory held now, which it includes)."""
        peak, self.peak = self.peak, 0.0
        return peak


def ground_truth(vecs: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """``(Q, k) int64`` exact top-k ids: float32 top-(4k) per chunk, re-ranked in float64."""
    best_s = np.full((len(queries), 0), -np.inf)
    best_i = np.zeros((len(queries), 0), np.int64)
    for lo in range(0, len(vecs), CHUNK):
        part = np.asarray(vecs[lo : lo + CHUNK])
        sims = queries @ part.T
        top = np.argpartition(-sims, min(4 * k, sims.shape[1] - 1), axis=1)[:, : 4 * k]
        best_i = np.concatenate([best_i, top + lo], axis=1)
        best_s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], axis=1)
        keep = np.argsort(-best_s, axis=1)[:, : 4 * k]
        best_i, best_s = np.take_along_axis(best_i, keep, 1), np.take_along_axis(best_s, keep, 1)
    out = np.zeros((len(queries), k), np.int64)
    for q in range(len(queries)):
        cand = np.sort(best_i[q])
        exact = np.asarray(vecs[cand], np.float64) @ queries[q].astype(np.float64)
        out[q] = cand[np.lexsort((cand, -exact))[:k]]
    return out


def query(work: Path, kind: str, cfg: FaissConfig) -> dict[str, object]:
    """Child process: opens the index memory-mapped, searches every query, re-scores from the vector file."""
    import faiss

    from diffgap_search.store.index_choice import set_search_params

    faiss.omp_set_num_threads(1)
    from diffgap_search.store import ondisk_index as ondisk
    from diffgap_search.store.faiss_files import read_checked

    data = json.loads((work / "data.json").read_text())  # as a reader opens a published generation
    index = read_checked(work / "index.faiss", None, None, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    ondisk.map_data(index, work / "index.ivfdata", data["size"], data["crc32"])  # checked, mapped read-only
    set_search_params(index, cfg)
    vecs = np.load(work / "vectors.npy", mmap_mode="r")
    queries = np.load(work / "queries.npy")
    n_cand = CANDIDATES * (cfg.rescore_factor if is_compressed(kind) else 1)
    found, faiss_ms, total_ms = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = index.search(q[None], n_cand)
        t1 = time.perf_counter()
        cand = np.sort(ids[0][ids[0] >= 0])
        exact = np.asarray(vecs[cand], np.float64) @ q.astype(np.float64)  # one sorted pass over the file
        top = cand[np.lexsort((cand, -exact))[:K]]
        t2 = time.perf_counter()
        found.append(top.tolist())
        faiss_ms.append((t1 - t0) * 1000)
        total_ms.append((t2 - t0) * 1000)
    status = memory_status_mb("VmRSS", "RssAnon", "RssFile", "RssShmem")
    # RssFile: pages of the memory-mapped vector file and lists, shared with the page cache (fault-around maps
    # up to 64 KB around each re-scored row); RssAnon: the process's own memory.
    return {"found": found, "faiss_ms": faiss_ms, "total_ms": total_ms, "query_rss_mb": status["VmRSS"],
            "query_rss_anon_mb": status.get("RssAnon"), "query_rss_file_mb": status.get("RssFile")}


def child(phase: str, work: Path, kind: str, cfg: FaissConfig, shard: int) -> dict[str, object]:
    """Runs ``phase`` in a fresh interpreter (its own peak RSS) and returns its JSON."""
    args = [sys.executable, __file__, "--phase", phase, "--work", str(work), "--kind", kind,
            "--nprobe", str(cfg.nprobe), "--shard", str(shard), "--pq-bytes", str(cfg.pq_bytes),
            "--opq-iterations", str(cfg.opq_iterations)]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{phase} failed ({out.returncode}): {out.stderr[-2000:]}")
    (work / f"{phase}.json").write_text(out.stdout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--budget-mb", type=float, default=None, help="the memory budget (default: none: IVF-Flat)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (an .md beside it); default benchmarks/results/")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--nprobe", type=int, default=FaissConfig().nprobe)
    ap.add_argument("--pq-bytes", type=int, default=FaissConfig().pq_bytes)
    ap.add_argument("--opq-iterations", type=int, default=FaissConfig().opq_iterations)
    ap.add_argument("--shard", type=int, default=1_000_000, help="vectors per shard before the on-disk merge")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--phase", choices=("build", "query"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cfg = FaissConfig(nprobe=args.nprobe, pq_bytes=args.pq_bytes, opq_iterations=args.opq_iterations)
    if args.phase is not None:
        fn = build if args.phase == "build" else query
        res = fn(args.work, args.kind, cfg, args.shard) if args.phase == "build" else fn(args.work, args.kind, cfg)
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        queries = generate(work / "vectors.npy", args.size, 0, args.queries)
        np.save(work / "queries.npy", queries)
        t_gen = time.perf_counter() - t0
        choice = choose_index(args.size, D, cfg, args.budget_mb)
        built = child("build", work, choice.kind, cfg, args.shard)
        truth = ground_truth(np.load(work / "vectors.npy", mmap_mode="r"), queries)
        res = child("query", work, choice.kind, cfg, args.shard)
        disk = sum(p.stat().st_size for p in work.glob("index.*"))
    found = res.pop("found")
    recall = float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))  # type: ignore[arg-type]
    fa, tot = np.asarray(res.pop("faiss_ms")), np.asarray(res.pop("total_ms"))  # type: ignore[arg-type]
    payload = {
        "size": args.size, "dim": D, "budget_mb": args.budget_mb, "kind": choice.kind, "reason": choice.reason,
        "recall_at_10": recall, "queries": args.queries, "nprobe": cfg.nprobe,
        "candidates": CANDIDATES * (cfg.rescore_factor if is_compressed(choice.kind) else 1),
        "estimated_ram_mb": bytes_in_ram(choice.kind, args.size, D) / 1e6,
        "disk_bytes_per_vector": disk / args.size, "vector_file_bytes_per_vector": 4 * D,
        "faiss_ms_median": float(np.median(fa)), "faiss_ms_p95": float(np.percentile(fa, 95)),
        "faiss_rescore_ms_median": float(np.median(tot)), "faiss_rescore_ms_p95": float(np.percentile(tot, 95)),
        "generate_s": t_gen, **built, **res, "loadavg": os.getloadavg(), "machine": machine(),
    }
    out = args.out or Path(__file__).resolve().parent / "results" / f"large_index_{args.size}.json"
    table = [("size", "kind", "recall@10", "FAISS+rescore median ms", "p95 ms", "build s", "build peak MB",
              "peak own (RssAnon) MB train / fill+merge", "query RSS MB (own)", "disk B/vector"),
             (str(args.size), choice.kind, f"{recall:.3f}", f"{payload['faiss_rescore_ms_median']:.2f}",
              f"{payload['faiss_rescore_ms_p95']:.2f}", f"{payload['build_s']:.0f}",
              f"{payload['build_peak_rss_mb']:.0f}",
              f"{payload['train_peak_anon_mb']:.0f} / {payload['fill_merge_peak_anon_mb']:.0f}"
              f" (from {payload['anon_after_train_mb']:.0f})",
              f"{payload['query_rss_mb']:.0f} ({payload['query_rss_anon_mb']:.0f})",
              f"{payload['disk_bytes_per_vector']:.0f}")]
    write_results(out.stem, payload, table, [choice.reason, f"load average {os.getloadavg()}"], out_dir=out.parent)
    print(json.dumps({k: v for k, v in payload.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
