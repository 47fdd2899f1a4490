"""Soak: a fixed number of seeded rounds of edits (add, modify, delete, rename), ``dgsearch index``,
``dgsearch train`` and ``dgsearch query``, each command SIGKILLed after a random delay (from inside
Python's start-up to the middle of its work) and then run to completion. After every round the index
must equal a clean build of the same folder in a fresh index: the same files, windows (start and end),
captions and vectors (audio and bridged), FAISS files holding exactly the catalog's vectors, and the
same query results.

The clean build is indexed in process; it gets the soaked index's bridge (a bridge is trained from pairs
in catalog order, which an edited index's history changes, so two trainings need not give the same
weights), so every bridged vector and every fused score must agree too. Rounds, kills and mismatches are
printed (``pytest -s`` shows them); the test fails on any mismatch.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import (
    VEC_TOL,
    DGProcess,
    dgsearch,
    index_args,
    read_state,
    write_clip,
)

from diffgap_search.config import EncoderConfig, IndexingConfig, SearchConfig, SearchMode
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing import index_folder
from diffgap_search.search import Query, Searcher

pytestmark = pytest.mark.slow

ROUNDS = 4
N_START = 14
BATCH = 2
SCORE_TOL = 1e-4  # a query embedded in another process differs by ~1e-7 per component
QUERIES = ["a clear tone", "tone number 3, take 1", "noise and a hum"]
TRAIN = ["train", "--epochs", "3", "--batch-size", "16", "--json"]


class Folder:
    """The soaked folder: clip files ``name.wav`` with a caption sidecar ``name.txt`` (two captions)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clips: dict[str, tuple[int, int]] = {}  # relative stem -> (clip number, content variant)
        self.next_clip = 0

    def write(self, stem: str, i: int, variant: int) -> None:
        write_clip(self.root / f"{stem}.wav", i, variant)
        (self.root / f"{stem}.txt").write_text(f"tone number {i}, take {variant}\na clear tone {i}\n")
        self.clips[stem] = (i, variant)

    def add(self) -> str:
        i = self.next_clip
        self.next_clip += 1
        stem = f"sub/c{i:02d}" if i % 3 == 2 else f"c{i:02d}"
        self.write(stem, i, 0)
        return f"add {stem}"

    def modify(self, rng: random.Random, rnd: int) -> str:
        stem = rng.choice(sorted(self.clips))
        i, _ = self.clips[stem]
        self.write(stem, i, 10 + rnd)  # a content no round used before
        return f"modify {stem}"

    def delete(self, rng: random.Random) -> str:
        stem = rng.choice(sorted(self.clips))
        for ext in (".wav", ".txt"):
            (self.root / f"{stem}{ext}").unlink()
        del self.clips[stem]
        return f"delete {stem}"

    def rename(self, rng: random.Random, rnd: int) -> str:
        stem = rng.choice(sorted(self.clips))
        new = f"moved/r{rnd}_{Path(stem).name}"
        (self.root / "moved").mkdir(exist_ok=True)
        for ext in (".wav", ".txt"):
            shutil.move(self.root / f"{stem}{ext}", self.root / f"{new}{ext}")
        self.clips[new] = self.clips.pop(stem)
        return f"rename {stem} -> {new}"


# -- reading an index with plain sqlite3 ----------------------------------------------------------------
def _space_by_path(index_dir: Path, space: str) -> dict[tuple[str, float, float], np.ndarray]:
    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return {(p, s, e): np.frombuffer(b, dtype="<f4").copy() for p, s, e, b in conn.execute(
            "SELECT f.path, s.start_s, s.end_s, v.vector FROM vectors v JOIN segments s ON s.id = v.segment_id"
            " JOIN files f ON f.id = s.file_id WHERE v.space = ?", (space,))}
    finally:
        conn.close()


def _captions(index_dir: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        out: dict[str, list[str]] = {}
        for path, text in conn.execute("SELECT f.path, c.text FROM captions c JOIN files f ON f.id = c.file_id"):
            out.setdefault(path, []).append(text)
        return {p: sorted(t) for p, t in out.items()}
    finally:
        conn.close()


def _faiss_mismatches(index_dir: Path) -> list[str]:
    """Every published FAISS generation holds exactly its space's catalog ids and vectors, and no other
    FAISS file lies in the index."""
    import faiss

    st = read_state(index_dir)
    out = []
    published = {k.split(".", 1)[1]: v for k, v in st.meta.items() if k.startswith("faiss.")}
    names = sorted(p.name for p in index_dir.iterdir() if ".faiss" in p.name)
    expected = sorted(f"{space}.{rec['generation']}.faiss" for space, rec in published.items())
    if names != expected:
        out.append(f"FAISS files {names}, published {expected}")
    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        for space, rec in published.items():
            vecs = {sid: np.frombuffer(b, dtype="<f4") for sid, b in conn.execute(
                "SELECT segment_id, vector FROM vectors WHERE space = ?", (space,))}
            index = faiss.read_index(str(index_dir / f"{space}.{rec['generation']}.faiss"))
            ids = sorted(faiss.vector_to_array(index.id_map).astype(np.int64).tolist())
            if ids != sorted(vecs) or rec["count"] != len(vecs):
                out.append(f"{space}: FAISS ids {ids} != catalog {sorted(vecs)} (count {rec['count']})")
                continue
            out += [f"{space}: vector {sid} differs" for sid, v in vecs.items()
                    if not np.array_equal(index.reconstruct(int(sid)), v)]
    finally:
        conn.close()
    return out


def _vector_mismatches(space: str, got: dict[Any, np.ndarray], want: dict[Any, np.ndarray]) -> list[str]:
    if set(got) != set(want):
        return [f"{space}: windows {sorted(set(got) ^ set(want))} in one index only"]
    return [f"{space}: {key} differs by {np.abs(got[key] - want[key]).max():.2e}" for key in sorted(got)
            if not np.allclose(got[key], want[key], rtol=0, atol=VEC_TOL)]


def compare(ix: Path, clean: Path) -> list[str]:
    """Every difference between the soaked index and the clean build (empty when they agree)."""
    a, b = read_state(ix), read_state(clean)
    out = []
    if a.files != b.files:
        out.append(f"files differ: {sorted(set(a.files.items()) ^ set(b.files.items()))}")
    wa = {p: [(s, e) for _, s, e in w] for p, w in a.windows.items()}
    wb = {p: [(s, e) for _, s, e in w] for p, w in b.windows.items()}
    if wa != wb:
        out.append(f"windows differ: {sorted(set(wa.items()) ^ set(wb.items()), key=str)}")
    if _captions(ix) != _captions(clean):
        out.append("captions differ")
    for space in ("audio", "audio_as_text"):
        out += _vector_mismatches(space, _space_by_path(ix, space), _space_by_path(clean, space))
    if a.meta.get("bridge", {}).get("fingerprint") != b.meta.get("bridge", {}).get("fingerprint"):
        out.append("bridges differ")
    return out + _faiss_mismatches(ix)


def clean_build(folder: Path, ix: Path, model: Path, dest: Path) -> None:
    """Index ``folder`` into the fresh ``dest`` in process and give it ``ix``'s bridge."""
    from diffgap_search.bridge.index_bridge import load_index_bridge
    from diffgap_search.config import FaissConfig
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.bridge.train import _store_bridge

    cfg = EncoderConfig(model=str(model), device="cpu", batch_size=8)
    index_folder(folder, dest, load_encoder=lambda c: load_encoder(c, progress=False), encoder_cfg=cfg,
                 indexing_cfg=IndexingConfig(decode_workers=0))
    with Catalog.open(ix) as cat:
        bridge = load_index_bridge(ix, cat)
        record = cat.get_meta("bridge")
    assert bridge is not None
    with Catalog.open(dest) as cat:
        _store_bridge(dest, cat, bridge, None, {k: v for k, v in record.items() if k != "file"}, FaissConfig())


def _hits(doc: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    return [(h["path"], h["start_s"], h["end_s"], h["score"]) for h in doc["hits"]]


def _search(index_dir: Path, text: str, use_bridge: bool) -> list[tuple[str, float, float, float]]:
    with Searcher(index_dir, load_encoder, use_bridge=use_bridge) as s:
        res = s.search(Query(text=text), SearchConfig(mode=SearchMode.SEMANTIC, top_k=100, group_by_file=False))
    return [(h.path, h.start_s, h.end_s, h.score) for h in res.hits]


def _same_hits(got: list[tuple[str, float, float, float]], want: list[tuple[str, float, float, float]]) -> bool:
    return [g[:3] for g in got] == [w[:3] for w in want] and np.allclose(
        [g[3] for g in got], [w[3] for w in want], rtol=0, atol=SCORE_TOL)


def query_mismatches(ix: Path, clean: Path, cli_text: str, cli_out: str) -> list[str]:
    """Per window, bridged and not: the soaked index answers every query with the clean build's windows in
    the same order with the same scores, and so did the round's ``dgsearch query`` subprocess."""
    out = []
    want = _search(clean, cli_text, True)
    if not _same_hits(_hits(json.loads(cli_out)), want):
        out.append(f"dgsearch query {cli_text!r}: {_hits(json.loads(cli_out))[:3]} != {want[:3]}")
    for text in QUERIES:
        for bridged in (True, False):
            got, want = _search(ix, text, bridged), _search(clean, text, bridged)
            if not _same_hits(got, want):
                out.append(f"query {text!r} (bridge {bridged}): {got[:3]} != {want[:3]}")
    return out


def killed_then_completed(args: list[str | Path], work: Path, rng: random.Random, kills: list[str],
                          max_kills: int = 2) -> str:
    """Run ``dgsearch args`` up to ``max_kills`` times, each SIGKILLed after a random delay unless it ended
    first, then once to completion (exit 0); returns its stdout."""
    for attempt in range(rng.randint(1, max_kills)):
        delay = rng.uniform(0.3, 7.0)
        p = DGProcess(args, work / f"kill{attempt}")
        try:
            p.wait(delay)
        except Exception:  # noqa: BLE001 - still running when the moment came: kill it
            p.kill()
            kills.append(f"{args[0]}@{delay:.1f}s")
        else:
            assert p.proc.returncode == 0, p.output()  # ended before the kill
    code, out, err, _ = dgsearch(args, work / "done")
    assert code == 0, err
    return out


def test_soak_rounds_of_edits_index_train_query_with_random_kills(tmp_path: Path, tiny_clap_dir: Path) -> None:
    rng = random.Random(20_261_125)
    folder = Folder(tmp_path / "clips")
    for _ in range(N_START):
        folder.add()
    ix, work = tmp_path / "ix", tmp_path / "work"
    kills: list[str] = []
    mismatches: list[str] = []
    for rnd in range(ROUNDS):
        edits = []
        if rnd:
            ops = ["add", "add", "modify", "delete", "rename"]
            rng.shuffle(ops)  # the edits, in a seeded order
            edits = [folder.add() if op == "add" else folder.modify(rng, rnd) if op == "modify"
                     else folder.delete(rng) if op == "delete" else folder.rename(rng, rnd) for op in ops]
        w = work / f"round{rnd}"
        killed_then_completed(index_args(folder.root, ix, tiny_clap_dir, BATCH), w / "index", rng, kills)
        killed_then_completed([*TRAIN, "--index", ix], w / "train", rng, kills)
        text = QUERIES[rnd % len(QUERIES)]
        cli_out = killed_then_completed(["query", text, "--index", ix, "-k", "100", "--segments", "--json"],
                                        w / "query", rng, kills, max_kills=1)
        clean = tmp_path / f"clean{rnd}"
        clean_build(folder.root, ix, tiny_clap_dir, clean)
        found = compare(ix, clean) + query_mismatches(ix, clean, text, cli_out)
        mismatches += [f"round {rnd}: {m}" for m in found]
        print(f"round {rnd}: {len(folder.clips)} clips, edits {edits}, kills so far {len(kills)}, mismatches {len(found)}")
    print(f"soak: rounds {ROUNDS}, kills {len(kills)} ({', '.join(kills)}), mismatches {len(mismatches)}")
    assert mismatches == []
    assert len(kills) >= ROUNDS, kills  # the seed gives real kills, not runs that all ended first
