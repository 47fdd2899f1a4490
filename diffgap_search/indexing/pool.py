"""Decode workers that may crash or hang without taking the run with them: ``ordered_map`` for short
files, ``stream_in_worker`` for a long file's stream of windows.

A decoder can die in native code (a segfault in libsndfile, decord or ffmpeg's libraries; the kernel's
OOM killer) or get stuck there. ``concurrent.futures.ProcessPoolExecutor`` turns the first into
``BrokenProcessPool`` for every pending task and has no answer to the second. Here:

- **One task per worker at a time**, each worker on its own pipe. A worker that dies was running exactly
  one task, which is therefore the culprit, with no guessing; the tasks of the other workers are not
  touched (nothing needs retrying), and queued tasks go to a fresh worker started in its place. (The
  alternatives cost more: a shared queue needs the workers to report "started i" and the dead pool's
  in-flight tasks resubmitted one at a time to find the culprit.) The price is one pipe round trip of
  idle time per task, well under a millisecond against tens of milliseconds of decoding (measured: 300
  one-second WAVs decode in 2.0-2.2 s on 2 workers, against 3.6-4.0 s with ProcessPoolExecutor).
- **A deadline per task** (``deadline_s``, counted from when the worker is ready): a worker past it is
  killed with SIGKILL, its task reported lost, and a fresh worker started.
- A lost task becomes a result through ``on_lost(item, reason)``, in its place in the order. Reasons are
  ``"decoder crashed: signal 11 (SIGSEGV)"`` (killed by a signal), ``"decoder crashed: exit status 3"``
  (exited on its own) and ``"decoder timed out after 600 s"``.
- **No worker outlives the map.** When the iteration ends (exhausted, closed, or an exception in the
  consumer) idle workers are told to stop and busy ones are killed. Should the main process itself die
  (SIGKILL included), each worker follows it: ``PR_SET_PDEATHSIG`` on Linux, and a thread that watches
  the parent's pid elsewhere; ffmpeg children of a worker carry the same tie (``media/process.py``).
  Workers ignore SIGINT: Ctrl-C is the main process's to handle.

``stream_in_worker`` runs one generator in a worker of its own and yields its items as they come (the
pipe's back-pressure bounds memory); the deadline applies to each wait for the next item, and a lost
worker raises ``MediaDecodeError`` with the same reasons.

- **A task whose worker crashed is tried once more** in a fresh worker (``CRASH_RETRIES``): a worker killed
  from outside (the OOM killer, an operator) then costs nothing, and a file that really crashes its decoder
  fails on its second crash with the reason above. A task past its deadline is not retried.
- **A worker that dies before it is ready** (killed while it imports its libraries, when memory peaks) is
  replaced and its task, which it never started, handed to the replacement; after ``START_ATTEMPTS`` such
  deaths in a row, with a back-off between them, ``DecoderStartError`` (exit 15) ends the run in one line.

An exception raised by ``fn`` itself (a bug, or bad media in a stream) is re-raised in the consumer as soon as
it arrives (results not yet yielded are dropped: the run ends; waiting for them could mean waiting on a hung
decoder until its deadline).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from diffgap_search.errors import DecoderStartError, MediaDecodeError
from diffgap_search.indexing.spill import Spilled, SpillFd, close_spill, open_spill, spill, unspill
from diffgap_search.media.process import die_with_parent

T = TypeVar("T")
R = TypeVar("R")
_STOP_WAIT_S = 5.0
_START_LIMIT_S = 60.0  # a worker not ready by then (imports stuck) is a broken installation
_PARENT_POLL_S = 0.5
START_ATTEMPTS = 5  # workers in a row that may die before they are ready
START_BACKOFF_S = 0.25  # the wait after the n-th death in a row: START_BACKOFF_S * 2 ** (n - 1)
CRASH_RETRIES = 1  # times a task whose worker crashed is run again in a fresh worker


def exit_text(exitcode: int | None) -> str:
    """``"signal 11 (SIGSEGV)"`` for a negative exit code (killed by that signal), else ``"exit status N"``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


def crash_reason(exitcode: int | None) -> str:
    """``"decoder crashed: signal 11 (SIGSEGV)"`` (or ``"decoder crashed: exit status 3"``)."""
    return f"decoder crashed: {exit_text(exitcode)}"


def deadline_reason(deadline_s: float) -> str:
    """``"decoder timed out after 600 s"``."""
    return f"decoder timed out after {deadline_s:g} s"


class _Starts:
    """Counts workers that died before they were ready, in a row; backs off after each, gives up at the limit."""

    def __init__(self) -> None:
        self.failures = 0

    def ready(self) -> None:
        self.failures = 0

    def failed(self, reason: str) -> None:
        """After a worker died unready (``reason``): sleep the back-off, or raise DecoderStartError at the limit."""
        self.failures += 1
        if self.failures >= START_ATTEMPTS:
            raise DecoderStartError(
                f"decode workers cannot start: {self.failures} in a row died before they were ready (the last:"
                f" {reason}); free some memory, or index with --workers 0 to decode in the indexing process")
        time.sleep(START_BACKOFF_S * 2 ** (self.failures - 1))


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _start_worker(conn: Connection, parent_pid: int) -> None:
    """In a new worker: ignore Ctrl-C, die with the parent (prctl, and a pid watch), say ready."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if die_with_parent() and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before prctl took effect
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    conn.send(("ready", os.getpid()))


def _send(conn: Connection, msg: tuple[str, int, Any]) -> None:
    try:
        conn.send(msg)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
        conn.send(("raise", msg[1], RuntimeError(f"decode worker could not send its result: {exc!r}")))


def _next_task(conn: Connection) -> tuple[int, Any] | None:
    """The next task ``(i, item)`` from the consumer; None when it says stop (``None``) or the pipe closes."""
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        return None
    return None if msg is None else (msg[0], msg[1])


def _map_main(conn: Connection, fn: Callable[[Any], Any], parent_pid: int, into: SpillFd | None = None) -> None:
    """A map worker: run tasks ``(i, item)``, answering ``("ok", i, result)`` or ``("raise", i, exc)``,
    until ``None`` or the pipe closes. A result's large buffers go through ``into`` (``spill.py``)."""
    _start_worker(conn, parent_pid)
    while (task := _next_task(conn)) is not None:
        i, item = task
        try:
            out: tuple[str, int, Any] = ("ok", i, spill(fn(item), into))
        except Exception as exc:  # noqa: BLE001 - sent to the consumer, which re-raises it
            out = ("raise", i, exc)
        _send(conn, out)


def _stream_main(conn: Connection, fn: Callable[[Any], Iterable[Any]], parent_pid: int, _into: None = None) -> None:
    """A stream worker: for its one task ``(0, item)``, send ``("item", 0, x)`` for each ``x`` of
    ``fn(item)``, then ``("end", 0, None)`` (or ``("raise", 0, exc)``)."""
    _start_worker(conn, parent_pid)
    task = _next_task(conn)
    if task is None:
        return
    try:
        for x in fn(task[1]):
            _send(conn, ("item", 0, x))
        out: tuple[str, int, Any] = ("end", 0, None)
    except Exception as exc:  # noqa: BLE001 - sent to the consumer, which re-raises it
        out = ("raise", 0, exc)
    _send(conn, out)


class _Worker(Generic[T]):
    """One worker process, its pipe, and the task it runs: ``(index, item)``, deadline once ready."""

    def __init__(self, ctx: Any, target: Callable[..., None], fn: Callable[[T], Any], spills: bool = False) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.spill = open_spill() if spills else None  # its results' large buffers come through it (``spill.py``)
        self.proc: BaseProcess = ctx.Process(target=target, args=(child, fn, os.getpid(), self.spill),
                                             name="dgsearch-decode", daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.task: tuple[int, T] | None = None
        self.deadline = time.monotonic() + _START_LIMIT_S  # to get ready; then per task

    def assign(self, i: int, item: T, deadline_s: float | None) -> bool:
        """Send the task; False when the worker turns out to be dead (the task is not its fault)."""
        try:
            self.conn.send((i, item))
        except OSError:
            return False
        self.task = (i, item)
        self.arm(deadline_s)
        return True

    def arm(self, deadline_s: float | None) -> None:
        """Start the clock of the task (or of the wait for its next item), once the worker is ready."""
        if self.ready:
            busy = self.task is not None and deadline_s is not None
            self.deadline = time.monotonic() + deadline_s if busy else float("inf")  # type: ignore[operator]

    def check(self, deadline_s: float | None) -> tuple[str, Any] | None:
        """After a wait: ``("msg", message)``; ``("crashed", reason)`` (the worker died) or ``("lost", reason)``
        (it ran past its deadline: it is killed), each reaped; ``("unstarted", reason)`` for a worker that died
        or was killed before it was ready (its task never began); or None (nothing yet, or just ready)."""
        try:
            msg = self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):  # died mid-message
            msg = None
        if msg is not None and msg[0] == "ready":
            self.ready = True
            self.arm(deadline_s)
            return None
        if msg is not None:
            if msg[0] == "ok" and isinstance(msg[2], Spilled) and self.spill is not None:
                msg = ("ok", msg[1], unspill(msg[2], self.spill))  # read before the worker's next task reuses it
            return "msg", msg
        if self.proc.exitcode is not None:
            code = self.kill()
            return ("crashed", crash_reason(code)) if self.ready else ("unstarted", exit_text(code))
        if time.monotonic() >= self.deadline:
            self.kill()
            if not self.ready:
                return "unstarted", f"not ready within {_START_LIMIT_S:g} s"
            return "lost", deadline_reason(deadline_s or 0.0)
        return None

    def kill(self) -> int | None:
        """SIGKILL (if still alive), reap, close the pipe; the exit code."""
        if self.proc.exitcode is None:
            self.proc.kill()
        self.proc.join()
        self.conn.close()
        close_spill(self.spill)
        return self.proc.exitcode

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it if it has not within a few seconds."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(_STOP_WAIT_S)
        self.kill()


def _wait(workers: list[_Worker[Any]], cancel: Connection | None = None) -> None:
    """Block until one of ``workers`` sends, dies, or reaches its deadline, or ``cancel`` is readable."""
    timeout = max(0.0, min(w.deadline for w in workers) - time.monotonic())
    handles: list[Any] = [w.conn for w in workers] + [w.proc.sentinel for w in workers]
    wait(handles + ([cancel] if cancel is not None else []), timeout=None if timeout == float("inf") else timeout)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    on_lost: Callable[[T, str], R],
    ahead: int = 3,
    deadline_s: float | None = None,
    cancel: Connection | None = None,
) -> Iterator[R]:
    """``map(fn, items)`` in order, run in ``workers`` spawned processes, at most ``ahead`` tasks per
    worker pulled from ``items`` and not yet yielded (bounded memory); inline when ``workers`` is 0.

    A task whose worker crashed or ran past ``deadline_s`` seconds yields ``on_lost(item, reason)``
    instead (see the module docstring). ``fn`` and the items must be picklable; ``fn`` importable.
    ``cancel``: once it is readable the map ends at its next wait, killing the busy workers (a consumer in
    another thread stops it this way without waiting for the tasks in flight, ``prefetch.py``).
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork after torch/OpenMP threads exist
    source = iter(items)
    queue: deque[tuple[int, T]] = deque()
    done: dict[int, R] = {}
    pool: list[_Worker[T]] = []
    crashes: dict[int, int] = {}  # task index -> times its worker crashed
    starts = _Starts()
    pulled = emitted = 0
    exhausted = False
    try:
        while True:
            while not exhausted and pulled < emitted + workers * ahead:
                try:
                    queue.append((pulled, next(source)))
                    pulled += 1
                except StopIteration:
                    exhausted = True
            for w in [w for w in pool if w.task is None] + [None] * (workers - len(pool)):
                if not queue:
                    break
                if w is None:
                    w = _Worker(ctx, _map_main, fn, spills=True)
                    pool.append(w)
                if w.assign(*queue[0], deadline_s):
                    queue.popleft()
                    continue
                code = w.kill()  # it died while idle (the OOM killer, say): the next pass replaces it
                pool.remove(w)
                if not w.ready:
                    starts.failed(exit_text(code))
            if emitted in done:
                emitted += 1
                yield done.pop(emitted - 1)
                continue
            busy = [w for w in pool if w.task is not None]
            if not busy:
                if exhausted and not queue:
                    return
                continue
            _wait(busy, cancel)
            if cancel is not None and cancel.poll():
                return
            for w in busy:
                was_ready = w.ready
                event = w.check(deadline_s)
                if w.ready and not was_ready:
                    starts.ready()
                if event is None:
                    continue
                assert w.task is not None
                i, item = w.task
                if event[0] in ("unstarted", "crashed", "lost"):
                    pool.remove(w)
                    if event[0] == "unstarted":  # its task never began: the next worker takes it first
                        queue.appendleft((i, item))
                        starts.failed(event[1])
                    elif event[0] == "crashed" and crashes.get(i, 0) < CRASH_RETRIES:
                        crashes[i] = crashes.get(i, 0) + 1
                        queue.appendleft((i, item))
                    else:
                        done[i] = on_lost(item, event[1])
                elif event[1][0] == "ok":
                    done[i] = event[1][2]
                    w.task = None
                    w.arm(deadline_s)
                else:  # the task's own exception (a bug): raised at once, even if a file before it hangs
                    raise event[1][2]
    finally:
        for w in pool:
            if w.task is None and w.proc.exitcode is None:
                w.stop()
            else:
                w.kill()


def _stream_worker(ctx: Any, fn: Callable[[T], Iterable[R]], item: T, deadline_s: float | None,
                   starts: _Starts) -> _Worker[T]:
    """A fresh stream worker holding its task (one that dies before it can take it is replaced)."""
    while True:
        w: _Worker[T] = _Worker(ctx, _stream_main, fn)
        if w.assign(0, item, deadline_s):
            return w
        starts.failed(exit_text(w.kill()))


def stream_in_worker(fn: Callable[[T], Iterable[R]], item: T, *, deadline_s: float | None = None) -> Iterator[R]:
    """The items of ``fn(item)`` (a generator function, importable), produced in a worker process of its own.

    Each wait for the next item may last ``deadline_s`` seconds (the consumer's own time between items
    does not count: the worker then waits on the full pipe). A worker that crashes or runs past the
    deadline is killed and ``MediaDecodeError`` raised, its ``.reason`` as in ``ordered_map``; an exception
    in ``fn`` is re-raised. The worker is gone when the iteration ends, however it ends.
    """
    ctx = multiprocessing.get_context("spawn")
    starts = _Starts()
    w = _stream_worker(ctx, fn, item, deadline_s, starts)
    try:
        while True:
            w.arm(deadline_s)  # the clock runs while we wait, not while the consumer works
            event = None
            while event is None:
                _wait([w])
                event = w.check(deadline_s)
            if event[0] == "unstarted":  # nothing was produced yet: a fresh worker starts the stream
                starts.failed(event[1])
                w = _stream_worker(ctx, fn, item, deadline_s, starts)
                continue
            if event[0] in ("crashed", "lost"):
                err = MediaDecodeError(event[1])
                err.reason = event[1]  # type: ignore[attr-defined]
                raise err
            kind, _, value = event[1]
            if kind == "end":
                return
            if kind == "raise":
                raise value
            yield value
    finally:
        w.kill()
