"""Why a confirmed residual lost on test: the confirmation evidence of every run, per task, beside test.

Reads ``family_gap.py`` lines written since the per-task rule (their ``evidence``: per task the bootstrap share
of that task alone, the joint share of the pair's two tasks averaged, the served R@1 gain on the confirmation
clips — validation figures only) and, for the same cells and seeds, an earlier run's lines (``--previous``,
the joint rule's served alphas and test figures; training is deterministic per seed, so the network is the
same). Writes ``<out-dir>/<name>.md``: one row per (run, task) where either rule served a residual: the
alphas each rule served (the joint rule alone; the joint rule plus the check after the re-tune on every
validation clip, ``alpha_joint``; the per-task rule) and the test gain over ridge + fusion.

    python benchmarks/confirm_evidence.py --lines benchmarks/results/family_gap_pertask.jsonl \\
        --previous benchmarks/results/family_gap_fix.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family_gap import cell_id  # noqa: E402


def _load(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {(cell_id(x["cell"]), x["seed"]): x for x in lines}


def _alphas(alphas: dict[str, float]) -> str:
    return ", ".join(f"{d} {a:g}" for d, a in sorted(alphas.items())) or "–"


def _gain(res: dict[str, float]) -> float:
    return res["diffgap_fusion"] - res["ridge_fusion"]


def rows(new: dict[tuple[str, int], dict[str, Any]], old: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
    out = ["| cell | seed | task | α before (joint rule) | joint share | this task's share | confirmation gain "
           "(points) | test: served − ridge + fusion, joint rule | α served by the joint rule + the re-tune check | "
           "α now | test now |",
           "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for (cid, seed), line in new.items():
        before = old.get((cid, seed))
        alpha_old = before["alpha"] if before else line.get("alpha_joint", {})
        if not any(alpha_old.values()) and not any(line["alpha"].values()):
            continue
        for key, ev in line["evidence"].items():
            test_old = _gain(before["results"][key]) if before else _gain(line["results_joint"][key])
            out.append(f"| {cid} | {seed} | {key} | {_alphas(alpha_old)} "
                       f"| {ev['pair_confidence']:.3f} | {ev['task_confidence']:.3f} | {ev['confirm_gain']:+.1f} "
                       f"| {test_old:+.1f} | {_alphas(line.get('alpha_joint', {}))} | {_alphas(line['alpha'])} "
                       f"| {_gain(line['results'][key]):+.1f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=Path, required=True, help="family_gap JSONL written with the per-task rule")
    p.add_argument("--previous", type=Path, help="family_gap JSONL of the same cells under the joint rule")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--name", default="confirm_evidence")
    args = p.parse_args(argv)
    old = _load(args.previous) if args.previous else {}
    text = ("# Confirmation evidence per task, beside test\n\nValidation figures only decide; test is shown, never used. "
            "Shares: of 2,000 bootstrap resamples of the confirmation clips, those in which the residual's served R@1 "
            "beats ridge + fusion's (joint: the two tasks averaged).\n\n" + "\n".join(rows(_load(args.lines), old)) + "\n")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
