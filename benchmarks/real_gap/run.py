"""Real sounds, real words: a DiffGAP bridge from WordLlama (text) to aisfx (audio), judged on held-out
described sounds from Debian packages, against the keyword search a sound-library user has today.

One command fetches and unpacks the packages into a cache (``apt-get download`` + ``dpkg -x``, no root, never
committed), builds the table of described sounds (``packages.py``), embeds every file with aisfx (10 s
windows at 44.1 kHz, as ``dgsearch index --model aisfx`` does) and every text with WordLlama (zero-padded to
512, as ``--text-model wordllama`` does), then for each split and seed trains a bridge on the training files'
texts (the description and the package's category label: one pair per window and text, grouped by file
hash) with ``gap.training.train_bridge`` and the defaults of ``dgsearch train``, and scores the held-out
files (``methods.py``) for two kinds of query:

- ``description``: each held-out description (relevant: the held-out files with that very description);
- ``category``: a phrase per canonical category ("an animal", "a percussion hit"; relevant: the held-out
  files of that category).

Splits: ``file`` (a seeded fifth of the files held out, by hash) and ``package`` (each package held out in
turn: train on the others, query it). Every held-out file's hash and texts are checked absent from training.
Metrics (percent): R@1, R@10, mAP@10 (``gap.metrics.retrieval_metrics``), mean ± sd over the seeds.

    python benchmarks/real_gap/run.py --out-dir benchmarks/results   # real_gap.{json,md}, _queries.jsonl, _failures.md
    python benchmarks/real_gap/run.py --seeds 0 --epochs 5  # a quick look (writes nothing unless --out-dir)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import keyword_scores, names_keyword_scores, rrf, semantic_scores  # noqa: E402
from outputs import command_line, write_outputs  # noqa: E402
from packages import CATEGORY_QUERIES, PACKAGES, Sound, build_table  # noqa: E402

from diffgap_search.gap.metrics import retrieval_metrics  # noqa: E402
from diffgap_search.gap.train_config import ANCHOR_KINDS  # noqa: E402

METHODS = ("random", "raw", "ridge", "procrustes", "diffgap", "diffgap_served", "keyword", "hybrid", "names_keyword")
SHOWN = ("R@1", "R@10", "mAP@10")


def embed_audio(sounds: list[Sound], cache: Path) -> dict[str, np.ndarray]:
    """sha256 -> ``(W, 512) float32`` aisfx windows as an index embeds them (``embed_windows``: aisfx's
    preprocessing version 2, a short file from its own samples), cached in ``cache/aisfx_windows_v2.npz`` (the
    figures before 2026-12-06 came from version 1's ``aisfx_windows.npz``)."""
    from diffgap_search.config import EncoderConfig, WindowConfig
    from diffgap_search.encoders.base import embed_windows
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.media.audio import load_audio
    from diffgap_search.media.windows import window_audio

    store = cache / "aisfx_windows_v2.npz"
    done: dict[str, np.ndarray] = dict(np.load(store)) if store.exists() else {}
    todo = [s for s in sounds if s.sha256 not in done]
    if todo:
        encoder = load_encoder(EncoderConfig(model="aisfx", device="cpu", batch_size=8))
        window = WindowConfig(10.0, 10.0, encoder.sample_rate)
        started = time.perf_counter()
        n = 0
        for i, s in enumerate(todo):
            windows = window_audio(load_audio(Path(s.path), window.sample_rate), window)
            done[s.sha256] = embed_windows(encoder, windows.samples, windows.ends - windows.starts)
            n += len(windows)
            if i % 50 == 49:
                print(f"  embedded {i + 1}/{len(todo)} files, {n / (time.perf_counter() - started):.1f} windows/s",
                      file=sys.stderr)
        np.savez(store, **done)
    return {s.sha256: done[s.sha256] for s in sounds}


def texts_of(s: Sound) -> list[str]:
    """A training file's texts: its description and its category label (once when equal)."""
    return list(dict.fromkeys([s.description, s.label]))


def file_split(sounds: list[Sound], seed: int) -> np.ndarray:
    """``(N,) bool``: the held-out fifth, by a seeded hash of each file's content hash."""
    return np.array([int(hashlib.sha256(f"{seed}:{s.sha256}".encode()).hexdigest()[:8], 16) % 5 == 0
                     for s in sounds])


def check_no_leak(train: list[Sound], test: list[Sound]) -> int:
    """Refuse a held-out file whose content is in training; returns how many held-out descriptions also
    describe some (other) training file: allowed, that file's own words, but counted in the report."""
    assert not {s.sha256 for s in train} & {s.sha256 for s in test}, "a held-out file's content is in training"
    train_texts = {t.lower() for s in train for t in texts_of(s)}
    return sum(s.description.lower() in train_texts for s in test)


def training_pairs(train: list[Sound], audio: dict[str, np.ndarray],
                   encoder: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The bridge's training rows: every window of a training file paired with each of its texts ->
    ``({"audio": (N, 512), "text": (N, 512)} float32, (N,) object groups: the file's hash)``."""
    rows_a, rows_t, groups = [], [], []
    for s in train:
        tv = encoder.embed_text(texts_of(s))
        for w in audio[s.sha256]:
            for v in tv:
                rows_a.append(w)
                rows_t.append(v)
                groups.append(s.sha256)
    pairs = {"audio": np.stack(rows_a).astype(np.float32), "text": np.stack(rows_t).astype(np.float32)}
    return pairs, np.array(groups, dtype=object)


def run_split(sounds: list[Sound], test_mask: np.ndarray, audio: dict[str, np.ndarray], encoder: Any,
              seed: int, epochs: int, anchor_kind: str = "auto") -> dict[str, Any]:
    """Train on ``~test_mask``, score the held-out files: per query kind, method -> metrics, and per-query ranks."""
    from diffgap_search.gap.training import TrainConfig, train_bridge

    train = [s for s, t in zip(sounds, test_mask) if not t]
    test = [s for s, t in zip(sounds, test_mask) if t]
    shared_words = check_no_leak(train, test)
    pairs, groups = training_pairs(train, audio, encoder)
    owner_texts = [t for s in train for t in texts_of(s)]
    owner_idx = [fi for fi, s in enumerate(train) for _ in texts_of(s)]
    t0 = time.perf_counter()
    cfg = TrainConfig(seed=seed, epochs=epochs, anchor_kind=anchor_kind, separate_spaces=("text",))  # as dgsearch train
    bridge, report = train_bridge(pairs, cfg=cfg,
                                  encoder_fingerprints={"audio": "aisfx", "text": "wordllama"},
                                  groups=groups)
    train_s = time.perf_counter() - t0
    windows = np.concatenate([audio[s.sha256] for s in test]).astype(np.float32)
    owner = np.concatenate([[i] * len(audio[s.sha256]) for i, s in enumerate(test)])

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    test_files = unit(np.stack([audio[s.sha256].mean(0) for s in test]))
    train_files = unit(np.stack([audio[s.sha256].mean(0) for s in train]))
    out: dict[str, Any] = {"train_files": len(train), "test_files": len(test), "train_pairs": len(groups),
                           "shared_descriptions": shared_words, "train_s": round(train_s, 1),
                           "anchor": bridge.selection.get("anchor_kind", {}),
                           "anchor_evidence": bridge.selection.get("anchor_evidence", {}),
                           "fusion": bridge.fusion_for("text", "audio").to_dict()}
    descriptions = sorted({s.description for s in test})
    categories = sorted({s.category for s in test} & set(CATEGORY_QUERIES))
    kinds = {
        "description": (descriptions, np.array([descriptions.index(s.description) for s in test]),
                        np.arange(len(descriptions))),
        "category": ([CATEGORY_QUERIES[c] for c in categories],
                     np.array([categories.index(s.category) if s.category in categories else -1 for s in test]),
                     np.arange(len(categories))),
    }
    names = [Path(s.path).stem for s in test]
    for kind, (queries, item_labels, query_labels) in kinds.items():
        if not queries:
            continue
        q = encoder.embed_text(queries)
        scores = semantic_scores(q, windows, owner, len(test), bridge)
        scores["keyword"] = keyword_scores(queries, owner_texts, np.array(owner_idx), train_files, test_files, seed)
        scores["hybrid"] = rrf(scores["diffgap_served"], scores["keyword"])
        scores["names_keyword"] = names_keyword_scores(queries, [n.replace("_", " ") for n in names], seed)
        scores["random"] = np.random.default_rng(seed).random((len(queries), len(test))).astype(np.float32)  # chance
        out[kind] = {"queries": len(queries),
                     "metrics": {m: retrieval_metrics(scores[m], query_labels, item_labels) for m in METHODS}}
        out[kind]["per_query"] = [
            {"query": text, "relevant": [names[j] for j in np.flatnonzero(item_labels == qi)][:5],
             **{m: _first_rank(scores[m][qi], item_labels == qi) for m in ("diffgap_served", "keyword", "hybrid")},
             "served_top3": [names[j] for j in np.argsort(-scores["diffgap_served"][qi], kind="stable")[:3]]}
            for qi, text in enumerate(queries)]
    return out


def _first_rank(scores: np.ndarray, relevant: np.ndarray) -> int:
    order = np.argsort(-scores, kind="stable")
    return int(np.flatnonzero(relevant[order])[0]) + 1


def summarise(runs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, list[float]]]:
    """method -> metric -> [mean, sd] over ``runs``."""
    out: dict[str, dict[str, list[float]]] = {}
    for m in METHODS:
        vals = {k: [r[kind]["metrics"][m][k] for r in runs if kind in r] for k in SHOWN}
        out[m] = {k: [round(float(np.mean(v)), 1), round(float(np.std(v)), 1)] for k, v in vals.items() if v}
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Real gap: WordLlama -> aisfx on described Debian sounds", "",
             f"`{result['command']}` — {result['date']}, {result['machine']}", "",
             f"{result['table']['sounds']} sounds ({result['table']['duplicates_dropped']} identical files dropped): "
             + ", ".join(f"{k} {v}" for k, v in result['table']['by_package'].items()), ""]
    for split, per in result["summary"].items():
        for kind, methods in per.items():
            lines += [f"## {split} split, {kind} queries", "", "| method | R@1 | R@10 | mAP@10 |", "| --- | ---: | ---: | ---: |"]
            for m, v in methods.items():
                lines.append(f"| {m} | " + " | ".join(f"{v[k][0]:.1f} ± {v[k][1]:.1f}" for k in SHOWN if k in v) + " |")
            lines.append("")
    return "\n".join(lines)


def failures_markdown(result: dict[str, Any]) -> str:
    lines = ["# Real gap: per-query results (seed 0)", "",
             "Rank of the first relevant held-out file for the served bridge, the keyword baseline and hybrid; "
             "a query is listed when the served bridge misses the top 10.", ""]
    for name, run in result["seed0"].items():
        for kind in ("description", "category"):
            if kind not in run:
                continue
            rows = [p for p in run[kind]["per_query"] if p["diffgap_served"] > 10]
            lines += [f"## {name}, {kind} ({len(rows)} of {run[kind]['queries']} queries miss the top 10)", "",
                      "| query | relevant | served | keyword | hybrid | served top 3 |", "| --- | --- | ---: | ---: | ---: | --- |"]
            lines += [f"| {p['query']} | {', '.join(p['relevant'])} | {p['diffgap_served']} | {p['keyword']} | "
                      f"{p['hybrid']} | {', '.join(p['served_top3'])} |" for p in rows]
            lines.append("")
    return "\n".join(lines)


def without_queries(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` less the per-query rows of seed 0 (written apart, one line each: ``queries_jsonl``)."""
    seed0 = {name: {k: ({kk: vv for kk, vv in v.items() if kk != "per_query"} if k in ("description", "category") else v)
                    for k, v in run.items()} for name, run in result["seed0"].items()}
    return {**result, "seed0": seed0}


def queries_jsonl(result: dict[str, Any]) -> str:
    """Every query of seed 0, one JSON line each: split, kind, query, relevant files, ranks, served top 3."""
    return "".join(json.dumps({"split": name, "kind": kind, **row}, ensure_ascii=False) + "\n"
                   for name, run in result["seed0"].items() for kind in ("description", "category") if kind in run
                   for row in run[kind]["per_query"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgsearch-real-gap")
    ap.add_argument("--packages", nargs="+", default=list(PACKAGES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--anchor-kind", default="auto", choices=ANCHOR_KINDS,
                    help="the bridges' linear anchor (TrainConfig.anchor_kind; default: chosen on validation)")
    args = ap.parse_args(argv)
    import torch

    from diffgap_search.encoders.wordllama.encoder import load_wordllama_encoder

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sounds, dropped = build_table(args.cache_dir, tuple(args.packages))
    t0 = time.perf_counter()
    audio = embed_audio(sounds, args.cache_dir)
    embed_s = time.perf_counter() - t0
    encoder = load_wordllama_encoder(512)
    runs: dict[str, list[dict[str, Any]]] = {"file": [], "package": []}
    seed0: dict[str, Any] = {}
    for seed in args.seeds:
        r = run_split(sounds, file_split(sounds, seed), audio, encoder, seed, args.epochs, args.anchor_kind)
        runs["file"].append(r)
        print(f"file split, seed {seed}: {r['test_files']} held out, served R@1 "
              f"{r['description']['metrics']['diffgap_served']['R@1']:.1f}, keyword {r['description']['metrics']['keyword']['R@1']:.1f}",
              file=sys.stderr)
        if seed == args.seeds[0]:
            seed0["file"] = r
        for package in args.packages:
            r = run_split(sounds, np.array([s.package == package for s in sounds]), audio, encoder, seed, args.epochs, args.anchor_kind)
            r["held_out_package"] = package
            runs["package"].append(r)
            print(f"package {package}, seed {seed}: served R@1 {r['description']['metrics']['diffgap_served']['R@1']:.1f}, "
                  f"keyword {r['description']['metrics']['keyword']['R@1']:.1f}", file=sys.stderr)
            if seed == args.seeds[0]:
                seed0[f"package {package}"] = r
    summary = {"file": {k: summarise(runs["file"], k) for k in ("description", "category")},
               "package": {k: summarise(runs["package"], k) for k in ("description", "category")}}
    for package in args.packages:
        held = [r for r in runs["package"] if r["held_out_package"] == package]
        summary[f"package {package}"] = {k: summarise(held, k) for k in ("description", "category")}
    by_package: dict[str, int] = {}
    for s in sounds:
        by_package[s.package] = by_package.get(s.package, 0) + 1
    result = {
        "command": command_line("run.py", argv),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), torch threads {args.threads}",
        "table": {"sounds": len(sounds), "duplicates_dropped": dropped, "by_package": by_package,
                  "licences": sorted({f"{s.package}: {s.licence}" for s in sounds}),
                  "windows": int(sum(len(v) for v in audio.values())), "embed_s": round(embed_s, 1)},
        "seeds": args.seeds, "epochs": args.epochs, "summary": summary,
        "runs": {k: [{kk: vv for kk, vv in r.items() if kk not in ("description", "category")}
                     | {kind: {"queries": r[kind]["queries"], "metrics": r[kind]["metrics"]}
                        for kind in ("description", "category") if kind in r} for r in v] for k, v in runs.items()},
        "seed0": seed0, "seconds": round(time.perf_counter() - started, 1),
    }
    print(markdown(result))
    write_outputs(args.out_dir, {"real_gap.json": json.dumps(without_queries(result), indent=1) + "\n",
                                 "real_gap_queries.jsonl": queries_jsonl(result), "real_gap.md": markdown(result) + "\n",
                                 "real_gap_failures.md": failures_markdown(result) + "\n"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
