"""The processes of a loopback Ray runtime that a test started (``fixtures_ray.py``), found and stopped without
importing Ray or this package: used by the session fixture and by its post-mortem watcher (``ray_postmortem.py``),
which outlives a test process that died."""

from __future__ import annotations

import os
import signal
import time

from process_watch import live_processes, proc_file


def marked(marker: str, session: int) -> list[int]:
    """Live (non-zombie) processes in ``session`` or whose environment holds ``DGS_PROC_MARKER=<marker>``."""
    needle = f"DGS_PROC_MARKER={marker}".encode()
    return [pid for pid, fields in live_processes()
            if int(fields[3]) == session or needle in (proc_file(pid, "environ") or b"").split(b"\0")]


def kill_what_is_left(marker: str, session: int, grace_s: float = 30.0) -> list[int]:
    """Wait up to ``grace_s`` for the runtime's processes to end, SIGKILL those still alive, wait 10 s more;
    returns those that survived even that (should be none)."""
    deadline = time.monotonic() + grace_s
    while marked(marker, session) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in marked(marker, session):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while marked(marker, session) and time.monotonic() < deadline:
        time.sleep(0.1)
    return marked(marker, session)


def stop_orphaned(head: int, marker: str) -> list[int]:
    """Stop a runtime whose ``ray start --block`` (pid ``head``, its session's leader) is nobody's child any
    more: SIGTERM to it while it is still in its own session (a pid reused by another process is left alone),
    then as ``kill_what_is_left``."""
    if head in marked(marker, head):
        try:
            os.kill(head, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return kill_what_is_left(marker, head)
