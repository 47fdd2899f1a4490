"""Decoded files pulled ahead by a thread (``indexing/prefetch.py``) over the real decode pool: order, crash
reasons and errors as ``ordered_map`` gives them, a bounded number of results held, decoding that overlaps a
busy consumer, and a close that kills the workers in flight (a hung one included) without waiting."""

from __future__ import annotations

import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import pool_tasks
import pytest
from process_watch import wait_gone
from test_decode_pool import workers_of

from diffgap_search.indexing.pool import ordered_map
from diffgap_search.indexing.prefetch import Prefetched


def _map(items: list[int], fn: Any = pool_tasks.task, workers: int = 2, deadline_s: float = 2.0) -> Any:
    def make(cancel: Connection) -> Any:
        return ordered_map(fn, items, workers, on_lost=pool_tasks.lost, deadline_s=deadline_s, cancel=cancel)
    return make


def test_results_crashes_and_a_hang_come_in_order_as_the_map_gives_them() -> None:
    items = [i for i in range(13) if i != 11]
    with Prefetched(_map(items), cost=lambda _r: 1, budget=4) as pulled:
        out = list(pulled)
    assert out == [0, 10, 20, "3: decoder crashed: signal 11 (SIGSEGV)", 40, "5: decoder crashed: signal 6 (SIGABRT)",
                   60, "7: decoder crashed: exit status 3", 80, "9: decoder timed out after 2 s", 100, 120]
    assert wait_gone(workers_of(os.getpid())) == []


def test_an_error_of_the_task_is_raised_after_the_results_already_pulled() -> None:
    with Prefetched(_map([0, 1, 11, 12], workers=1), cost=lambda _r: 1, budget=8) as pulled:  # one worker: in order
        assert [next(pulled), next(pulled)] == [0, 10]
        with pytest.raises(ValueError, match="a bug in the task for item 11"):
            next(pulled)
    assert wait_gone(workers_of(os.getpid())) == []


def test_it_holds_at_most_its_budget_and_decodes_while_the_consumer_is_busy() -> None:
    items = list(range(20, 40))  # no faults: each task sleeps 0.4 s in pool_tasks.slow
    held: list[int] = []
    with Prefetched(_map(items, fn=pool_tasks.slow), cost=lambda _r: 2, budget=6) as pulled:
        time.sleep(3.0)  # a busy consumer: the thread goes on pulling, up to the budget
        held.append(pulled._units)  # noqa: SLF001 - the held cost is what the test is about
        started = time.monotonic()
        first = [next(pulled)[0] for _ in range(3)]
        taken_s = time.monotonic() - started
        rest = [r[0] for r in pulled]
    assert held == [6]  # 3 results of cost 2, not the 6-7 that 3 s of 2 workers could have decoded
    assert taken_s < 0.1  # they were decoded while the consumer slept
    assert first + rest == items


def test_close_kills_the_workers_in_flight_without_waiting_for_a_hung_decoder() -> None:
    pulled = Prefetched(_map([0, 9, 12], workers=1, deadline_s=600.0), cost=lambda _r: 1, budget=8)
    assert next(pulled) == 0
    deadline = time.monotonic() + 10
    while not workers_of(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = workers_of(os.getpid())
    assert len(worker) == 1  # busy with item 9, hung in native code
    started = time.monotonic()
    pulled.close()
    assert time.monotonic() - started < 5.0
    assert wait_gone(worker) == []
    assert not any(t.name == "dgsearch-prefetch" for t in threading.enumerate())
