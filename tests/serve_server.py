"""A real ``dgsearch serve`` in a subprocess, on a free loopback port, for the API, page and load tests.

``start_serve(index_dir, *args)`` runs the installed console script with ``--port 0`` and returns once it
has printed its address (``dgsearch serve: http://127.0.0.1:PORT/ ...`` on stderr: the socket is already
listening then). ``Served.stop()`` ends it (SIGTERM, then SIGKILL) — only that process, by its pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DGSEARCH = Path(sys.executable).with_name("dgsearch")
_URL = re.compile(r"dgsearch serve: (http://\S+?/)(?:\?token=\S+)? ")


@dataclass
class Served:
    """A running server: its base ``url`` (ends with ``/``), process and stderr file."""

    url: str
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")


def serve_env() -> dict[str, str]:
    """The test process's environment, offline and plain; ``PYTHONFAULTHANDLER``: a server stuck at its start
    says where (``start_serve``)."""
    return {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONFAULTHANDLER": "1"}


def start_serve(index_dir: Path, *args: str, timeout_s: float = 180.0) -> Served:
    """Start ``dgsearch serve --index INDEX --port 0 ARGS`` and wait for its address."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(DGSEARCH), "serve", "--index", str(index_dir), "--port", "0", *args],
                            stdout=subprocess.DEVNULL, stderr=err, env=serve_env())
    served = Served("", proc, err)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = _URL.search(served.log())
        if match:
            served.url = match.group(1)
            return served
        if proc.poll() is not None:
            raise RuntimeError(f"dgsearch serve exited with {proc.returncode}: {served.log()}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGABRT)  # faulthandler (PYTHONFAULTHANDLER, serve_env) writes every thread's stack
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    log = served.log()
    served.stop()
    raise RuntimeError(f"dgsearch serve printed no address within {timeout_s} s; its stderr, its threads' stacks"
                       f" last:\n{log}")


def run_dgsearch(*args: str | Path, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
    """The console script as a subprocess (text output)."""
    return subprocess.run([str(DGSEARCH), *(str(a) for a in args)], capture_output=True, text=True,
                          env=serve_env(), timeout=timeout_s, check=False)


def below_library(served: Served, path: str) -> str:
    """``path`` as the page shows it: from the library folder that ``/api/info`` names (``dgsearch info``)."""
    import httpx

    folder = httpx.get(served.url + "api/info").json()["summary"]["library folder"]
    assert path.startswith(folder + "/"), (path, folder)
    return path[len(folder) + 1:]
