"""The decode pool (``indexing/pool.py``) with real worker processes that segfault, abort, exit, hang in
native code and raise: results stay in order, each lost task gets its exact reason, nothing else is lost,
and no worker outlives the map or its parent (SIGKILL included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pool_tasks
import pytest
from process_watch import alive, live_processes, proc_file, wait_gone

from diffgap_search.indexing.pool import crash_reason, deadline_reason, ordered_map

TESTS = Path(__file__).resolve().parent


def workers_of(pid: int) -> list[int]:
    """Live (non-zombie) spawned worker processes whose parent is ``pid``, from /proc."""
    return [p for p, fields in live_processes()
            if int(fields[1]) == pid and b"spawn_main" in (proc_file(p, "cmdline") or b"")]






def test_reasons_have_one_stable_format() -> None:
    assert crash_reason(-11) == "decoder crashed: signal 11 (SIGSEGV)"
    assert crash_reason(-6) == "decoder crashed: signal 6 (SIGABRT)"
    assert crash_reason(-9) == "decoder crashed: signal 9 (SIGKILL)"  # the OOM killer
    assert crash_reason(3) == "decoder crashed: exit status 3"
    assert deadline_reason(600.0) == "decoder timed out after 600 s"
    assert deadline_reason(2.5) == "decoder timed out after 2.5 s"


def test_crashes_and_a_hang_cost_one_task_each_in_order() -> None:
    items = [i for i in range(13) if i != 11]  # 11 raises: tested below
    started = time.monotonic()
    out = list(ordered_map(pool_tasks.task, items, 2, on_lost=pool_tasks.lost, deadline_s=2.0))
    elapsed = time.monotonic() - started
    assert out == [0, 10, 20, "3: decoder crashed: signal 11 (SIGSEGV)", 40, "5: decoder crashed: signal 6 (SIGABRT)",
                   60, "7: decoder crashed: exit status 3", 80, "9: decoder timed out after 2 s", 100, 120]
    assert 2.0 <= elapsed < 30.0
    assert workers_of(os.getpid()) == []  # all stopped and reaped when the map ended


def test_tasks_in_flight_beside_a_crash_are_not_lost() -> None:
    out = list(ordered_map(pool_tasks.slow, range(6), 3, on_lost=pool_tasks.lost, deadline_s=30.0))
    assert out[1] == "1: decoder crashed: signal 11 (SIGSEGV)"
    assert [r[0] for r in out if isinstance(r, tuple)] == [0, 2, 3, 4, 5]  # 0 and 2 were busy when 1 crashed
    assert workers_of(os.getpid()) == []


def test_a_task_exception_is_raised_and_the_workers_stopped() -> None:
    with pytest.raises(ValueError, match="a bug in the task for item 11"):
        list(ordered_map(pool_tasks.task, [10, 11, 12, 9], 2, on_lost=pool_tasks.lost, deadline_s=60.0))
    assert workers_of(os.getpid()) == []  # the hung worker (item 9) too: killed, not waited for


def test_a_consumer_that_stops_early_leaves_no_worker() -> None:
    gen = ordered_map(pool_tasks.task, [0, 1, 9, 2, 4], 2, on_lost=pool_tasks.lost, deadline_s=60.0)
    assert [next(gen), next(gen)] == [0, 10]
    assert len(workers_of(os.getpid())) == 2  # one of them hung on item 9
    gen.close()
    assert workers_of(os.getpid()) == []


def test_items_are_pulled_at_most_ahead_per_worker() -> None:
    pulled: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for i in (0, 1, 2, 4, 6, 8, 10, 12):
            pulled.append(i)
            yield i

    gen = ordered_map(pool_tasks.task, items(), 1, on_lost=pool_tasks.lost, ahead=2)
    assert next(gen) == 0
    assert len(pulled) <= 3  # 2 in flight or waiting, plus the one just yielded
    assert list(gen) == [10, 20, 40, 60, 80, 100, 120]


PARENT = """
import sys
sys.path.insert(0, {tests!r})
import pool_tasks
from diffgap_search.indexing.pool import ordered_map
print("started", flush=True)
for _ in ordered_map(pool_tasks.task, [0, 9], 1, on_lost=pool_tasks.lost):
    pass
"""


def test_a_worker_hung_in_native_code_dies_with_its_killed_parent() -> None:
    """The worker holds the GIL in ``sleep`` (no Python thread of it runs again): only the kernel's
    parent-death signal can end it once its parent is SIGKILLed."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(tests=str(TESTS))], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"started\n"
        deadline = time.monotonic() + 60
        while not workers_of(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        worker = workers_of(parent.pid)
        assert len(worker) == 1
        time.sleep(1.0)  # item 0 done, item 9 hanging
        assert alive(worker[0])
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert wait_gone(worker) == []


def test_decoder_children_die_with_their_parent() -> None:
    """An ffmpeg started through ``media.process.start`` is killed when the process that started it dies."""
    code = ("import sys; from diffgap_search.media import process; "
            "p = process.start(['sleep', '600']); print(p.pid, flush=True); sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_gone([child]) == []
