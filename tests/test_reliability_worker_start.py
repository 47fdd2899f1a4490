"""A decode worker killed at any moment of its life costs nothing; workers that cannot start end the run in
one line with exit 15, and what was committed stays (issue 26).

The real CLI runs in a subprocess over generated clips with ``--workers 1`` and ``2``. The fault shim
(``fault_injection/sitecustomize.py``, ``DGS_WORKER_FAULT``) only pauses the first decode worker at a
chosen moment — before it says it is ready (a real one is still importing its libraries then, when memory
peaks), holding its first task, or between tasks — and this test kills it from outside with SIGKILL, as
the OOM killer or an operator would. Each run exits 0 with no file failed, the index equals a clean build,
and no process of the run is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from fixtures_index import INLINE, CountingLoader
from reliability_helpers import DGProcess, Oracle, build_corpus, check_complete, check_partial, dgsearch, oracle_from
from test_reliability_decoders import left_behind

from diffgap_search.config import EncoderConfig
from diffgap_search.indexing import index_folder

pytestmark = pytest.mark.slow

N_FILES = 10


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, tiny_clap_dir: Path) -> tuple[Path, Oracle]:
    """The corpus and the oracle of its clean build (decoded inline, in this process)."""
    root = tmp_path_factory.mktemp("clean")
    build_corpus(root / "clips", n=N_FILES)
    index_folder(root / "clips", root / "ix", load_encoder=CountingLoader(), indexing_cfg=INLINE,
                 encoder_cfg=EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=4))
    return root / "clips", oracle_from(root / "ix")


def index_args(folder: Path, index_dir: Path, model: Path, workers: int) -> list[str | Path]:
    return ["index", folder, "--index", index_dir, "--model", model, "--workers", str(workers),
            "--batch-size", "4", "--json"]


def paused_pid(work: Path) -> int:
    """The pid the shim wrote into ``paused`` ("worker_start:1 pid 1234")."""
    return int((work / "paused").read_text().split()[-1])


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("moment", ["start", "task", "idle"])
def test_a_worker_killed_at_any_moment_costs_nothing(moment: str, workers: int, clean: tuple[Path, Oracle],
                                                     tmp_path: Path, tiny_clap_dir: Path) -> None:
    corpus, oracle = clean
    folder = tmp_path / "clips"
    shutil.copytree(corpus, folder)
    env = {"DGS_WORKER_FAULT": f"{moment}:1", "DGS_PROC_MARKER": str(tmp_path)}
    p = DGProcess(index_args(folder, tmp_path / "ix", tiny_clap_dir, workers), tmp_path / "run", env=env)
    assert p.wait_paused(), p.output()
    victim = paused_pid(tmp_path / "run")
    started = [e for e in p.events() if e.startswith("worker ")]
    assert f"worker 1 {victim}" in started  # the first decode worker is the one paused
    os.kill(victim, signal.SIGKILL)
    code = p.wait(timeout=180)
    out, err = p.output()
    assert code == 0, err
    report = json.loads(out)
    assert (report["found"], report["embedded_files"], report["failed"]) == (N_FILES, N_FILES, [])
    check_complete(tmp_path / "ix", oracle, folder)
    workers_started = [e for e in p.events() if e.startswith("worker ")]
    assert len(workers_started) >= workers + 1  # the killed one was replaced
    assert left_behind(str(tmp_path), timeout=2.0) == []


def test_workers_that_cannot_start_end_the_run_in_one_line_and_keep_what_was_committed(
        clean: tuple[Path, Oracle], tmp_path: Path, tiny_clap_dir: Path) -> None:
    corpus, oracle = clean
    folder = tmp_path / "clips"
    shutil.copytree(corpus, folder)
    added = sorted(folder.glob("*.wav"))[:3]
    held = tmp_path / "held"
    held.mkdir()
    for path in added:  # the first run indexes all but these three
        path.rename(held / path.name)
    code, _, err, _ = dgsearch(index_args(folder, tmp_path / "ix", tiny_clap_dir, 1), tmp_path / "first")
    assert code == 0, err
    first = check_partial(tmp_path / "ix", oracle)
    assert len(first.files) == N_FILES - 3

    for path in added:
        (held / path.name).rename(path)
    # every decode worker of the second run dies (SIGKILL) before it is ready; one worker at a time, so exactly
    # five are started (with two, a sixth may already be starting when the fifth death ends the run)
    env = {"DGS_WORKER_FAULT": "doom:1", "DGS_PROC_MARKER": str(tmp_path)}
    code, out, err, proc = dgsearch(index_args(folder, tmp_path / "ix", tiny_clap_dir, 1), tmp_path / "second",
                                    env=env)
    assert code == 15, err
    assert out == ""
    assert err.strip().splitlines()[-1] == (
        "dgsearch: error: decode workers cannot start: 5 in a row died before they were ready (the last:"
        " signal 9 (SIGKILL)); free some memory, or index with --workers 0 to decode in the indexing process")
    assert len([e for e in proc.events() if e.startswith("worker ")]) == 5
    assert left_behind(str(tmp_path), timeout=2.0) == []
    after = check_partial(tmp_path / "ix", oracle)  # intact, and what the first run committed is all there
    assert after.files == first.files and after.vectors.keys() == first.vectors.keys()

    code, out, err, _ = dgsearch(index_args(folder, tmp_path / "ix", tiny_clap_dir, 2), tmp_path / "third")
    assert code == 0, err
    assert json.loads(out)["embedded_files"] == 3
    check_complete(tmp_path / "ix", oracle, folder)
