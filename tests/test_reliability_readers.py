"""Readers never rebuild a published index, and a young index says it is not ready.

A reader process (``reader_probe.py``, with the fault shim on its path) is paused between the catalog
record it read and the FAISS file it names, while a real writer (a second Catalog connection, under the
writer lock) publishes a new generation. The writer keeps the file the reader is opening; a reader that
misses its file anyway reads the record again; a reader with no usable file searches exactly. In every
case the answer equals brute force over the catalog, and the reader process never calls ``train`` on a
FAISS index (the shim logs every such call), although the space is IVF-sized.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import SHIM, TESTS, read_state
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import FaissConfig, SearchConfig, SearchMode
from diffgap_search.errors import EXIT_CODES, IndexNotReadyError
from diffgap_search.search import Query, Searcher
from diffgap_search.store.catalog import CONNECTION_PRAGMAS, Catalog, SegmentInput
from diffgap_search.store.generations import READERS_LOCK, sweep_unpublished
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.vector_index import faiss_path, publish

D = 16
SEGS = 10  # windows per file
# 3000 vectors: IVF-sized under flat_max=1000 (ivf64); nprobe = nlist makes the IVF search exhaustive, so
# every path (IVF file, exact fallback) must give exactly the brute-force answer.
CFG = FaissConfig(flat_max=1000, nprobe=64)
TOP_K = 25


def add_files(cat: Catalog, rng: np.random.Generator, start: int, n_files: int) -> None:
    """``n_files`` files ``/f/<i>`` of ``SEGS`` windows with seeded random unit vectors (one transaction)."""
    vecs = rng.standard_normal((n_files * SEGS, D)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with cat.batch():
        for f in range(n_files):
            segs = [SegmentInput(float(s), s + 1.0, {"audio": vecs[f * SEGS + s]}) for s in range(SEGS)]
            cat.put_file(path_key=f"/f/{start + f:04d}".encode(), path=f"/f/{start + f:04d}", kind="audio", size=1,
                         mtime_ns=1, sha256=str(start + f), segments=segs)


@pytest.fixture
def ivf_index(tmp_path: Path) -> Path:
    """An index of 300 files (3000 windows) published once as generation 1 (an IVF file)."""
    ix = tmp_path / "ix"
    with writer_lock(ix), Catalog.open(ix, create=True) as cat:
        cat.set_meta({"encoder": {"model": "m", "fingerprint": "f", "dim": D},
                      "window": {"window_s": 10.0, "hop_s": 10.0, "sample_rate": 48_000}})
        add_files(cat, np.random.default_rng(0), 0, 300)
        rec = publish(ix, cat, "audio", D, CFG)
    assert (rec.generation, rec.kind, rec.count) == (1, "ivf64", 3000)
    return ix


def query_vector() -> np.ndarray:
    q = np.random.default_rng(42).standard_normal(D).astype(np.float32)
    return q / np.linalg.norm(q)


def brute_force(index_dir: Path, q: np.ndarray) -> list[tuple[int, float]]:
    """The expected hits: every live window scored by plain numpy, best first (plain sqlite3 read)."""
    st = read_state(index_dir)
    ids = np.array(sorted(st.vectors), np.int64)
    scores = np.stack([st.vectors[i] for i in ids]) @ q
    order = np.argsort(-scores, kind="stable")[:TOP_K]
    return [(int(ids[j]), float(scores[j])) for j in order]


def write_generation_2(index_dir: Path) -> None:
    """The writer: delete one file, add three, publish generation 2 (a real second connection)."""
    with writer_lock(index_dir), Catalog.open(index_dir) as cat:
        cat.delete_files([cat.file_by_key(b"/f/0007").id])  # type: ignore[union-attr]
        add_files(cat, np.random.default_rng(1), 1000, 3)
        rec = publish(index_dir, cat, "audio", D, CFG)
    assert (rec.generation, rec.kind, rec.count) == (2, "ivf64", 3020)


class Reader:
    """``reader_probe.py`` in a subprocess with the fault shim: ``pause`` is a ``DGS_FAULT`` point."""

    def __init__(self, index_dir: Path, work: Path, *, pause: str = "", hold_snapshot: bool = False) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work, self.log = work, work / "log"
        self.log.write_text("")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
               "DGS_FAULT": pause, "DGS_FAULT_DIR": str(work), "DGS_FAULT_LOG": str(self.log)}
        args = [sys.executable, str(TESTS / "reader_probe.py"), str(index_dir), json.dumps(query_vector().tolist()),
                str(CFG.flat_max), str(CFG.nprobe), str(TOP_K)] + ([str(work)] if hold_snapshot else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def wait_for(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.work / name).exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"reader never reached {name!r}: {self.proc.communicate()}")
            time.sleep(0.02)

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err.decode()
        return json.loads(out)

    def events(self) -> list[str]:
        """The FAISS events of the reader process (files read, indexes trained)."""
        return [e for e in self.log.read_text().splitlines() if e.startswith("faiss_")]


def assert_hits(got: list[list[float]], expected: list[tuple[int, float]]) -> None:
    assert [int(i) for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)


def faiss_files(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.name.endswith(".faiss"))


# -- a reader paused between the record and the file --------------------------------------------------
def test_writer_keeps_the_generation_a_paused_reader_is_opening(ivf_index: Path, tmp_path: Path) -> None:
    reader = Reader(ivf_index, tmp_path / "r", pause="faiss_read:1")
    reader.wait_for("paused")  # it read the record of generation 1 and holds the readers' lock
    write_generation_2(ivf_index)
    assert faiss_files(ivf_index) == ["audio.1.faiss", "audio.2.faiss"]  # kept: a reader may still need it
    expected = brute_force(ivf_index, query_vector())
    (reader.work / "continue").write_text("")
    result = reader.result()
    assert (result["generation"], result["rebuilt"], result["kind"]) == (1, False, "ivf64")
    assert_hits(result["hits"], expected)  # generation 1 + the committed delta, minus the deleted file
    assert reader.events() == ["faiss_read audio.1.faiss"]  # one file read, nothing trained
    with writer_lock(ivf_index), Catalog.open(ivf_index) as cat:  # the next run's sweep deletes it
        assert sweep_unpublished(ivf_index, cat)
    assert faiss_files(ivf_index) == ["audio.2.faiss"]


def test_a_reader_that_misses_its_file_reads_the_record_again(ivf_index: Path, tmp_path: Path) -> None:
    reader = Reader(ivf_index, tmp_path / "r", pause="faiss_read:1")
    reader.wait_for("paused")
    write_generation_2(ivf_index)
    faiss_path(ivf_index, "audio", 1).unlink()  # as a writer that ignores the readers' lock would
    expected = brute_force(ivf_index, query_vector())
    (reader.work / "continue").write_text("")
    result = reader.result()
    assert (result["generation"], result["rebuilt"], result["kind"]) == (2, False, "ivf64")
    assert_hits(result["hits"], expected)
    assert reader.events() == ["faiss_read audio.1.faiss", "faiss_read audio.2.faiss"]


def test_a_reader_with_an_older_snapshot_searches_exactly_and_trains_nothing(ivf_index: Path, tmp_path: Path) -> None:
    """Its read transaction began before the writer's commit, so SQLite shows it generation 1 after that
    file is gone (the writer could delete it: the reader held no lock yet); the second read of the record
    is the same, so it searches the snapshot's vectors exactly, with a flat index and no training."""
    expected = brute_force(ivf_index, query_vector())  # the snapshot's state
    reader = Reader(ivf_index, tmp_path / "r", hold_snapshot=True)
    reader.wait_for("ready")
    write_generation_2(ivf_index)
    assert faiss_files(ivf_index) == ["audio.2.faiss"]
    (reader.work / "go").write_text("")
    result = reader.result()
    assert (result["generation"], result["rebuilt"], result["kind"]) == (1, True, "flat")
    assert_hits(result["hits"], expected)
    assert reader.events() == ["faiss_read audio.1.faiss"]
    assert not any(e.startswith("faiss_train") for e in reader.events())


def test_the_shim_sees_a_writer_train(ivf_index: Path, tmp_path: Path) -> None:
    """The control of the tests above: a writer process that rebuilds the IVF index logs its training."""
    log = tmp_path / "log"
    code = ("import sys; from pathlib import Path; from diffgap_search.config import FaissConfig;"
            " from diffgap_search.store.catalog import Catalog; from diffgap_search.store.lock import writer_lock;"
            " from diffgap_search.store.vector_index import faiss_path, publish;"
            " ix = Path(sys.argv[1]); faiss_path(ix, 'audio', 1).unlink();"
            f" cat = Catalog.open(ix); w = writer_lock(ix); w.__enter__();"
            f" print(publish(ix, cat, 'audio', {D}, FaissConfig(flat_max={CFG.flat_max})).generation)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
           "DGS_FAULT_LOG": str(log)}
    r = subprocess.run([sys.executable, "-c", code, str(ivf_index)], capture_output=True, text=True, env=env,
                       timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stderr
    events = [e for e in log.read_text().splitlines() if e.startswith("faiss_")]
    assert events == ["faiss_read audio.1.faiss", "faiss_train IndexIVFFlat", "faiss_write"]


def test_a_killed_reader_does_not_keep_old_generations(ivf_index: Path, tmp_path: Path) -> None:
    reader = Reader(ivf_index, tmp_path / "r", pause="faiss_read:1")
    reader.wait_for("paused")
    write_generation_2(ivf_index)
    assert faiss_files(ivf_index) == ["audio.1.faiss", "audio.2.faiss"]
    reader.proc.send_signal(signal.SIGKILL)
    reader.proc.wait(timeout=30)
    with writer_lock(ivf_index), Catalog.open(ivf_index) as cat:  # the kernel released its lock
        assert sweep_unpublished(ivf_index, cat, wait_s=0.0)
    assert faiss_files(ivf_index) == ["audio.2.faiss"]
    assert (ivf_index / READERS_LOCK).exists()


def test_ivf_publish_after_deletions_names_the_right_ids_without_training(ivf_index: Path) -> None:
    """``IndexIVF.remove_ids`` does not renumber the rows ``IndexIDMap2`` maps to ids: removing in place
    used to shift every later hit by the number of removed windows. Now the trained index is emptied and
    refilled: right ids, the same centroids, no ``train``."""
    import faiss

    def centroids() -> np.ndarray:
        with Catalog.open(ivf_index) as cat:
            pub = cat.get_meta("faiss.audio")
        index = faiss.read_index(str(faiss_path(ivf_index, "audio", pub["generation"])))
        quantizer = faiss.extract_index_ivf(index).quantizer
        return faiss.rev_swig_ptr(faiss.downcast_index(quantizer).get_xb(), quantizer.ntotal * D).copy()

    before = centroids()
    write_generation_2(ivf_index)
    assert np.array_equal(centroids(), before)
    st = read_state(ivf_index)
    index = faiss.read_index(str(faiss_path(ivf_index, "audio", 2)))
    faiss.extract_index_ivf(index).nprobe = CFG.nprobe
    ids = np.array(sorted(st.vectors), np.int64)
    _, found = index.search(np.stack([st.vectors[i] for i in ids]), 1)
    assert found[:, 0].tolist() == ids.tolist()  # every window finds itself, under its own id


def test_the_readers_lock_never_makes_a_reader_wait(tmp_path: Path) -> None:
    """A reader holding the lock keeps files from deletion; a writer holding it exclusively (while it deletes)
    does not stop a reader, who goes on at once without it."""
    import fcntl

    from diffgap_search.store.generations import reading, remove_unread

    old = tmp_path / "audio.1.faiss"
    old.write_bytes(b"x")
    with reading(tmp_path) as held:
        assert held
        t0 = time.monotonic()
        assert remove_unread(tmp_path, [old], wait_s=0.2) is False and old.exists()
        assert 0.2 <= time.monotonic() - t0 < 2.0
    assert remove_unread(tmp_path, [old], wait_s=0.0) is True and not old.exists()
    fd = os.open(tmp_path / READERS_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what the writer holds while it deletes
        t0 = time.monotonic()
        with reading(tmp_path) as held:
            assert held is False
        assert time.monotonic() - t0 < 0.1
    finally:
        os.close(fd)


# -- exact search when no published file is usable ----------------------------------------------------
@pytest.mark.parametrize("n_queries", [1, 3, 25])  # 25 rows: FAISS's BLAS path
def test_exact_fallback_answers_as_the_published_flat_index(tmp_path: Path, n_queries: int) -> None:
    ix = tmp_path / "ix"
    cfg = FaissConfig()
    with Catalog.open(ix, create=True) as cat:
        cat.set_meta({"encoder": {"model": "m", "fingerprint": "f", "dim": D}})
        add_files(cat, np.random.default_rng(5), 0, 40)
        publish(ix, cat, "audio", D, cfg)
        cat.delete_files([cat.file_by_key(b"/f/0003").id])  # type: ignore[union-attr]
        add_files(cat, np.random.default_rng(6), 100, 2)
        assert publish(ix, cat, "audio", D, cfg).generation == 2  # incremental: removals and additions
    queries = np.random.default_rng(7).standard_normal((n_queries, D)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    def answers() -> tuple[list[Any], list[Any], bool]:
        with Searcher(ix, lambda c: None, faiss_cfg=cfg) as s:
            windows, _, _ = s.search_vectors(queries, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=30, group_by_file=False))
            files, _, _ = s.search_vectors(queries, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=8))
            return windows, files, s.index_for("audio").rebuilt

    published = answers()
    assert published[2] is False and len(published[0]) == 30 and len(published[1]) == 8
    faiss_path(ix, "audio", 2).unlink()
    fallback = answers()
    assert fallback[2] is True
    assert fallback[:2] == published[:2]  # same hits (ids, seconds, scores to the bit), same order


# -- a query while the first run has recorded nothing -----------------------------------------------
def test_query_before_the_first_commit_says_the_index_is_not_ready(tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    Catalog.open(ix, create=True).close()  # what the first `dgsearch index` does before loading its model
    media = tmp_path / "q.wav"
    media.write_bytes(b"RIFF")  # exists; never decoded
    loads: list[Any] = []
    message = (f"index {ix} is being built and has nothing to search yet: its first `dgsearch index` run has not"
               " committed any files; query again once it has")
    with Searcher(ix, loads.append) as s:
        for q in (Query(text="dog barking"), Query(audio=media), Query(video=media)):
            with pytest.raises(IndexNotReadyError) as err:
                s.search(q)
            assert str(err.value) == message
        hits, _, _ = s.search_vectors(query_vector()[None], "audio", SearchConfig(mode=SearchMode.SEMANTIC))
        assert hits == []  # a plain vector search over nothing: nothing, no error
    assert loads == []  # no model was looked for
    runner = CliRunner()
    for args in (["dog barking"], ["--audio", str(media)], ["--video", str(media)]):
        r = runner.invoke(app, ["query", *args, "--index", str(ix)])
        assert r.exit_code == 14 and r.stderr == f"dgsearch: error: {message}\n", r.output
    assert runner.invoke(app, ["query", "--audio", str(tmp_path / "none.wav"), "--index", str(ix)]).exit_code == 3
    assert runner.invoke(app, ["query", " ", "--index", str(ix)]).exit_code == 2
    assert EXIT_CODES[14][0] == "index not ready"


# -- SQLite settings on every connection; a durable bridge rename ---------------------------------------
def test_every_open_applies_the_per_connection_pragmas(tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    Catalog.open(ix, create=True).close()
    plain = sqlite3.connect(ix / "catalog.sqlite", timeout=0)  # SQLite's defaults: the settings are per connection
    defaults = {name: plain.execute(f"PRAGMA {name}").fetchone()[0] for name in CONNECTION_PRAGMAS}
    assert defaults == {"busy_timeout": 0, "foreign_keys": 0, "synchronous": 2}
    assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # stored in the file
    plain.close()
    with Catalog.open(ix) as cat, Searcher(ix, lambda c: None) as reader:
        for conn in (cat.conn, reader.catalog.conn):
            got = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in CONNECTION_PRAGMAS}
            assert got == {"busy_timeout": 30_000, "foreign_keys": 1, "synchronous": 1}
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with cat.durable():
            assert cat.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL for a generation's commit
        assert cat.conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_bridge_checkpoint_rename_is_followed_by_a_directory_fsync(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from diffgap_search.gap.checkpoint import load_checkpoint, save_checkpoint

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append((f"fsync {kind}", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
        events.append(("replace", os.fspath(dst)))
        real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "ix" / "bridge-x.safetensors"
    save_checkpoint(path, {"w": torch.arange(6, dtype=torch.float32)}, {"note": "x"})
    assert events == [("fsync file", str(path) + ".tmp"), ("replace", str(path)), ("fsync dir", str(path.parent))]
    tensors, meta = load_checkpoint(path)
    assert tensors["w"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and meta["note"] == "x"
