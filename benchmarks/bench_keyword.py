"""Keyword and hybrid query latency on synthetic sound libraries of 10⁴ and 10⁵ files.

Each file gets a library-style name (``DOOR_Wood_Slam_Heavy_0042.wav`` from a UCS-like vocabulary), a folder,
two tags (title, keywords), one window and a random 512-d unit vector, written through the real catalog code
(``Catalog.put_file`` + ``store.tags.put_file_meta``, so the FTS5 rows are the ones indexing writes); the
audio space is published as ``dgsearch index`` would (IVF at 10⁵).

Timed, in a warm process, over the same 50 seeded 1–3-word queries:

- ``keyword``: ``search_keyword`` (FTS5 + BM25F + hit rows + tags), ``top_k`` 10; ``keyword_fts5``: the same with
  FTS5's own ``bm25()`` ranking (the ranking before BM25F, ``fts5_ranking.py``);
- baseline: the obvious scan without a full-text index — ``path LIKE '%word%'`` OR'ed over the words, ranked
  by the number of words matched (same catalog, same SQLite);
- ``semantic``: ``Searcher.search`` in semantic mode; ``hybrid``: the same in hybrid mode (semantic ranking
  to depth 50 + keyword ranking + reciprocal-rank fusion). The text encoder is a fixed hashing projection
  here (≈ 0 ms), so both figures exclude CLAP's text tower (≈ 26 ms on 2 cores, see bench_search.py): the
  difference hybrid − semantic is what keyword fusion adds;
- cold: ``dgsearch query --mode keyword`` as a new process (interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, write_results
from fts5_ranking import row_length_bm25

DIM = 512
CATEGORIES = ["DOOR", "GLASS", "WATER", "FIRE", "CROWD", "VEHICLE", "WIND", "METAL", "WOOD", "FOOTSTEPS",
              "IMPACT", "WHOOSH", "BIRDS", "RAIN", "MACHINE", "ALARM", "GUNSHOT", "UI", "ROBOT", "CREATURE"]
WORDS = ("Wood Metal Slam Creak Heavy Light Small Large Distant Close Open Close Squeak Rattle Hit Scrape "
         "Splash Drip Flow Crackle Roar Cheer Applause Engine Idle Pass Horn Gust Howl Clang Ring Knock Step "
         "Gravel Snow Grass Concrete Shatter Break Thud Boom Swish Chirp Song Drizzle Storm Motor Servo Beep "
         "Click Siren Shot Reload Growl Hiss Squelch Rumble Buzz Hum Tick").split()


class HashText:
    """A text "encoder" for timing search alone: words hashed to a fixed random projection, L2-normalised."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def embed_text(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[row] += np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out


def build(index_dir: Path, n: int, rng: np.random.Generator) -> float:
    from diffgap_search.config import FaissConfig
    from diffgap_search.media.tags import FileTags
    from diffgap_search.store.catalog import Catalog, SegmentInput
    from diffgap_search.store.tags import put_file_meta
    from diffgap_search.store.vector_index import publish

    t0 = time.perf_counter()
    with Catalog.open(index_dir, create=True) as cat:
        cat.set_meta({"encoder": {"model": "hash", "fingerprint": "0" * 64, "dim": DIM, "sample_rate": 48_000,
                                  "modalities": ["audio", "text"]},
                      "window": {"window_s": 10.0, "hop_s": 10.0, "sample_rate": 48_000}})
        for start in range(0, n, 5000):
            with cat.batch():
                for i in range(start, min(n, start + 5000)):
                    cat_name = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
                    words = [WORDS[int(j)] for j in rng.integers(len(WORDS), size=3)]
                    path = f"/library/{cat_name.title()}/{cat_name}_{'_'.join(words)}_{i:05d}.wav"
                    vec = rng.standard_normal(DIM).astype(np.float32)
                    fid = cat.put_file(path_key=path.encode(), path=path, kind="audio", size=i, mtime_ns=i,
                                       sha256=f"{i:064x}", duration_s=float(1 + i % 20),
                                       segments=[SegmentInput(0.0, 10.0, {"audio": vec / np.linalg.norm(vec)})])
                    put_file_meta(cat, fid, FileTags(
                        (("title", " ".join(words[:2]).lower()), ("keywords", f"{cat_name.lower()}, {words[2].lower()}")),
                        48_000, 2))
        publish(index_dir, cat, "audio", DIM, FaissConfig())
    return time.perf_counter() - t0


def like_baseline(conn, text: str, k: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Files whose path holds any of the words (case-insensitive LIKE scan), most words first, by path."""
    words = [w for w in text.lower().split() if w]
    score = " + ".join("(lower(path) LIKE ?)" for _ in words)
    sql = (f"SELECT id FROM (SELECT id, path, {score} AS s FROM files WHERE status = 'ok') WHERE s > 0"
           " ORDER BY s DESC, path LIMIT ?")
    return [r[0] for r in conn.execute(sql, [f"%{w}%" for w in words] + [k])]


def timed(fn, queries: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for q in queries[:3]:
        fn(q)  # warm-up
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def bench_size(n: int, work: Path, n_queries: int) -> dict:
    from diffgap_search.config import SearchConfig
    from diffgap_search.search.keyword import search_keyword
    from diffgap_search.search import Query, Searcher

    rng = np.random.default_rng(n)
    index_dir = work / f"ix{n}"
    build_s = build(index_dir, n, rng)
    qrng = np.random.default_rng(1)
    vocab = [w.lower() for w in WORDS] + [c.lower() for c in CATEGORIES]
    queries = [" ".join(vocab[int(j)] for j in qrng.integers(len(vocab), size=int(qrng.integers(1, 4))))
               for _ in range(n_queries)]
    encoder = HashText(DIM)
    row: dict = {"files": n, "build_s": round(build_s, 1)}
    with Searcher(index_dir, lambda _cfg: encoder, device="cpu") as s:
        s.opened._encoder = encoder  # no fingerprint binding: a timing encoder, not a model
        kw = SearchConfig(top_k=10, mode="keyword")
        row["keyword_ms"] = timed(lambda q: search_keyword(s.catalog, q, kw), queries)
        with row_length_bm25():
            row["keyword_fts5_ms"] = timed(lambda q: search_keyword(s.catalog, q, kw), queries)
        row["like_scan_ms"] = timed(lambda q: like_baseline(s.catalog.conn, q, 10), queries)
        row["semantic_ms"] = timed(lambda q: s.search(Query(text=q), SearchConfig(top_k=10, mode="semantic")), queries)
        row["hybrid_ms"] = timed(lambda q: s.search(Query(text=q), SearchConfig(top_k=10, mode="hybrid")), queries)
        hits = [len(search_keyword(s.catalog, q, SearchConfig(top_k=10_000_000, mode="keyword")).hits) for q in queries]
        row["matches_per_query_median"] = int(statistics.median(hits))
    exe = Path(sys.executable).with_name("dgsearch")
    cold = []
    for q in queries[:5]:
        t0 = time.perf_counter()
        subprocess.run([str(exe), "query", q, "--mode", "keyword", "--index", str(index_dir), "--json"],
                       check=True, capture_output=True)
        cold.append((time.perf_counter() - t0) * 1000)
    row["cold_cli_keyword_ms"] = statistics.median(cold)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-keyword-") as tmp:
        for n in args.sizes:
            rows.append(bench_size(n, Path(tmp), args.queries))
            print(rows[-1], flush=True)

    def ms(pair: tuple[float, float]) -> str:
        return f"{pair[0]:.2f}/{pair[1]:.2f}"

    table = [("files", "build s", "matches/query (median)", "keyword ms (med/p95)", "FTS5 bm25() ms", "LIKE scan ms (med/p95)",
              "speed-up", "semantic ms", "hybrid ms", "hybrid − semantic ms", "cold CLI keyword ms")]
    for r in rows:
        table.append((f"{r['files']:,}", r["build_s"], r["matches_per_query_median"], ms(r["keyword_ms"]),
                      ms(r["keyword_fts5_ms"]),
                      ms(r["like_scan_ms"]), f"{r['like_scan_ms'][0] / r['keyword_ms'][0]:.1f}×",
                      ms(r["semantic_ms"]), ms(r["hybrid_ms"]), f"{r['hybrid_ms'][0] - r['semantic_ms'][0]:.2f}",
                      f"{r['cold_cli_keyword_ms']:.0f}"))
    write_results("keyword", {"rows": rows}, table, notes=[
        "keyword: BM25F over names, folders, captions and tags (store/bm25f.py), then hit rows and tags (top 10)",
        "FTS5 bm25(): the same with FTS5's own ranking (one length for the whole row), the ranking before BM25F",
        "baseline: LIKE '%word%' over paths, ranked by words matched (no full-text index)",
        "semantic/hybrid exclude the text encoder (a hashing projection here); CLAP's text tower adds ≈ 26 ms",
        "cold CLI: a new `dgsearch query --mode keyword` process, interpreter start and imports included (no model)",
    ])
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
