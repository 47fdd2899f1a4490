"""Watches a test process that has a loopback Ray runtime up (``fixtures_ray.loopback_runtime``) and speaks
when that process dies without stopping it.

Seen in CI (stop 48): the slow suite ended with exit 1 in a Ray test and not one line, as Ray's C++ core worker
does (``QuickExit``) when the raylet or the GCS of the runtime the driver joined goes away; pytest's capture
kept what Ray said. This script, started beside the runtime with the real terminal's stderr, reads a pipe
whose write end only the test process holds: ``stopped`` then end of file is the fixture's normal stop; end of
file alone is the test process gone. Then it writes what the runtime's own logs last said (the head's output,
the raylet's and the GCS's logs, Ray's record of process exits, the dead driver's core-worker log, the memory
left), and stops the orphaned runtime, so nothing of it outlives the test run.

Usage: ``python ray_postmortem.py WORK HEAD_PID MARKER TEST_PID`` with the pipe on stdin.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ray_processes import stop_orphaned

TAIL_LINES = 25
RECORD = re.compile(r"\[\d{4}-\d\d-\d\d ")  # a Ray C++ log record: [2026-12-05 23:14:20,123 I 10736 10736] ...
STOPPED = b"stopped"  # what the fixture writes at its normal stop


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a text file (only its last 64 KiB are read); of a Ray component's log
    (``*.log``, ``*.out``: records that start ``[2026-...``) its last records, without the event-statistics
    tables Ray dumps between them."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 65536))
        text = fh.read().decode(errors="replace").splitlines()
    if path.name != "head.log" and path.suffix in (".log", ".out"):
        text = [line for line in text if RECORD.match(line)]
    return text[-lines:]


def logs_to_show(work: Path, test_pid: int) -> list[Path]:
    """The head's output, then from the runtime's session log folder the raylet's and the GCS's logs, Ray's
    process-exit record and the test process's newest core-worker (driver) log, those that exist."""
    found = [work / "head.log"]
    logs = work / "t" / "session_latest" / "logs"
    names = ["raylet.out", "raylet.err", "gcs_server.out", "gcs_server.err", "ray_process_exit.log"]
    found += [logs / n for n in names]
    drivers = sorted(logs.glob(f"python-core-driver-*_{test_pid}.log"), key=lambda p: p.stat().st_mtime)
    found += drivers[-1:]
    return [p for p in found if p.is_file() and p.stat().st_size > 0]


def memory_line() -> str:
    """``MemTotal``/``MemAvailable``/``SwapFree`` from /proc/meminfo, in one line."""
    keep = ("MemTotal", "MemAvailable", "SwapFree")
    with open("/proc/meminfo") as fh:
        return ", ".join(" ".join(line.split()[:3]) for line in fh if line.split(":")[0] in keep)


def report(work: Path, test_pid: int) -> str:
    """The whole post-mortem text."""
    out = [f"ray_postmortem: the test process {test_pid} ended while its Ray runtime ({work}) was up;"
           " what the runtime last said:", f"-- memory now: {memory_line()}"]
    for path in logs_to_show(work, test_pid):
        out.append(f"-- {path.relative_to(work)} (last {TAIL_LINES} lines):")
        out += ["   " + line for line in tail(path)]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    work, head, marker, test_pid = Path(argv[1]), int(argv[2]), argv[3], int(argv[4])
    said = sys.stdin.buffer.read(len(STOPPED))  # at the fixture's word, or at end of file: the process gone
    if said == STOPPED:
        return 0
    sys.stderr.write(report(work, test_pid))
    left = stop_orphaned(head, marker)
    sys.stderr.write(f"ray_postmortem: the runtime was stopped; processes left: {left}\n")
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
