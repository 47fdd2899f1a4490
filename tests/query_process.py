"""A real ``dgsearch`` query process, for the tests of the query paths that run without torch: its hits and which
heavy modules it imported (read from its own ``sys.modules`` as it ends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def query_process(index: Path, cache: Path, *args: str,
                  modules: tuple[str, ...] = ("torch",)) -> tuple[list[tuple[str, float]], list[bool]]:
    """Run ``dgsearch ARGS --index INDEX -k 3 --json`` in a fresh interpreter with ``DGSEARCH_CACHE_DIR=cache``
    (offline): ``([(file name, score), ...], [whether it imported each of modules])``. Fails on a non-zero exit."""
    code = ("import json, sys\n"
            "from diffgap_search.cli.app import main\n"
            f"sys.argv = ['dgsearch', *{list(args)!r}, '--index', {str(index)!r}, '-k', '3', '--json']\n"
            "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
            f"print(*[name in sys.modules for name in {list(modules)!r}], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "DGSEARCH_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    hits = [(Path(h["path"]).name, h["score"]) for h in json.loads(done.stdout)["hits"]]
    return hits, [word == "True" for word in done.stderr.strip().splitlines()[-1].split()]
