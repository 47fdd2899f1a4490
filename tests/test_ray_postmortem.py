"""``ray_postmortem.py``: the watcher beside a test's Ray runtime. A test process that dies with the runtime up
(as Ray's core worker ends a driver whose raylet went away: exit 1, not a line, seen in CI at stop 48) gets the
runtime's last words on the terminal and the runtime stopped; a normal stop gets neither. Real processes, really
killed: a stand-in runtime (a process in a session of its own, as ``ray start --block`` is) in the default run,
the real loopback Ray runtime in the slow suite."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ray_postmortem import STOPPED
from ray_processes import marked

TESTS = Path(__file__).resolve().parent


def _stand_in_runtime(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A ``sleep`` leading a session of its own, marked as the fixture marks Ray's processes, with a head log
    and a raylet log where Ray writes them."""
    marker = f"ray-{secrets.token_hex(6)}"
    logs = work / "t" / "session_latest" / "logs"
    logs.mkdir(parents=True)
    (work / "head.log").write_text("".join(f"head line {i}\n" for i in range(40)))
    (logs / "raylet.out").write_text(  # two records and, between them, a line of Ray's event-statistics dump
        "[2026-12-05 23:14:20,100 I 7 7] (raylet) main.cc:1: raylet started\n"
        "\tevent_loop_lag_probe - 2 total (0 active)\n"
        "[2026-12-05 23:14:50,200 E 7 7] (raylet) node_manager.cc:2: the GCS marked this node dead\n")
    head = subprocess.Popen(["sleep", "300"], env={**os.environ, "DGS_PROC_MARKER": marker}, start_new_session=True)
    return head, marker


def _watcher(work: Path, head: int, marker: str, test_pid: int) -> tuple[subprocess.Popen[bytes], int]:
    read_end, write_end = os.pipe()
    watcher = subprocess.Popen([sys.executable, str(TESTS / "ray_postmortem.py"), str(work), str(head), marker,
                                str(test_pid)], stdin=read_end, stderr=subprocess.PIPE)
    os.close(read_end)
    return watcher, write_end


def test_a_test_process_gone_with_its_runtime_up_gets_the_runtimes_last_words_and_the_runtime_stopped(
        tmp_path: Path) -> None:
    head, marker = _stand_in_runtime(tmp_path)
    try:
        watcher, write_end = _watcher(tmp_path, head.pid, marker, 4242)
        os.close(write_end)  # the test process died: nobody holds the write end any more
        _, err = watcher.communicate(timeout=60)
        assert head.wait(10) == -15  # SIGTERM, as the fixture stops ``ray start --block``
    finally:
        head.kill()
    text = err.decode()
    lines = text.splitlines()
    assert lines[0] == (f"ray_postmortem: the test process 4242 ended while its Ray runtime ({tmp_path}) was up;"
                        " what the runtime last said:")
    assert lines[1].startswith("-- memory now: MemTotal: ")
    assert lines[2:29] == ["-- head.log (last 25 lines):", *(f"   head line {i}" for i in range(15, 40)),
                           "-- t/session_latest/logs/raylet.out (last 25 lines):"]
    assert lines[29:] == ["   [2026-12-05 23:14:20,100 I 7 7] (raylet) main.cc:1: raylet started",
                          "   [2026-12-05 23:14:50,200 E 7 7] (raylet) node_manager.cc:2: the GCS marked this node dead",
                          "ray_postmortem: the runtime was stopped; processes left: []"]
    assert marked(marker, head.pid) == []


def test_a_normal_stop_says_nothing_and_stops_nothing(tmp_path: Path) -> None:
    head, marker = _stand_in_runtime(tmp_path)
    try:
        watcher, write_end = _watcher(tmp_path, head.pid, marker, 4242)
        os.write(write_end, STOPPED)  # the fixture's word; the end stays open as in a process with forked children
        _, err = watcher.communicate(timeout=60)
        assert (watcher.returncode, err, head.poll()) == (0, b"", None)
    finally:
        os.close(write_end)
        head.kill()
        head.wait(10)


DIES_WITH_A_RUNTIME_UP = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from fixtures_ray import loopback_runtime
    with loopback_runtime(Path(sys.argv[1])) as cluster:
        print(json.dumps({"marker": cluster.marker, "session": cluster.session}), flush=True)
        os._exit(1)  # as Ray's QuickExit: no finally, no atexit
""")


@pytest.mark.slow
def test_a_test_process_killed_with_the_real_runtime_up_leaves_its_logs_on_the_terminal_and_nothing_running(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("ray")
    work = tmp_path_factory.mktemp("ray-dies")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", DIES_WITH_A_RUNTIME_UP, str(work)], capture_output=True,
                          env=env, timeout=240)  # stderr is read to its end: the watcher's too
    assert proc.returncode == 1, proc.stderr.decode()[-3000:]
    assert proc.stdout, proc.stderr.decode()[-3000:]
    cluster = json.loads(proc.stdout)
    text = proc.stderr.decode()
    assert "ended while its Ray runtime" in text
    assert "-- head.log (last 25 lines):" in text and "Ray runtime started." in text
    assert "-- t/session_latest/logs/raylet.out (last 25 lines):" in text
    assert "-- t/session_latest/logs/gcs_server.out (last 25 lines):" in text
    assert text.rstrip().endswith("ray_postmortem: the runtime was stopped; processes left: []")
    assert marked(cluster["marker"], cluster["session"]) == []
    assert time.monotonic() - started < 240
