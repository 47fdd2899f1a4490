"""Fresh processes timed in turn: the shared loop of the cold-start benchmarks, and a runner for another source tree.

Each round runs every command once, in order, so a machine that slows down (or speeds up) over the minutes of a
run weighs on every command alike: compare the medians of one run, not of two.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Mapping

# ``python -c TREE_RUNNER TREE ARGS...``: the CLI of the source tree TREE (its diffgap_search and cli/), whatever
# the environment installed: a ``git worktree`` of an older commit runs the same commands, for an A/B.
TREE_RUNNER = """import sys
root = sys.argv.pop(1)
sys.path.insert(0, root)
import diffgap_search
diffgap_search.__path__.append(root)
from diffgap_search.cli.app import main
sys.argv = ["dgsearch", *sys.argv[1:]]
main()
"""


def tree_cli(tree: object) -> list[str]:
    """The argv prefix that runs ``dgsearch`` from the source tree ``tree`` in a fresh interpreter."""
    return [sys.executable, "-c", TREE_RUNNER, str(tree)]


def alternated(commands: Mapping[str, list[str]], repeats: int,
               env: Mapping[str, str]) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Run every command once per round for ``repeats`` rounds (each must exit 0): ``(label -> wall seconds of
    each run, label -> the stdout of its last run)``."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    outputs: dict[str, str] = {}
    for _ in range(repeats):
        for label, cmd in commands.items():
            t0 = time.perf_counter()
            done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(env))
            times[label].append(time.perf_counter() - t0)
            outputs[label] = done.stdout
    return times, outputs


def timing_rows(times: Mapping[str, list[float]]) -> list[tuple[str, ...]]:
    """A results table: the header, then each command's median, fastest and slowest run in seconds."""
    return [("command", "median s", "min s", "max s")] + [
        (label, f"{statistics.median(v):.2f}", f"{min(v):.2f}", f"{max(v):.2f}") for label, v in times.items()]
