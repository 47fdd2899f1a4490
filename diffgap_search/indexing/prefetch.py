"""Decoded files pulled from the decode workers by a thread, while the main thread embeds.

``pool.ordered_map`` is a generator: it assigns a worker its next file only when the consumer asks for the
next result, and a worker blocks on its pipe until its result is read. While the main thread runs the
encoder (a second or so per batch on a CPU), nothing asks, so the workers sit idle and, after each batch,
the main thread waits for the next files to be decoded one after another (measured: 4.4 s of 43 s idle in
``select`` for 599 windows on 2 cores). :class:`Prefetched` runs the map in a thread of its own that keeps
reading results (torch releases the GIL while it computes) up to a budget of held windows, so decoding
overlaps encoding and memory stays bounded: at most ``budget`` windows held plus the file being handed over.

The map is created and closed in that thread (its workers are its children, ``PR_SET_PDEATHSIG`` included).
:meth:`Prefetched.close` asks it to stop through a pipe the map waits on, so closing never waits for the
files in flight (a hung decoder included): their workers are killed, as ``ordered_map`` does when closed.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Generic, TypeVar

R = TypeVar("R")
_JOIN_S = 30.0  # the map ends at its next wait once cancelled; this only bounds a pathological case


class Prefetched(Generic[R]):
    """Iterate the results of ``make(cancel)`` (an ``ordered_map`` given ``cancel=``), pulled ahead by a
    thread while ``cost`` of the results held (and not yet taken) is below ``budget``.

    Results come in order; an exception raised by the map is raised by ``__next__`` once the results the
    thread had already pulled are taken. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, make: Callable[[Connection], Iterator[R]], cost: Callable[[R], int], budget: int) -> None:
        self._cost, self._budget = cost, max(1, budget)
        self._cancel_r, self._cancel_w = multiprocessing.Pipe(duplex=False)
        self._cond = threading.Condition()
        self._held: deque[tuple[R, int]] = deque()
        self._units = 0
        self._done = self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), name="dgsearch-prefetch", daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[Connection], Iterator[R]]) -> None:
        source: Iterator[R] | None = None
        try:
            source = make(self._cancel_r)
            for item in source:
                units = self._cost(item)
                with self._cond:
                    self._held.append((item, units))
                    self._units += units
                    self._cond.notify_all()
                    while self._units >= self._budget and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._error = exc
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # ordered_map's finally: no worker outlives it
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[R]:
        return self

    def __next__(self) -> R:
        with self._cond:
            while not self._held and not self._done:
                self._cond.wait()
            if self._held:
                item, units = self._held.popleft()
                self._units -= units
                self._cond.notify_all()
                return item
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            raise StopIteration

    def set_budget(self, budget: int) -> None:
        """Hold at most ``budget`` windows from now on (results already held above it stay until taken)."""
        with self._cond:
            self._budget = max(1, budget)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the map (workers in flight are killed) and wait for the thread; idempotent."""
        with self._cond:
            self._stop = True
            self._held.clear()
            self._cond.notify_all()
        if not self._cancel_w.closed:
            self._cancel_w.send(None)
        self._thread.join(_JOIN_S)
        if not self._thread.is_alive():
            self._cancel_w.close()
            self._cancel_r.close()

    def __enter__(self) -> Prefetched[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
