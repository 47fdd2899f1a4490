"""Run ``dgsearch`` invocations in this one process, one after another, each under a watchdog.

``python option_sweep_runner.py CASES.json OUT.jsonl START``: for each case ``{"i": n, "args": [...],
"limit_s": s}`` from index START on, the real CLI (``diffgap_search.cli.app``) runs in process through
click's test runner (its stdout and stderr captured), and one JSON line ``{"i", "code", "stdout",
"stderr"}`` is appended to OUT.jsonl. A case still running after its ``limit_s`` (a server serving, a long
training) gets ``{"i", "running": true}`` and the process exits at once (``os._exit``), so the caller starts a
new runner at the next case. Used by ``test_option_sweep.py``.
"""

from __future__ import annotations

import json
import os
import sys
import threading


def main() -> None:
    cases_file, out_file, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from typer.testing import CliRunner

    from diffgap_search.cli.app import app

    cases = json.loads(open(cases_file).read())
    runner = CliRunner()
    with open(out_file, "a") as out:
        for case in cases[start:]:
            def overrun(i: int = case["i"]) -> None:
                out.write(json.dumps({"i": i, "running": True}) + "\n")
                out.flush()
                os._exit(0)

            timer = threading.Timer(case["limit_s"], overrun)
            timer.start()
            result = runner.invoke(app, case["args"], catch_exceptions=True)
            timer.cancel()
            error = None if result.exception is None or isinstance(result.exception, SystemExit) else result.exception
            out.write(json.dumps({"i": case["i"], "code": result.exit_code, "stdout": result.stdout,
                                  "stderr": result.stderr + (f"\nuncaught {error!r}" if error else "")}) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
