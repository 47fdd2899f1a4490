"""A cold ``dgsearch query "words"`` on an aisfx + WordLlama index: what one word query costs in a fresh process.

Such an index answers words with WordLlama (numpy) and, through its DiffGAP bridge, the stored audio vectors. Where
validation chose to serve the text queries by the bridge's anchor map alone (residual scale 0), nothing of that
needs torch; the query used to import it anyway (about 1.1 s here) to load the bridge and the aisfx network.

The index is sonic-pi's samples (Debian's ``sonic-pi-samples``, real recordings, CC0), indexed with
``--model aisfx --text-model wordllama`` and trained with ``dgsearch train --captions names`` (what the bridge
serves is validation's choice: the table says which), or ``--index PATH`` (an index of that kind). Each figure is
the median wall time of ``--repeats`` fresh processes, alternated between the commands: the hybrid and semantic
word query, the keyword query (no model at all) and ``python -c "import torch"``. ``--against TREE`` also runs
the same queries with the code of another source tree (a ``git worktree`` of an older commit), alternated.

    python benchmarks/bench_words_cold.py --repeats 7 [--against /tmp/oldtree]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _alternated import alternated, timing_rows, tree_cli  # noqa: E402
from _common import ROOT, write_results  # noqa: E402

SONIC_PI = Path("/usr/share/sonic-pi/samples")
QUERY = "a bell ringing"


def build_index(folder: Path, index: Path) -> None:
    """Index ``folder`` with aisfx + WordLlama and train its bridge on the file names (the CLI, this tree)."""
    dg = tree_cli(ROOT)
    subprocess.run([*dg, "index", str(folder), "--index", str(index), "--model", "aisfx", "--text-model", "wordllama",
                    "--no-frames"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*dg, "train", "--index", str(index), "--captions", "names"], check=True, stdout=subprocess.DEVNULL)


def served_scale(index: Path) -> float | None:
    """The residual scale the index's bridge serves text queries (``audio|text``, queries), from ``info``."""
    done = subprocess.run([*tree_cli(ROOT), "info", "--index", str(index), "--json"],
                          check=True, capture_output=True, text=True)
    chosen = (json.loads(done.stdout)["meta"].get("bridge") or {}).get("chosen") or {}
    return (chosen.get("residual_scale") or {}).get("audio|text")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--index", type=Path, help="an aisfx + WordLlama index with a bridge (default: build sonic-pi's)")
    p.add_argument("--against", type=Path, help="another source tree whose CLI runs the same queries, alternated")
    p.add_argument("--name", default="words_cold")
    args = p.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="dg-words-cold-"))
    try:
        index = args.index
        if index is None:
            index = tmp / "index"
            t0 = time.perf_counter()
            build_index(SONIC_PI, index)
            print(f"indexed and trained {SONIC_PI} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        trees = {"this tree": ROOT} | ({"--against": args.against.resolve()} if args.against else {})
        commands: dict[str, list[str]] = {}
        for label, tree in trees.items():
            base = [*tree_cli(tree), "query", QUERY, "--index", str(index), "--paths", "-k", "5"]
            commands[f"{label}: hybrid"] = base
            commands[f"{label}: semantic"] = [*base, "--mode", "semantic"]
            commands[f"{label}: keyword"] = [*base, "--mode", "keyword"]
        commands["python -c 'import torch'"] = [sys.executable, "-c", "import torch"]
        times, outputs = alternated(commands, args.repeats, env)
        medians = {k: statistics.median(v) for k, v in times.items()}
        same = all(outputs[f"--against: {m}"] == outputs[f"this tree: {m}"] for m in ("hybrid", "semantic", "keyword")
                   ) if args.against else None
        rows = timing_rows(times)
        scale = served_scale(index)
        notes = [f"query {QUERY!r}, top 5, {args.repeats} fresh processes per command, alternated",
                 f"index: {index if args.index else 'sonic-pi samples (built for this run)'}; its bridge serves text"
                 f" queries residual scale {scale} (0 = the anchor map alone: no torch)"]
        if args.against:
            notes.append(f"--against {args.against}: the same hits as this tree's: {same}")
        write_results(args.name, {"times": times, "medians": medians, "residual_scale": scale, "same_hits": same},
                      rows, notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
