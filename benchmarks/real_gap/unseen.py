"""The real-gap bridge judged on a package nobody looked at: trained on all five packages of ``run.py``, queried on
``wesnoth-1.16-data`` (``packages.JUDGE_PACKAGES``), read for the first time after every rule it judges was fixed.

``run.py``'s package split holds out each of its packages in turn, but those packages are the ones every choice of
the bridge (the raw term left out, the anchor rule, its 90 % standard) was looked at on. This keeps one package
out of all of that: its 263 unit, weapon, magic and ambient sounds (165 descriptions: "wolf hit", "crossbow fire
miss", "human female die", "campfire") are queried by their descriptions, against the held-out files only:

- ``run.py``'s methods (``methods.py``), the bridge trained per seed with ``dgsearch train``'s defaults on every
  file of the five packages: DiffGAP alone and served, ridge and Procrustes alone, BM25 keyword search over the
  training texts then "more like these", hybrid, and ``names_keyword`` (the held-out files' own names: here the
  descriptions are the names, so it is the ceiling a library with such names has, not a rival);
- ``anchor_by_task.py``'s four combinations of linear maps + fusion (ridge / Procrustes per direction), tuned
  on the same validation clips: which anchor rule the unseen package would have wanted.

    python benchmarks/real_gap/unseen.py --out-dir benchmarks/results   # real_gap_unseen.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import anchor_by_task  # noqa: E402
from _common import machine  # noqa: E402
from outputs import command_line, report  # noqa: E402
from packages import JUDGE_PACKAGES, PACKAGES, build_table  # noqa: E402
from run import SHOWN, embed_audio, run_split, summarise  # noqa: E402


def markdown(result: dict[str, Any]) -> str:
    """The methods' table (mean ± sd over seeds) and the anchor combinations' table."""
    judge = result["judge"]
    lines = [f"# Real gap on a package nobody looked at: {judge}", "", f"- {result['machine']}",
             f"- command: `{result['command']}`",
             f"- trained on {result['train_files']} files of {', '.join(PACKAGES)}; queried on {result['test_files']}"
             f" files of {judge} by their {result['queries']} descriptions; seeds {result['seeds']}",
             f"- anchor chosen by `auto`, per seed: {', '.join(result['anchors'])}", "",
             "| method | R@1 | R@10 | mAP@10 |", "| --- | ---: | ---: | ---: |"]
    for m, v in result["summary"].items():
        lines.append(f"| {m} | " + " | ".join(f"{v[k][0]:.1f} ± {v[k][1]:.1f}" for k in SHOWN if k in v) + " |")
    combos = result["combos"]
    lines += ["", f"Linear maps + fusion per combination (validation: {combos['validation_clips']} clips of the five"
              " packages; confidence over ridge/ridge: text->audio, audio->text, both):", "",
              "| text->audio map / audio->text map | validation text->audio R@1 | validation audio->text R@1 |"
              " confidence | unseen R@1 | unseen mAP@10 |", "| --- | ---: | ---: | --- | ---: | ---: |"]
    for name, row in combos["combos"].items():
        conf = ", ".join(f"{v:.2f}" for v in row["confidence"].values()) if "confidence" in row else "—"
        test = row["test"]["description"]
        lines.append(f"| {name} | {row['validation_R@1']['text->audio']:.1f} | {row['validation_R@1']['audio->text']:.1f}"
                     f" | {conf} | {test['R@1']:.1f} | {test['mAP@10']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    from diffgap_search.encoders.wordllama.encoder import load_wordllama_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgsearch-real-gap")
    ap.add_argument("--judge", default=JUDGE_PACKAGES[0], choices=JUDGE_PACKAGES)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sounds, _ = build_table(args.cache_dir, (*PACKAGES, args.judge))
    audio = embed_audio(sounds, args.cache_dir)
    encoder = load_wordllama_encoder(512)
    held = np.array([s.package == args.judge for s in sounds])
    runs = []
    for seed in args.seeds:
        runs.append(run_split(sounds, held, audio, encoder, seed, args.epochs))
        print(f"seed {seed}: served R@1 {runs[-1]['description']['metrics']['diffgap_served']['R@1']:.1f}, "
              f"anchor {runs[-1]['anchor']}", file=sys.stderr)
    combos = anchor_by_task.run_split(sounds, audio, encoder, held, f"package {args.judge}")
    result = {"judge": args.judge, "machine": str(machine()), "seeds": args.seeds, "epochs": args.epochs,
              "command": command_line("unseen.py", argv),
              "train_files": runs[0]["train_files"], "test_files": runs[0]["test_files"],
              "queries": runs[0]["description"]["queries"],
              "anchors": [json.dumps(r["anchor"]) for r in runs],
              "summary": summarise(runs, "description"),
              "runs": [{k: v for k, v in r.items() if k not in ("description", "category")}
                       | {"metrics": r["description"]["metrics"]} for r in runs],
              "combos": combos, "seconds": round(time.perf_counter() - started, 1)}
    report(args.out_dir, "real_gap_unseen", markdown(result), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
