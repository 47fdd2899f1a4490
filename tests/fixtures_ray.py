"""One real Ray runtime per pytest session, on loopback, for ``--engine ray`` tests (issue 22), and one of its
own for a test that kills it (``own_ray_cluster``).

``ray start --head --block`` runs under this venv's Python (its workers import this tree's package) with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (a single node on 127.0.0.1, not the machine's interface address) and
token authentication (Ray >= 2.59). Its workers get ``tests/`` and the fault shim on their path (the tests'
loaders pickle by reference; ``DGS_DECODE_FAULT`` makes the decoder of a file named ``ray_segv.wav`` kill its
worker with SIGSEGV, and no other file). Every process of the runtime is in the session ``ray start`` leads
(or carries ``DGS_PROC_MARKER`` in its environment, for one that left it; Ray's agents rewrite their environ
with their title, so the session is the sure sign): at the end the runtime is stopped and none may be left.
Skipped when Ray is not installed.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
from ray_helpers import ray_left_alone
from ray_postmortem import STOPPED
from ray_processes import kill_what_is_left, marked

TESTS = Path(__file__).resolve().parent
SHIM = TESTS / "fault_injection"
SEGV_NAME = "ray_segv.wav"


@dataclass(frozen=True)
class RayCluster:
    """A running loopback Ray runtime: ``env`` is what a driver needs to join it (address, token, loopback)."""

    address: str
    env: dict[str, str]
    marker: str
    session: int  # the session id of its processes (``ray start``'s pid)

    def processes(self) -> list[int]:
        return marked(self.marker, self.session)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(head: subprocess.Popen[bytes], marker: str) -> list[int]:
    """Stop the runtime: SIGTERM to ``ray start --block`` (it stops what it started), then SIGKILL to any
    process of it still alive after 30 s; returns those that survived even that (should be none)."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(10)
    return kill_what_is_left(marker, head.pid)


def _watch(work: Path, head: int, marker: str, terminal: Callable[[], AbstractContextManager[object]]
           ) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``ray_postmortem.py`` beside the runtime, with the terminal's stderr (``terminal()`` lifts the
    capture while it starts); returns it and the write end of its pipe, which only this process holds."""
    read_end, write_end = os.pipe()
    try:
        with terminal():
            watcher = subprocess.Popen(
                [sys.executable, str(TESTS / "ray_postmortem.py"), str(work), str(head), marker, str(os.getpid())],
                stdin=read_end, stdout=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(read_end)
    return watcher, write_end


def _release(watcher: subprocess.Popen[bytes], said: int) -> None:
    """Tell the watcher the runtime was stopped as planned, and wait for it (killed if it does not end)."""
    try:
        os.write(said, STOPPED)
    except BrokenPipeError:  # the watcher is gone already
        pass
    finally:
        os.close(said)
    try:
        watcher.wait(30)
    except subprocess.TimeoutExpired:
        watcher.kill()
        watcher.wait(10)


@contextmanager
def loopback_runtime(work: Path, terminal: Callable[[], AbstractContextManager[object]] = nullcontext
                     ) -> Iterator[RayCluster]:
    """A Ray runtime of its own on 127.0.0.1 (``ray start --head --block``, its files under ``work``), stopped
    on exit, none of its processes left behind; should this process die first, ``ray_postmortem.py`` writes
    the runtime's last words to the terminal (``terminal()``: a context in which stderr is the terminal's)
    and stops it."""
    port, marker, token = _free_port(), f"ray-{secrets.token_hex(6)}", secrets.token_hex(16)
    joins = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
             "RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_USAGE_STATS_ENABLED": "0"}
    # no drain on SIGTERM: a node that had run a Ray Data job (its detached helper actors) waited out Ray's 30 s
    # drain, then this fixture its own 30 s, at every session's end
    env = {**os.environ, **joins, "DGS_PROC_MARKER": marker, "DGS_DECODE_FAULT": f"segv:{SEGV_NAME}",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
           "PYTHONPATH": os.pathsep.join([str(SHIM), str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("RAY_ADDRESS")
    log = open(work / "head.log", "w+b")
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={work / 't'}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    watcher, said = _watch(work, head.pid, marker, terminal)
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in (work / "head.log").read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ray start failed:\n" + (work / "head.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield RayCluster(f"127.0.0.1:{port}", joins, marker, head.pid)
    finally:
        left = _stop(head, marker)
        log.close()
        _release(watcher, said)
        assert left == [], f"Ray processes left behind: {left}"


def _skip_without_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its settings when imported
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RayCluster]:
    """The session's runtime, shared by the tests that join it (never killed by one)."""
    _skip_without_ray()
    # Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when imported: set before any import of it in this process,
    # so that this process, as a driver, stays on loopback too
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    with loopback_runtime(tmp_path_factory.mktemp("ray"), _terminal(request)) as cluster:
        yield cluster


def _terminal(request: pytest.FixtureRequest) -> Callable[[], AbstractContextManager[object]]:
    """A context in which this process's stderr is the terminal's, not pytest's capture."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    return capman.global_and_fixture_disabled if capman is not None else nullcontext


@pytest.fixture
def own_ray_cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RayCluster]:
    """A runtime for one test that kills it (drivers join it from subprocesses only)."""
    _skip_without_ray()
    with loopback_runtime(tmp_path_factory.mktemp("ray-own"), _terminal(request)) as cluster:
        yield cluster


@pytest.fixture
def ray_env(ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[RayCluster]:
    """This process joins the session's runtime (``RAY_ADDRESS`` and the token in its environment). After the
    test nothing of Ray may be left running in this process (``ray_left_alone``): the test that left it fails
    in its teardown, and Ray is let go so that the next test starts clean."""
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    yield ray_cluster
    left = ray_left_alone()
    if "initialized" in left:
        sys.modules["ray"].shutdown()
    assert left == [], f"a run left Ray running in the test process: {left}"
