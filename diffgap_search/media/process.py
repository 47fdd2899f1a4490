"""Decoder child processes (ffmpeg, ffprobe): every one has a time limit, and none outlives its parent.

Time limits (stated defaults; module constants so a caller or a test may change them):

- ``ffprobe`` reads container metadata only (``run_limited``): ``PROBE_LIMIT_S`` (60 s), whatever the
  file's length.
- ``ffmpeg`` streaming to a pipe (``Watchdog``): the duration is not known up front, so the limit is on
  each wait for output: a block of ``b`` seconds of audio must arrive within ``time_limit(b)`` =
  ``BASE_LIMIT_S + PER_MEDIA_SECOND_S * b`` (60 s plus one second per second of media: anything slower than
  real time is taken as hung; ffmpeg decodes audio hundreds of times faster). Time the reader spends
  elsewhere (the encoder working while ffmpeg blocks on a full pipe) does not count.

On expiry the process is killed (SIGKILL) and waited for, and ``MediaDecodeError`` says
``"decoder timed out after N s (ffmpeg)"``. On Linux every such child also gets ``PR_SET_PDEATHSIG``
(SIGKILL when its parent dies), so a decoder worker killed for hanging, or a ``dgsearch`` killed with
SIGKILL, takes its ffmpeg with it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from diffgap_search.errors import MediaDecodeError
from diffgap_search.libc import libc_function

PROBE_LIMIT_S = 60.0
_REPEATED = re.compile(r"^(\[[^\]]*\]\s*)?Last message repeated \d+ times?$")
BASE_LIMIT_S = 60.0
PER_MEDIA_SECOND_S = 1.0
_PR_SET_PDEATHSIG = 1


def time_limit(duration_s: float | None) -> float:
    """Seconds a decoder may take for ``duration_s`` seconds of media (``BASE_LIMIT_S`` when unknown)."""
    extra = PER_MEDIA_SECOND_S * duration_s if duration_s is not None and duration_s > 0 else 0.0
    return BASE_LIMIT_S + extra


def failure(done: subprocess.CompletedProcess[bytes]) -> str:
    """Why a decoder that ran to its end (``run_limited``) failed, in one line: the last line it wrote to
    stderr (:func:`last_message`), else its exit status."""
    return last_message(done.stderr.decode("utf-8", "replace")) or f"exit status {done.returncode}"


def last_message(stderr: str) -> str | None:
    """The last line of a decoder's stderr that says something: ffmpeg's log ends a run of one repeated error
    with "Last message repeated 3 times" (a file failed with that line as its reason), skipped here."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if not _REPEATED.match(line)]
    return said[-1] if said else None


def timed_out(limit_s: float, what: str = "") -> str:
    """The one-line reason of a decoder that ran past ``limit_s``: ``"decoder timed out after 60 s"``."""
    return f"decoder timed out after {limit_s:g} s" + (f" ({what})" if what else "")


def _prctl_fn() -> Any:
    return libc_function("prctl")


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    False where that is not available (the caller then watches its parent's pid instead). Note: the
    signal fires when the parent *thread* that started this process exits; decoders are started from the
    thread that reads them.
    """
    prctl = _prctl_fn()
    return bool(prctl) and prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _child_setup(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` tying the child to ``parent_pid`` (None where prctl is missing)."""
    prctl = _prctl_fn()
    if not prctl:
        return None

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl: nobody would read us
            os._exit(1)

    return setup


def start(cmd: Sequence[str | bytes], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(cmd, stdin=DEVNULL, **kwargs)`` for a decoder that dies with this process."""
    # preexec_fn runs Python between fork and exec, unsafe only if it needs a lock that another thread held
    # at the fork: this one calls prctl (a ctypes function resolved beforehand) and getppid, and takes none.
    setup = _child_setup(os.getpid())
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=setup, **kwargs)  # noqa: PLW1509


def run_limited(cmd: Sequence[str | bytes], path: Path, limit_s: float, what: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` to its end with stdout/stderr captured; past ``limit_s`` it is killed and
    ``MediaDecodeError("<path>: decoder timed out after N s (<what>)")`` is raised."""
    with start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            out, err = proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise MediaDecodeError(f"{path}: {timed_out(limit_s, what)}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@contextmanager
def watched(cmd: Sequence[str | bytes], stderr: Any) -> Iterator[tuple[subprocess.Popen[bytes], Watchdog]]:
    """A decoder streaming to a pipe (``start(cmd)``, stdout piped, ``stderr`` where given) and its ``Watchdog``;
    on leaving, the watchdog stops and the process is killed if still running, its pipe closed and it waited
    for, whatever happened inside."""
    proc = start(cmd, stdout=subprocess.PIPE, stderr=stderr)
    assert proc.stdout is not None
    watchdog = Watchdog(proc)
    try:
        yield proc, watchdog
    finally:
        watchdog.close()
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()


class Watchdog:
    """Kills ``proc`` when one wait for its output (``with watchdog.waiting(limit_s): read``) runs past
    its limit. ``fired`` is then the limit that expired (else None). ``close()`` stops the thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._limit = 0.0
        self._closed = False
        self.fired: float | None = None
        self._thread = threading.Thread(target=self._run, name="decoder-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def waiting(self, limit_s: float) -> Iterator[None]:
        """Time the enclosed wait for output; the caller checks ``fired`` after it."""
        with self._cond:
            self._deadline, self._limit = time.monotonic() + limit_s, limit_s
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._deadline = None

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self.fired = self._limit
                self._deadline = None
                try:
                    self._proc.kill()
                except OSError:
                    pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
