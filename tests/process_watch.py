"""Watching processes through /proc in tests: alive (not a zombie), and waiting for them to go."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The pids still alive after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """``(pid, fields)`` of every live (non-zombie) process: ``fields`` are ``/proc/<pid>/stat``'s after the
    command name (``fields[0]`` the state, ``[1]`` the parent, ``[3]`` the session). Processes that end while
    they are read are skipped."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] != "Z":
            yield int(entry), fields


def proc_file(pid: int, name: str) -> bytes | None:
    """``/proc/<pid>/<name>`` (``environ``, ``cmdline``) as bytes; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            return fh.read()
    except OSError:
        return None
