"""``dgsearch index --engine ray`` (issue 22) on a real Ray runtime on loopback (``fixtures_ray.py``, one per
session): the same catalog as the local engine, the same incremental runs, and faults with real processes (a
decoder that kills its worker, the embedding actor's worker SIGKILLed mid-run, the driver SIGKILLed mid-run)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader
from fixtures_media import write_noise, write_tone
from fixtures_ray import SEGV_NAME, RayCluster, marked
from ray_helpers import VEC_ATOL, assert_same_index, committed_count, committed_paths, dump, query_hits
from reliability_helpers import build_corpus, write_clip
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig, WindowConfig
from diffgap_search.indexing import index_folder
from diffgap_search.indexing.ray_engine import RayOptions, ray_stages
from diffgap_search.indexing.ray_engine.driver import LOST

DGSEARCH = Path(sys.executable).with_name("dgsearch")
WINDOW = WindowConfig(window_s=2.0, hop_s=2.0)


def test_engine_flags(monkeypatch: pytest.MonkeyPatch, clips_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["index", str(clips_dir), "--index", str(tmp_path / "ix"), "--engine", "spark"])
    assert (bad.exit_code, bad.stderr.strip()) == (2, "dgsearch: error: --engine must be local or ray, not 'spark'")
    stray = runner.invoke(app, ["index", str(clips_dir), "--index", str(tmp_path / "ix"), "--ray-actors", "2"])
    assert (stray.exit_code, stray.stderr.strip()) == (
        2, "dgsearch: error: --ray-address, --ray-batch-size and --ray-actors need --engine ray")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError: Ray not installed
    missing = runner.invoke(app, ["index", str(clips_dir), "--index", str(tmp_path / "ix"), "--engine", "ray"])
    assert (missing.exit_code, missing.stderr.strip()) == (
        16, "dgsearch: error: --engine ray needs Ray: pip install 'diffgap-search[ray]'")
    assert not (tmp_path / "ix").exists()  # refused before anything is planned or written


@pytest.mark.slow  # default run under 10 min on 2 cores: the slow suite (CI runs it) covers it
def test_a_cluster_nobody_listens_at_is_refused(clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    if importlib.util.find_spec("ray") is None:  # found, not imported: see below
        pytest.skip("Ray is not installed")
    # a process of its own: Ray reads RAY_AUTH_MODE and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when imported,
    # and this test must not import it into pytest before the session's runtime sets them
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    r = subprocess.run([str(DGSEARCH), "index", str(clips_dir), "--index", str(tmp_path / "ix"), "--model",
                        str(tiny_clap_dir), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"],
                       env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr.strip().splitlines()[-1]) == (  # after the progress line
        16, f"dgsearch: error: cannot join the Ray cluster at 127.0.0.1:{port}: Connection refused")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_model_that_cannot_load_while_ray_joins_fails_with_its_own_line(ray_env: RayCluster, clips_dir: Path,
                                                                          tmp_path: Path) -> None:
    # the driver loads its models while ray.init joins on another thread, which mutes stderr meanwhile: the
    # model's error must still be the run's last line, once Ray has let go, and nothing be committed
    missing = tmp_path / "no-model"
    r = subprocess.run([str(DGSEARCH), "index", str(clips_dir), "--index", str(tmp_path / "ix"), "--model",
                        str(missing), "--engine", "ray"], env={**ray_env.env, "NO_COLOR": "1"},
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr.strip().splitlines()[-1].split(";")[0]) == (
        5, f"dgsearch: error: model directory '{missing}' does not exist")
    assert committed_paths(tmp_path / "ix") == set()


@pytest.mark.slow
def test_a_run_without_a_cluster_starts_its_own_runtime_and_leaves_nothing(clips_dir: Path, tmp_path: Path,
                                                                           tiny_clap_dir: Path) -> None:
    # no RAY_ADDRESS: the run starts a local runtime (on its init thread, while the driver loads its models)
    # and stops it. That runtime's processes die with the thread that started them (PR_SET_PDEATHSIG), so the
    # thread must outlive the run: the first version of this change lost its GCS at the first task.
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed")
    marker = f"own-{os.getpid()}-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_AUTH_TOKEN": f"{time.monotonic_ns():032x}"[-32:], "DGS_PROC_MARKER": marker, "NO_COLOR": "1"})
    proc = subprocess.Popen([str(DGSEARCH), "index", str(clips_dir), "--index", str(tmp_path / "ix"), "--model",
                             str(tiny_clap_dir), "--engine", "ray", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-2000:]
    report = json.loads(out)
    assert (report["embedded_files"], report["failed"]) == (5, [])
    assert len(committed_paths(tmp_path / "ix")) == 5
    deadline = time.monotonic() + 15
    while marked(marker, proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked(marker, proc.pid) == []


@pytest.mark.slow
def test_ray_equals_local_and_increments_alike(ray_env: RayCluster, clips_dir: Path, tmp_path: Path,
                                               tiny_cfg: EncoderConfig) -> None:
    write_tone(clips_dir / "long" / "drone.wav", 220.0, 70.0, sr=8_000)  # 35 windows: a long file, streamed
    (clips_dir / "broken.wav").write_bytes(b"RIFF not really")
    ray = ray_stages(RayOptions(batch_size=4, actors=1))
    local_ix, ray_ix = tmp_path / "local", tmp_path / "ray"
    local = index_folder(clips_dir, local_ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                         indexing_cfg=INLINE, window_cfg=WINDOW)
    got = index_folder(clips_dir, ray_ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, window_cfg=WINDOW,
                       stages=ray)
    assert (local.embedded_files, local.windows_embedded, len(local.failed)) == (6, 53, 1)
    assert (got.embedded_files, got.windows_embedded, got.failed) == (6, 53, local.failed)
    assert_same_index(local_ix, ray_ix)
    assert dump(ray_ix)[str(clips_dir / "broken.wav")]["row"][0] == "error"
    for query in (["a dog barks"], ["--audio", str(clips_dir / "rain.flac")]):
        assert query_hits(ray_ix, *query) == query_hits(local_ix, *query)

    loader = CountingLoader()
    again = index_folder(clips_dir, ray_ix, load_encoder=loader, encoder_cfg=tiny_cfg, window_cfg=WINDOW, stages=ray)
    assert (again.windows_embedded, again.embedded_files, again.unchanged, loader.loads) == (0, 0, 6, 0)

    write_noise(clips_dir / "rain.flac", 4.0, sr=16_000, seed=5)  # one file changes: 2 windows
    one = index_folder(clips_dir, ray_ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, window_cfg=WINDOW,
                       stages=ray)
    assert (one.changed, one.embedded_files, one.windows_embedded) == (1, 1, 2)
    index_folder(clips_dir, local_ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE,
                 window_cfg=WINDOW)
    assert_same_index(local_ix, ray_ix)

    before_move = dump(ray_ix)
    moved = clips_dir.rename(tmp_path / "moved")  # the library moves (mv): --moved-from follows it, nothing re-read
    followed = [index_folder(moved, ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, window_cfg=WINDOW,
                             moved_from=clips_dir, **engine)
                for ix, engine in ((local_ix, {"indexing_cfg": INLINE}), (ray_ix, {"stages": ray}))]
    assert [(r.moved, r.windows_embedded, r.embedded_files) for r in followed] == [(7, 0, 0), (7, 0, 0)]
    after_move = dump(ray_ix)
    assert sorted(after_move) == sorted(str(moved / Path(p).relative_to(clips_dir)) for p in before_move)
    assert [after_move[str(moved / Path(p).relative_to(clips_dir))]["row"] for p in sorted(before_move)] == [
        before_move[p]["row"] for p in sorted(before_move)]  # each file's row, hash and status carried over
    assert_same_index(local_ix, ray_ix)


@pytest.mark.slow
def test_a_decoder_that_kills_its_worker_fails_its_file_only(ray_env: RayCluster, tmp_path: Path,
                                                              tiny_cfg: EncoderConfig) -> None:
    folder = tmp_path / "corpus"
    build_corpus(folder, 6)
    write_clip(folder / SEGV_NAME, 99)  # its decode task kills its Ray worker with SIGSEGV, every try
    report = index_folder(folder, tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                          window_cfg=WINDOW, stages=ray_stages(RayOptions(batch_size=4, actors=1)))
    assert report.failed == [(str(folder / SEGV_NAME), LOST)]
    rows = {Path(p).name: f["row"][0] for p, f in dump(tmp_path / "ix").items()}
    assert rows == {**{f"c{i:02d}.wav": "ok" for i in range(6)}, SEGV_NAME: "error"}


# -- the driver and the actor killed mid-run, as real processes ------------------------------------------
def _actors(cluster: RayCluster) -> list[int]:
    """The cluster's embedding actor processes (their title names the Ray Data map worker)."""
    out = []
    for pid in cluster.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"MapWorker" in fh.read():
                    out.append(pid)
        except OSError:
            continue
    return out


def _start(folder: Path, index_dir: Path, model: Path, cluster: RayCluster | None, work: Path,
           **env_extra: str) -> subprocess.Popen[bytes]:
    """``dgsearch index`` as a process: ``--engine ray`` joined to ``cluster`` (None: ``--engine local``)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, "NO_COLOR": "1",
           "HF_HUB_OFFLINE": "1", **(cluster.env if cluster else {}), **env_extra}
    args = [str(DGSEARCH), "index", str(folder), "--index", str(index_dir), "--model", str(model), "--engine",
            "ray" if cluster else "local", "--batch-size", "2", "--window", "2", "--json"]
    args += ["--ray-batch-size", "2"] if cluster else []
    return subprocess.Popen(args, env=env, stdout=open(work / "out", "wb"), stderr=open(work / "err", "wb"))


def _kill_all(cluster: RayCluster) -> None:
    """SIGKILL every process of ``cluster``, again until none is left (a worker may be forking meanwhile)."""
    deadline = time.monotonic() + 30
    while pids := cluster.processes():
        assert time.monotonic() < deadline, f"Ray processes that survive SIGKILL: {pids}"
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _kill_head(cluster: RayCluster) -> None:
    """SIGKILL the head's control plane: ``ray start --block`` (which would stop the rest) and the GCS."""
    for pid in cluster.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if pid == cluster.session or b"gcs_server" in fh.read():
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def _wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def clean_build(tmp_path: Path, tiny_cfg: EncoderConfig) -> tuple[Path, Path]:
    """``(corpus of 40 one-window clips, its clean local index)``."""
    folder = tmp_path / "corpus"
    build_corpus(folder, 40)
    index_folder(folder, tmp_path / "clean", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                 indexing_cfg=INLINE, window_cfg=WINDOW)
    return folder, tmp_path / "clean"


@pytest.mark.slow
def test_actor_killed_mid_run_is_restarted_and_the_run_equals_a_clean_build(
        ray_cluster: RayCluster, clean_build: tuple[Path, Path], tmp_path: Path, tiny_clap_dir: Path) -> None:
    folder, clean = clean_build
    ix = tmp_path / "ix"
    proc = _start(folder, ix, tiny_clap_dir, ray_cluster, tmp_path)
    try:
        _wait_for(lambda: committed_count(ix) >= 1 and _actors(ray_cluster), 180, "a first commit")
        victims = _actors(ray_cluster)
        assert committed_count(ix) < 40 and proc.poll() is None  # mid-run
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        assert proc.wait(300) == 0, (tmp_path / "err").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_same_index(clean, ix)


@pytest.mark.slow
def test_driver_killed_mid_run_then_rerun_equals_a_clean_build(
        ray_cluster: RayCluster, clean_build: tuple[Path, Path], tmp_path: Path, tiny_clap_dir: Path) -> None:
    folder, clean = clean_build
    ix = tmp_path / "ix"
    proc = _start(folder, ix, tiny_clap_dir, ray_cluster, tmp_path)
    try:
        _wait_for(lambda: committed_count(ix) >= 1, 180, "a first commit")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert 1 <= committed_count(ix) < 40
    _wait_for(lambda: not _actors(ray_cluster), 60, "the dead driver's actors to go")
    again = _start(folder, ix, tiny_clap_dir, ray_cluster, tmp_path)
    assert again.wait(300) == 0, (tmp_path / "err").read_text()
    assert_same_index(clean, ix)


@pytest.mark.slow
def test_cluster_gone_mid_run_exits_16_keeps_what_was_committed_and_a_local_rerun_completes(
        own_ray_cluster: RayCluster, clean_build: tuple[Path, Path], tmp_path: Path, tiny_clap_dir: Path) -> None:
    # The head's GCS is killed, the raylet beside the driver is not: a driver on another node than the head sees
    # exactly this. Were this node's raylet killed too, Ray itself may end the driver at once (exit 1, "the
    # Raylet IPC connection failed"), whenever it next talks to it: nothing in the driver can catch that.
    folder, clean = clean_build
    ix, cluster = tmp_path / "ix", own_ray_cluster
    proc = _start(folder, ix, tiny_clap_dir, cluster, tmp_path, DGSEARCH_RAY_LOST_S="3")
    try:
        _wait_for(lambda: committed_count(ix) >= 1 and proc.poll() is None, 180, "a first commit")
        gone = time.monotonic()
        _kill_head(cluster)  # the head's control plane, for real; this node's raylet lives on, as a driver's would
        before = committed_paths(ix)  # committed before the loss (more may follow from rows already here)
        rc = proc.wait(120)
        took = time.monotonic() - gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_all(cluster)  # what is left of the runtime
    err = (tmp_path / "err").read_text()
    assert rc == 16, err
    assert took < 45, took  # 3 s to notice, ~10 s for Ray to let go of its GCS; Ray alone: 60 s, then exit 1
    assert [line for line in err.splitlines() if "indexing" not in line] == [  # no Ray noise beside progress
        f"dgsearch: error: the Ray cluster at {cluster.address} went away mid-run (its GCS did not answer for 3 s);"
        " what was committed is kept: run `dgsearch index` again (--engine ray or local) to resume"]
    assert 1 <= len(before) < 40
    kept, expected = dump(ix), dump(clean)
    assert before <= committed_paths(ix)
    for path in before:  # still there, with its windows and vectors
        assert (kept[path]["row"], kept[path]["windows"]) == (expected[path]["row"], expected[path]["windows"])
        assert sorted(kept[path]["vectors"]) == sorted(expected[path]["vectors"]) != []
        for key, vec in expected[path]["vectors"].items():
            np.testing.assert_allclose(kept[path]["vectors"][key], vec, rtol=0, atol=VEC_ATOL)

    again = _start(folder, ix, tiny_clap_dir, None, tmp_path)  # no cluster at all: the local engine resumes
    assert again.wait(300) == 0, (tmp_path / "err").read_text()
    assert_same_index(clean, ix)
