"""Which search mode finds real described sounds: ``dgsearch query``'s semantic, keyword and hybrid rankings, and
two other reciprocal-rank fusions, on a library of five Debian packages indexed and trained by the CLI itself.

The library is the real-gap table (``packages.py``: 743 sounds of qabcs-data, tuxpaint-stamps-default, scratch,
minetest-data and lmms-common, each file under ``<package>/<last three path parts>``), indexed by ``dgsearch
index --model aisfx --text-model wordllama`` and bridged by ``dgsearch train`` with its defaults (weak captions:
the file names), as a user with that library would. Queries, each with its relevant files:

- ``sentence``: tuxpaint's own English sentences ("A large metal mallet.", first line of ``NAME.txt``), written by
  its authors, not by us: words that only partly meet the file names (``mallet_metal.ogg``);
- ``name``: the other packages' descriptions, which are their cleaned file names ("bass acid"): the case where
  the words are in the names;
- ``category``: the canonical categories in ``run.py``'s words (``packages.CATEGORY_QUERIES``: "a musical
  instrument", "a percussion hit" ...), every file of that category relevant.

Rankings, all through the product's own code (``Searcher.search``, ``search.keyword``): ``semantic`` and
``keyword`` (``--mode``), ``hybrid`` (the default mode: coverage-weighted RRF, ``search/keyword.py``), and, fused
by ``keyword.fuse_groups`` from the same two rankings cut at the same depth: ``hybrid_ties_by_path`` (hybrid with
equal fused scores ordered by path, as before 2026-12-07, not the keyword ranking's file first), ``rrf_plain`` (no coverage weight)
and ``rrf_relative`` (the coverage divided by the best coverage among the keyword hits, so the best partial match
weighs as a full one when no file holds every word); and ``keyword_stemmed``: the same keyword rows and BM25 in an
FTS5 table with the ``porter`` tokenizer (stemming) in front of ``unicode61``, the product's; ``keyword_fts5`` and
``hybrid_fts5``: the keyword and hybrid rankings with FTS5's own ``bm25()`` (one length for the whole row) in place
of the product's BM25F (each column normalised by its own length, ``store/bm25f.py``), as before 2026-12-06.
R@1, R@10 and mAP@10 (percent, ``gap.metrics``) per kind.

``--index DIR`` judges an index of the packages' own folders instead (``dgsearch index`` of the cache folder: every
recording of the six packages, 10,140 with wesnoth's, at their real depths, the described ones among them): the
same questions, the relevant files at their real paths, every other recording a distractor.

    python benchmarks/real_gap/hybrid.py --out-dir benchmarks/results   # real_gap_hybrid.{md,json}
    python benchmarks/real_gap/hybrid.py --index IX --out-dir benchmarks/results   # real_gap_hybrid_full.{md,json}
    python benchmarks/real_gap/hybrid.py --pinpoint --out-dir benchmarks/results   # + semantic_pinpoint: *_pinpoint.*
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import machine  # noqa: E402
from fts5_ranking import row_length_bm25  # noqa: E402
from outputs import command_line, report  # noqa: E402
from packages import CATEGORY_QUERIES, PACKAGES, Sound, build_table  # noqa: E402

RULES = ("semantic", "keyword", "hybrid", "hybrid_ties_by_path", "rrf_plain", "rrf_relative", "keyword_stemmed",
         "keyword_fts5", "hybrid_fts5")
KINDS = ("sentence", "name", "category")
SHOWN = ("R@1", "R@10", "mAP@10")


def library(sounds: Sequence[Sound], cache: Path, folder: Path) -> dict[str, Sound]:
    """Copy every sound to ``folder/<package>/<last three parts of its path>`` (once); path -> sound."""
    out = {}
    for s in sounds:
        rel = Path(s.path).relative_to(cache / s.package)
        dst = folder / s.package / Path(*rel.parts[-3:])
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.path, dst)
        out[str(dst.resolve())] = s
    return out


def queries(files: Mapping[str, Sound]) -> list[tuple[str, str, set[str]]]:
    """``(kind, text, relevant paths)``: sentences (tuxpaint), names (the others' descriptions), categories."""
    found: dict[tuple[str, str], set[str]] = {}
    for path, s in files.items():
        kind = "sentence" if s.package == "tuxpaint-stamps-default" else "name"
        found.setdefault((kind, s.description), set()).add(path)
        if s.category in CATEGORY_QUERIES:
            found.setdefault(("category", CATEGORY_QUERIES[s.category]), set()).add(path)
    return [(kind, text, rel) for (kind, text), rel in sorted(found.items())]


def dgsearch(*args: str) -> None:
    """Run the CLI as a user does (a fresh process), offline; stop on failure."""
    cmd = [sys.executable, "-c", "from diffgap_search.cli.app import main; main()", *args]
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)


def rankings(index: Path, asked: Sequence[tuple[str, str, set[str]]], depth: int,
             pinpoint: bool = False) -> list[dict[str, list[str]]]:
    """Per query, each rule's ranked paths (best first, at most ``depth``); with ``pinpoint``, also
    ``semantic_pinpoint``: ``--mode semantic --pinpoint``'s hits, scored and ordered by their narrowed seconds."""
    from diffgap_search.config import SearchConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search.keyword import HYBRID_DEPTH, fuse_groups, keyword_groups
    from diffgap_search.search.searcher import Searcher
    from diffgap_search.search.types import Query
    from diffgap_search.store import keywords

    out = []
    with Searcher(index, lambda c: load_encoder(c, progress=False), device="cpu") as s:
        stemmed = stemmed_keywords(s.catalog.conn)
        for _kind, text, _rel in asked:
            sem = s.search(Query(text=text), SearchConfig(top_k=HYBRID_DEPTH, mode="semantic")).hits
            terms = keywords.informative_tokens(s.catalog, text)
            words = keyword_groups(s.catalog, terms, HYBRID_DEPTH, allowed=None, all_copies=False)
            cover = keywords.coverage(s.catalog, terms, [h.file_id for g in words for h in g])
            best = max(cover.values(), default=0.0) or 1.0
            served = fuse_groups([[h] for h in sem], words, coverage=cover)
            fused = {"hybrid_ties_by_path": sorted(served, key=lambda h: (-h.score, h.path, h.start_s)),
                     "rrf_plain": fuse_groups([[h] for h in sem], words),
                     "rrf_relative": fuse_groups([[h] for h in sem], words,
                                                 coverage={f: c / best for f, c in cover.items()})}
            hybrid = s.search(Query(text=text), SearchConfig(top_k=depth, mode="hybrid")).hits
            with row_length_bm25():
                words_fts5 = keyword_groups(s.catalog, terms, HYBRID_DEPTH, allowed=None, all_copies=False)
                hybrid_fts5 = s.search(Query(text=text), SearchConfig(top_k=depth, mode="hybrid")).hits
            row = {"semantic": [h.path for h in sem], "keyword": [h.path for g in words for h in g],
                   "hybrid": [h.path for h in hybrid], **{k: [h.path for h in v] for k, v in fused.items()},
                   "keyword_stemmed": stemmed(text, depth),
                   "keyword_fts5": [h.path for g in words_fts5 for h in g], "hybrid_fts5": [h.path for h in hybrid_fts5]}
            if pinpoint:
                row["semantic_pinpoint"] = [h.path for h in s.search(
                    Query(text=text), SearchConfig(top_k=depth, mode="semantic", pinpoint=True)).hits]
            out.append({k: [str(Path(p).resolve()) for p in v][:depth] for k, v in row.items()})
    return out


def stemmed_keywords(conn: sqlite3.Connection) -> Callable[[str, int], list[str]]:
    """The catalog's keyword rows copied into an in-memory FTS5 table that stems (``porter unicode61
    remove_diacritics 2``); returns ``search(text, k) -> paths``, ranked by ``store/keywords``' own code, as
    ``--mode keyword`` ranks (the same words kept, MATCH expression, BM25 column weights and tie order)."""
    from types import SimpleNamespace

    from diffgap_search.store import keywords

    mem = sqlite3.connect(":memory:")
    mem.execute("CREATE VIRTUAL TABLE keywords USING fts5(name, folders, captions, tags,"
                " tokenize = 'porter unicode61 remove_diacritics 2')")
    mem.executemany("INSERT INTO keywords(rowid, name, folders, captions, tags) VALUES (?, ?, ?, ?, ?)",
                    conn.execute("SELECT rowid, name, folders, captions, tags FROM keywords"))
    stemmed = SimpleNamespace(conn=mem)  # what store/keywords reads of a catalog: its connection
    paths = dict(conn.execute("SELECT id, path FROM files"))

    def search(text: str, k: int) -> list[str]:
        terms = keywords.informative_tokens(stemmed, text)
        return [paths[fid] for fid, _ in keywords.ranked_files(stemmed, terms, limit=k)]

    return search


NOT_FOUND = 10**6  # the rank of a relevant file a ranking does not hold: past every cutoff


def scores(ranked: Sequence[str], relevant: set[str]) -> tuple[np.ndarray, int]:
    """The 1-based ranks of the relevant paths in ``ranked``, then :data:`NOT_FOUND` for each one it lacks."""
    found = sorted(i + 1 for i, p in enumerate(ranked) if p in relevant)
    return np.array(found + [NOT_FOUND] * (len(relevant) - len(found)), dtype=np.int64), len(relevant)


def metrics(rows: Sequence[dict[str, list[str]]], asked: Sequence[tuple[str, str, set[str]]]) -> dict[str, Any]:
    """kind -> rule -> {R@1, R@10, mAP@10} and the number of queries."""
    from diffgap_search.gap.metrics import cutoff_metrics

    out: dict[str, Any] = {}
    for kind in KINDS:
        idx = [i for i, q in enumerate(asked) if q[0] == kind]
        if not idx:
            continue
        out[kind] = {"queries": len(idx)}
        for rule in [r for r in (*RULES, "semantic_pinpoint") if r in rows[idx[0]]]:
            per = [scores(rows[i][rule], asked[i][2]) for i in idx]
            width = max(len(r) for r, _ in per)
            ranks = np.zeros((len(per), width), dtype=np.int64)
            for j, (r, _) in enumerate(per):
                ranks[j, :len(r)] = r
            m = cutoff_metrics(ranks, np.array([n for _, n in per], dtype=np.float64), ks=(1, 10))
            out[kind][rule] = {k: round(m[k], 1) for k in SHOWN}
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Search modes on real described sounds", "",
             f"- {m['processor']}, {m['cpus_usable']} CPUs ({', '.join(m['cpu_flags'])}), torch {m['torch']}, faiss"
             f" {m['faiss']}", f"- command: `{result['command']}`",
             (f"- library: {result['files']} files of {', '.join(PACKAGES)}" if result["indexed"] == result["files"] else
              f"- library: the packages' own folders, {result['indexed']} files at their real depths (their sidecar"
              f" captions indexed too), {result['files']} of them the described files of {', '.join(PACKAGES)}")
             + ", indexed with aisfx + WordLlama, bridge"
             f" {result['bridge'][:12]} trained by `dgsearch train` (defaults: weak captions from the names)",
             f"- {result['seconds']:.0f} s in all", ""]
    for kind, per in result["metrics"].items():
        lines += [f"**{kind}** ({per['queries']} queries)", "", "| rule | R@1 | R@10 | mAP@10 |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {rule} | " + " | ".join(f"{per[rule][k]:.1f}" for k in SHOWN) + " |"
                  for rule in (*RULES, "semantic_pinpoint") if rule in per]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgsearch-real-gap")
    ap.add_argument("--work", type=Path, default=None, help="library copy and index (default <cache-dir>/hybrid)")
    ap.add_argument("--depth", type=int, default=10, help="hits ranked per query")
    ap.add_argument("--index", type=Path, default=None,
                    help="judge this index of the cache folder itself (real depths, every recording) instead")
    ap.add_argument("--pinpoint", action="store_true", help="also rank by --mode semantic --pinpoint (its hits"
                    " ordered by their narrowed seconds; about 2 s a query on 2 cores)")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    work = args.work or args.cache_dir / "hybrid"
    sounds, _ = build_table(args.cache_dir, PACKAGES)
    if args.index is not None:
        files = {str(Path(s.path).resolve()): s for s in sounds}
        index = args.index
    else:
        files = library(sounds, args.cache_dir, work / "library")
        index = work / "index"
        dgsearch("index", str(work / "library"), "--index", str(index), "--model", "aisfx", "--text-model", "wordllama")
    if not list(index.glob("bridge-*.safetensors")):
        dgsearch("train", "--index", str(index), "--threads", "1")
    asked = queries(files)
    rows = rankings(index, asked, args.depth, args.pinpoint)
    bridge = next(index.glob("bridge-*.safetensors")).stem.removeprefix("bridge-")
    with sqlite3.connect(index / "catalog.sqlite") as conn:
        indexed = conn.execute("SELECT count(*) FROM files WHERE status = 'ok'").fetchone()[0]
    result = {"machine": machine(), "files": len(files), "indexed": indexed, "bridge": bridge,
              "command": command_line("hybrid.py", argv),
              "metrics": metrics(rows, asked), "seconds": round(time.perf_counter() - started, 1)}
    name = "real_gap_hybrid" if args.index is None else "real_gap_hybrid_full"
    report(args.out_dir, name + ("_pinpoint" if args.pinpoint else ""), markdown(result), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
