"""Which captions should ``dgsearch train`` learn from on a library where only some files have sidecars?

An index is copied (its catalog and settings: the media are not touched) and, for each ``--captions`` choice and
seed, ``dgsearch train --captions CHOICE --seed S`` then ``dgsearch eval`` run on the copy, as a user runs them.
``eval`` scores the held-out tenth of the clips (a fixed hash of their content: the same clips for every choice,
never trained on) twice: on their sidecar captions (``real``) and on their weak captions (file names and tags,
``weak``). Reported per choice: the served score (DiffGAP + fusion) R@1 and R@10, text -> audio and audio -> text,
mean ± sd over the seeds, and the training pairs and seconds.

    python benchmarks/bench_captions_choice.py --index /tmp/ux/big --seeds 0 1 2 \\
        [--choices sidecars names all per-file] [--name captions_choice]
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _alternated import tree_cli  # noqa: E402
from _common import ROOT, write_results  # noqa: E402

SERVED = "diffgap_fusion"
DIRECTIONS = ("text->audio", "audio->text")


def run_json(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """``dgsearch ARGS --json`` of this tree, parsed; raises on a non-zero exit."""
    out = subprocess.run([*tree_cli(ROOT), *args, "--json"], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def served(result: dict[str, Any]) -> dict[str, float]:
    """``{"text->audio R@1": ..., ...}``: the served method's R@1 and R@10 per direction of one eval block."""
    return {f"{d} {k}": result[d][SERVED][k] for d in DIRECTIONS if d in result for k in ("R@1", "R@10")}


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True, help="an index built with a text side (CLAP, or --text-model)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--choices", nargs="+", default=["sidecars", "names", "all", "per-file"])
    p.add_argument("--name", default="captions_choice")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dg-captions-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    runs: list[dict[str, Any]] = []
    try:
        index = tmp / "index"
        shutil.copytree(args.index, index, ignore=shutil.ignore_patterns("*.lock"))
        for choice in args.choices:
            for seed in args.seeds:
                trained = run_json(["train", "--index", str(index), "--captions", choice, "--seed", str(seed),
                                    "--pairs", "text", "--threads", "2"], env)
                scored = run_json(["eval", "--index", str(index)], env)
                runs.append({"choice": choice, "seed": seed, "caption_pairs": trained["caption_pairs"],
                             "train_pairs": trained["train_pairs"], "seconds": trained["seconds"],
                             "n_test": {"real": scored["n_test"],
                                        "weak": scored.get("weak_captions", {}).get("n_test")},
                             "real": served(scored["results"]),
                             "weak": served(scored.get("weak_captions", {}).get("results", {}))})
                print(json.dumps(runs[-1]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys = [f"{d} {k}" for d in DIRECTIONS for k in ("R@1", "R@10")]
    table: list[tuple[str, ...]] = [("captions", "text pairs (sidecar / name)", "train s",
                                     *[f"real {k}" for k in keys], *[f"weak {k}" for k in keys])]
    for choice in args.choices:
        mine = [r for r in runs if r["choice"] == choice]
        pairs = mine[0]["caption_pairs"]
        table.append((choice, f"{pairs['sidecar']} / {pairs['name']}", mean_sd([r["seconds"] for r in mine]),
                      *[mean_sd([r["real"][k] for r in mine]) if k in mine[0]["real"] else "-" for k in keys],
                      *[mean_sd([r["weak"][k] for r in mine]) if k in mine[0]["weak"] else "-" for k in keys]))
    first = runs[0]["n_test"]
    notes = [f"index {args.index}; seeds {args.seeds}; served = DiffGAP + fusion, as `dgsearch eval` reports it",
             f"held-out clips (the same for every choice): real captions {first['real']},"
             f" weak captions {first['weak']}",
             "real: the held-out clips' sidecar captions, ranked among the held-out captioned clips; weak: their"
             " file names and tags, ranked among every held-out clip"]
    write_results(args.name, {"runs": runs, "index": str(args.index)}, table, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
