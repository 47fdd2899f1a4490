"""Concurrency: readers during a whole indexing run, and two indexers on one index.

A second process queries in a loop while ``dgsearch index`` adds, changes and deletes files: it never
fails, and every hit names a window of the catalog at that moment, with its true score. A second indexer
exits with code 8 ("index busy"), or waits with ``--wait``; neither corrupts anything. Readers take no lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader
from reliability_helpers import (
    DGProcess,
    Fault,
    TESTS,
    build_corpus,
    check_complete,
    dgsearch,
    index_args,
    oracle_from,
    read_state,
    write_clip,
)
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig, SearchConfig, SearchMode
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing import index_folder
from diffgap_search.search import Searcher
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.lock import writer_lock


def test_readers_take_no_lock_and_see_only_committed_rows(indexed: tuple[Path, Path]) -> None:
    """With the writer lock held and a write transaction open (uncommitted rows), a reader opens the index
    and answers at once, seeing only what was committed."""
    clips, index_dir = indexed
    before = read_state(index_dir)
    with writer_lock(index_dir), Catalog.open(index_dir) as writer:
        writer.conn.execute("BEGIN IMMEDIATE")
        writer.conn.execute("DELETE FROM files")  # uncommitted
        t0 = time.monotonic()
        with Searcher(index_dir, load_encoder) as s:
            q = np.ones((1, 32), np.float32) / np.sqrt(32)
            hits, _, _ = s.search_vectors(q, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=100, group_by_file=False))
        assert time.monotonic() - t0 < 5
        assert len(hits) == len(before.vectors)
        r = CliRunner().invoke(app, ["info", "--index", str(index_dir), "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["summary"]["files"] == len(before.files)
        writer.conn.execute("ROLLBACK")


def test_second_indexer_is_refused_or_waits(indexed: tuple[Path, Path], tiny_cfg: EncoderConfig) -> None:
    clips, index_dir = indexed
    before = read_state(index_dir)
    with writer_lock(index_dir):
        r = CliRunner().invoke(app, ["index", str(clips), "--index", str(index_dir), "--workers", "0"])
        assert r.exit_code == 8 and "is busy: another dgsearch process" in r.stderr
    assert read_state(index_dir).vectors.keys() == before.vectors.keys()
    released = threading.Event()

    def hold() -> None:
        with writer_lock(index_dir):
            released.wait(1.0)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.2)
    r = CliRunner().invoke(app, ["index", str(clips), "--index", str(index_dir), "--workers", "0", "--wait", "30"])
    t.join()
    assert r.exit_code == 0, r.output


@pytest.mark.slow
def test_reader_process_during_a_whole_indexing_run_and_a_second_indexer(tmp_path: Path, tiny_clap_dir: Path) -> None:
    clips, ix = tmp_path / "clips", tmp_path / "ix"
    build_corpus(clips, 10)
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8)
    index_folder(clips, ix, load_encoder=CountingLoader(), encoder_cfg=cfg, indexing_cfg=INLINE)
    # the oracle: every content this test will index
    src = tmp_path / "oracle"
    build_corpus(src, 16)
    for i in (1, 2):
        write_clip(src / "v1" / f"c{i:02d}.wav", i, variant=1)
    index_folder(src, tmp_path / "oracle_ix", load_encoder=CountingLoader(), encoder_cfg=cfg, indexing_cfg=INLINE)
    oracle = oracle_from(tmp_path / "oracle_ix")

    stop = tmp_path / "stop"
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); from reliability_helpers import reader_loop; " \
           f"reader_loop({str(ix)!r}, {str(stop)!r})"
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    # changes: 6 new clips, 2 changed, 2 deleted
    for i in range(10, 16):
        write_clip(clips / f"c{i:02d}.wav", i)
    for i in (1, 2):
        write_clip(next(clips.rglob(f"c{i:02d}.wav")), i, variant=1)
    (clips / "c00.wav").unlink()
    (clips / "c03.wav").unlink()
    time.sleep(1.0)
    writer = DGProcess(index_args(clips, ix, tiny_clap_dir, 2), tmp_path / "w1", Fault(pause="committed:3"))
    assert writer.wait_paused()  # holding the writer lock, mid-run
    code2, _, err2, _ = dgsearch(index_args(clips, ix, tiny_clap_dir, 2), tmp_path / "w2")
    assert code2 == 8 and "is busy" in err2
    writer.resume()
    assert writer.wait() == 0, writer.output()
    time.sleep(1.0)
    stop.write_text("")
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["errors"] == [] and summary["queries"] >= 10, summary
    assert len(summary["generations"]) >= 2  # the reader saw the new generation published
    check_complete(ix, oracle, clips)
