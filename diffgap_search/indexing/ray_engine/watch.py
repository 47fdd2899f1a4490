"""Noticing that the Ray cluster went away mid-run, and stopping the run in bounded time.

Left alone, a Ray driver whose cluster is gone hangs for Ray's GCS reconnect timeout (60 s by default),
printing an error line for every task it cannot report, and is then terminated by Ray (exit 1, no word of what
to do). ``ClusterWatch`` instead connects to the cluster's GCS every ``interval_s``; when it has refused or
timed out for ``lost_s`` on end (``DGSEARCH_RAY_LOST_S``, default 10 s: short of Ray's 60 s), it interrupts
the main thread, which the driver turns into ``EngineUnavailableError`` (exit 16, one line; what was
committed stays). Should the main thread not get out within ``exit_after_s`` (stuck in Ray's C++), the watch
prints that line itself and ends the process with exit 16: a kill by the crash rule, which loses at most the
batch in flight.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

from diffgap_search.config import env_seconds
from diffgap_search.errors import EngineUnavailableError

LOST_ENV = "DGSEARCH_RAY_LOST_S"
DEFAULT_LOST_S = 10.0


def lost_after_s() -> float:
    """``DGSEARCH_RAY_LOST_S``: seconds the GCS may not answer before the cluster counts as gone (default 10).
    Raises UsageError for a value that is not a positive number."""
    return env_seconds(LOST_ENV, DEFAULT_LOST_S)


def lost_message(what: str, gcs: str, lost_s: float) -> str:
    """The one line a run stopped by a lost cluster ends with (``what``: ``connect.where``'s words)."""
    at = "" if what.endswith(gcs) else f" at {gcs}"
    return (f"{what} went away mid-run (its GCS{at} did not answer for {lost_s:g} s); what was committed is"
            " kept: run `dgsearch index` again (--engine ray or local) to resume")


class ClusterWatch:
    """A daemon thread watching the GCS at ``gcs`` (``host:port``; None: a cluster it cannot watch, such as a
    Ray Client ``ray://`` one); ``message`` is set once the cluster is lost.

    ``stop()`` (before ``ray.shutdown``): no interrupt after it returns. ``close()`` (after): the main thread
    is out of Ray, so the watch has nothing left to end."""

    def __init__(self, gcs: str | None, what: str, lost_s: float, interval_s: float = 0.5,
                 exit_after_s: float = 30.0) -> None:
        self.gcs, self.what, self.lost_s = gcs, what, lost_s
        self.interval_s, self.exit_after_s = interval_s, exit_after_s
        self.message: str | None = None
        self._reported = False
        self._stopped, self._closed = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dgsearch-ray-watch", daemon=True)

    def start(self) -> ClusterWatch:
        if self.gcs is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the run is over, or its lost-cluster error is on its way out)."""
        with self._lock:
            self._stopped.set()

    def close(self) -> None:
        """The run has let go of Ray (``ray.shutdown`` returned): the watch ends nothing."""
        self.stop()
        self._closed.set()

    def lost_error(self) -> EngineUnavailableError:
        """The error the driver raises for the lost cluster (the watch then leaves the line to the CLI)."""
        assert self.message is not None
        self._reported = True
        return EngineUnavailableError(self.message)

    def _answers(self) -> bool:
        assert self.gcs is not None
        host, _, port = self.gcs.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=min(2.0, self.lost_s)).close()
            return True
        except (OSError, ValueError):
            return False

    def _run(self) -> None:
        failing_since: float | None = None
        while not self._stopped.wait(self.interval_s):
            if self._answers():
                failing_since = None
                continue
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= self.lost_s:
                break
        else:
            return
        with self._lock:
            if self._stopped.is_set():
                return  # the run ended meanwhile
            self.message = lost_message(self.what, str(self.gcs), self.lost_s)
            _interrupt_main()
        if self._closed.wait(self.exit_after_s):
            return  # the driver raised the error and let go of Ray
        if not self._reported:  # the main thread is stuck in Ray: say it here
            sys.stderr.write(f"dgsearch: error: {self.message}\n")
            sys.stderr.flush()
        os._exit(EngineUnavailableError.exit_code)  # the crash rule: at most the batch in flight is lost


def _interrupt_main() -> None:
    """KeyboardInterrupt in the main thread, even one blocked in a lock or a queue (Ray Data's iterator): a
    real SIGINT to it where Python handles SIGINT; elsewhere (SIGINT ignored or not Python's) nothing, and the
    watch's deadline ends the process."""
    if callable(signal.getsignal(signal.SIGINT)):
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
