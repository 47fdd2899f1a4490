"""Helpers of the reliability tests: a small corpus, a ``dgsearch`` subprocess with fault injection, and an
oracle comparison of an index (catalog + FAISS) against a clean build.

The oracle is keyed by content (sha256), since a window's vector depends only on the file's samples: a
clean in-process build of every content variant gives, for each sha256, the list of ``(start, end,
vector)`` that any correct index must hold for a file with that content, whatever its path or history.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fixtures_media import write_audio

TESTS = Path(__file__).resolve().parent
SHIM = TESTS / "fault_injection"
DGSEARCH = Path(sys.executable).with_name("dgsearch")
VEC_TOL = 1e-6


# -- corpus -------------------------------------------------------------------------------------------
def clip_samples(i: int, variant: int = 0, sr: int = 8_000) -> np.ndarray:
    """Clip ``i`` (content ``variant``): 1 s (one window) of a seeded tone + noise, ``(sr,) float32``."""
    rng = np.random.default_rng(1000 * variant + i)
    t = np.arange(sr) / sr
    freq = 150.0 + 37.0 * i + 500.0 * variant
    x = 0.4 * np.sin(2 * np.pi * freq * t) + rng.uniform(-0.1, 0.1, sr)
    return x.astype(np.float32)


def write_clip(path: Path, i: int, variant: int = 0) -> Path:
    return write_audio(path, clip_samples(i, variant), 8_000)


def build_corpus(folder: Path, n: int = 20, variant: int = 0) -> list[Path]:
    """``n`` one-window wav clips ``c00.wav`` … in ``folder`` (every third in a subfolder)."""
    out = []
    for i in range(n):
        sub = folder / "sub" if i % 3 == 2 else folder
        out.append(write_clip(sub / f"c{i:02d}.wav", i, variant))
    return out


# -- reading an index ---------------------------------------------------------------------------------
@dataclass
class IndexState:
    """What an index holds: per file path its status/sha/windows, per segment id its vector."""

    files: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # path -> (status, sha256)
    windows: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # path -> [(seg id, s, e)]
    vectors: dict[int, np.ndarray] = field(default_factory=dict)  # segment id -> (D,) float32
    meta: dict[str, Any] = field(default_factory=dict)


def read_state(index_dir: Path) -> IndexState:
    """Read the catalog with plain sqlite3 (read-only, no product code), in one snapshot."""
    import json

    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")
        st = IndexState()
        for path, status, sha in conn.execute("SELECT path, status, sha256 FROM files"):
            st.files[path] = (status, sha)
            st.windows[path] = []
        for sid, path, s, e in conn.execute(
            "SELECT s.id, f.path, s.start_s, s.end_s FROM segments s JOIN files f ON f.id = s.file_id ORDER BY s.seq"
        ):
            st.windows[path].append((sid, s, e))
        for sid, blob in conn.execute("SELECT segment_id, vector FROM vectors WHERE space = 'audio'"):
            st.vectors[sid] = np.frombuffer(blob, dtype="<f4").copy()
        st.meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        conn.execute("COMMIT")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    return st


Oracle = dict[str, list[tuple[float, float, np.ndarray]]]  # sha256 -> [(start, end, vector)]


def oracle_from(index_dir: Path) -> Oracle:
    st = read_state(index_dir)
    out: Oracle = {}
    for path, (status, sha) in st.files.items():
        assert status == "ok" and sha is not None
        out[sha] = [(s, e, st.vectors[sid]) for sid, s, e in st.windows[path]]
    return out


def check_partial(index_dir: Path, oracle: Oracle) -> IndexState:
    """Invariants that hold at every moment, even right after a kill: the catalog is intact; every stored
    file is one the oracle knows, with exactly its windows and vectors; no vector without a window and no
    window without a vector."""
    st = read_state(index_dir)
    seg_ids = {sid for ws in st.windows.values() for sid, _, _ in ws}
    assert set(st.vectors) == seg_ids, "orphan vectors or windows without a vector"
    for path, (status, sha) in st.files.items():
        assert status == "ok", (path, status)
        expected = oracle[sha]  # type: ignore[index]
        got = st.windows[path]
        assert [(s, e) for _, s, e in got] == [(s, e) for s, e, _ in expected], path
        for (sid, _, _), (_, _, vec) in zip(got, expected):
            np.testing.assert_allclose(st.vectors[sid], vec, rtol=0, atol=VEC_TOL)
    return st


def check_complete(index_dir: Path, oracle: Oracle, folder: Path) -> IndexState:
    """The index equals a clean build of ``folder``: every file on disk (and only those) with the oracle's
    windows and vectors; one published FAISS file whose ids and vectors are exactly the catalog's; no
    temporary or stale FAISS file left behind."""
    import hashlib

    st = check_partial(index_dir, oracle)
    on_disk = {}
    for p in sorted(folder.rglob("*.wav")):
        on_disk[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    assert {p: sha for p, (_, sha) in st.files.items()} == on_disk
    check_faiss(index_dir, st)
    return st


def check_faiss(index_dir: Path, st: IndexState) -> None:
    """The published FAISS file holds exactly the catalog's ids and vectors, and is the only FAISS file."""
    import faiss

    pub = st.meta["faiss.audio"]
    names = sorted(p.name for p in index_dir.iterdir() if ".faiss" in p.name)
    assert names == [f"audio.{pub['generation']}.faiss"], names
    index = faiss.read_index(str(index_dir / names[0]))
    assert index.ntotal == len(st.vectors) == pub["count"]
    ids = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    assert ids.tolist() == sorted(st.vectors)
    for sid, vec in st.vectors.items():
        assert np.array_equal(index.reconstruct(int(sid)), vec), sid


# -- a dgsearch subprocess, optionally with a fault --------------------------------------------------
@dataclass
class Fault:
    """Where to pause (``point:n``, see ``fault_injection/sitecustomize.py``) or what to fail."""

    pause: str = ""
    fail: str = ""


class DGProcess:
    """A running ``dgsearch`` subprocess with the fault shim on its path."""

    def __init__(self, args: list[str | Path], work: Path, fault: Fault = Fault(), env: dict[str, str] | None = None):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        for name in ("paused", "continue"):
            (work / name).unlink(missing_ok=True)
        self.log = work / "log"
        self.log.write_text("")
        full_env = {
            **os.environ,
            "NO_COLOR": "1",
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "DGS_FAULT": fault.pause,
            "DGS_FAIL": fault.fail,
            "DGS_FAULT_DIR": str(work),
            "DGS_FAULT_LOG": str(self.log),
            **(env or {}),
        }
        self.stdout = open(work / "stdout", "w+b")
        self.stderr = open(work / "stderr", "w+b")
        self.proc = subprocess.Popen([str(DGSEARCH), *map(str, args)], stdout=self.stdout, stderr=self.stderr,
                                     env=full_env, stdin=subprocess.DEVNULL)

    def wait_paused(self, timeout: float = 120.0) -> bool:
        """True once the process paused at its fault point; False if it exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.work / "paused").exists():
                return True
            if self.proc.poll() is not None:
                return (self.work / "paused").exists()
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"no pause within {timeout} s: {self.output()}")

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def resume(self) -> None:
        (self.work / "continue").write_text("")

    def wait(self, timeout: float = 300.0) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> tuple[str, str]:
        self.stdout.seek(0)
        self.stderr.seek(0)
        return (self.stdout.read().decode("utf-8", "replace"), self.stderr.read().decode("utf-8", "replace"))

    def events(self) -> list[str]:
        return self.log.read_text().splitlines()

    def windows_embedded(self) -> int:
        return sum(int(e.split()[1]) for e in self.events() if e.startswith("embed "))


def dgsearch(args: list[str | Path], work: Path, fault: Fault = Fault(), timeout: float = 300.0,
             env: dict[str, str] | None = None) -> tuple[int, str, str, DGProcess]:
    """Run ``dgsearch`` to the end: ``(exit code, stdout, stderr, process)``."""
    p = DGProcess(args, work, fault, env)
    code = p.wait(timeout)
    out, err = p.output()
    return code, out, err, p


def index_args(folder: Path, index_dir: Path, model: Path, batch_size: int = 2) -> list[str | Path]:
    return ["index", folder, "--index", index_dir, "--model", model, "--workers", "0",
            "--batch-size", str(batch_size), "--json"]


# -- a reader process ---------------------------------------------------------------------------------
def reader_loop(index_dir: str, stop_file: str, dim: int = 32) -> None:
    """Query ``index_dir`` in a loop until ``stop_file`` exists; print a JSON summary on stdout.

    Each query runs inside one read transaction of the searcher's own connection, so "the catalog at that
    moment" is well defined: every hit must name a window of an ok file in that snapshot, with the score
    its stored vector gives, and every vector of the snapshot must come back (k is larger than the index).
    Readers take no lock: this loop never waits for the writer.
    """
    import json as _json
    import traceback

    from diffgap_search.config import SearchConfig, SearchMode
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Searcher

    rng = np.random.default_rng(7)
    summary: dict[str, Any] = {"queries": 0, "errors": [], "max_hits": 0, "generations": set()}
    with Searcher(Path(index_dir), load_encoder) as s:
        conn = s.catalog.conn
        while not os.path.exists(stop_file):
            q = rng.standard_normal((1, dim)).astype(np.float32)
            q /= np.linalg.norm(q)
            try:
                conn.execute("BEGIN")
                try:
                    hits, _, _ = s.search_vectors(q, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=10_000, group_by_file=False))
                    n = conn.execute("SELECT count(*) FROM vectors v JOIN segments s ON s.id = v.segment_id JOIN files f"
                                     " ON f.id = s.file_id WHERE f.status = 'ok' AND v.space = 'audio'").fetchone()[0]
                    for h in hits:
                        row = conn.execute(
                            "SELECT f.path, s.start_s, s.end_s, v.vector FROM segments s JOIN files f ON f.id = s.file_id"
                            " JOIN vectors v ON v.segment_id = s.id AND v.space = 'audio' WHERE s.id = ? AND f.status = 'ok'",
                            (h.segment_id,)).fetchone()
                        if row is None or tuple(row[:3]) != (h.path, h.start_s, h.end_s):
                            summary["errors"].append(f"hit {h} not in the catalog: {row and row[:3]}")
                            continue
                        true = float(q[0] @ np.frombuffer(row[3], dtype="<f4"))
                        if abs(true - h.score) > 1e-4:
                            summary["errors"].append(f"hit {h.segment_id} score {h.score} != {true}")
                    if len(hits) != n:
                        summary["errors"].append(f"{len(hits)} hits for {n} live windows")
                    summary["generations"].add(s.opened._indexes["audio"][0].generation if s.opened._indexes["audio"][0] else 0)
                finally:
                    conn.execute("COMMIT")
                summary["max_hits"] = max(summary["max_hits"], len(hits))
            except Exception:  # noqa: BLE001 - every failure is a finding
                summary["errors"].append(traceback.format_exc(limit=3))
            summary["queries"] += 1
    summary["generations"] = sorted(summary["generations"])
    print(_json.dumps(summary))
