"""Why validation and the held-out files disagree about the anchor: each linear map's kind per task, on real data.

A bridge's served text -> audio score uses two maps: text -> audio for the query and audio -> text for the
indexed windows' text side (``search/terms.py``); the audio -> text task, which ``dgsearch eval`` reports and
``dgsearch query`` never serves, uses the same two maps the other way round (audio -> text for its query,
text -> audio for its items). ``gap/anchor_choice.py`` picks one kind for both maps over both tasks together.
This takes each file split of ``run.py`` (the same files, seeds, encoders and training pairs) and, for the four
combinations (text -> audio map, audio -> text map) in {ridge, Procrustes}^2, scores the linear maps + fusion as
training would on its validation clips — fusion tuned per task on them, the raw term left out (WordLlama and
aisfx share no space: ``TrainConfig.separate_spaces``) — and then on the held-out files with those weights, as
``run.py`` scores ``diffgap_served``: descriptions and category phrases against the held-out files (a file's score
its best window). Per task it gives the share of validation clip resamples in which a combination beats
ridge/ridge (``evidence.gain_confidence``, the anchor choice's standard).

    python benchmarks/real_gap/anchor_by_task.py --out-dir benchmarks/results   # anchor_by_task.{md,jsonl}
    python benchmarks/real_gap/anchor_by_task.py --split package --out-dir benchmarks/results  # ..._package.*
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import machine  # noqa: E402
from anchor_rules import COMBOS, Maps, served  # noqa: E402
from methods import file_max, without_raw  # noqa: E402
from outputs import command_line, write_outputs  # noqa: E402
from packages import CATEGORY_QUERIES, PACKAGES, build_table  # noqa: E402
from run import embed_audio, file_split, training_pairs  # noqa: E402

from diffgap_search.gap.evidence import gain_confidence  # noqa: E402
from diffgap_search.gap.fusion import FusionConfig  # noqa: E402
from diffgap_search.gap.groups import as_groups  # noqa: E402
from diffgap_search.gap.metrics import retrieval_metrics  # noqa: E402
from diffgap_search.gap.record import TrainingRecord, fit_pair_baselines  # noqa: E402
from diffgap_search.gap.training_data import split_pairs  # noqa: E402
from diffgap_search.gap.validation import validation_tasks  # noqa: E402


def test_scores(q: np.ndarray, windows: np.ndarray, owner: np.ndarray, n_files: int, maps: Maps,
                cfg: FusionConfig) -> np.ndarray:
    """``(Q, F)`` served text -> audio scores of held-out files, as ``methods.semantic_scores``' diffgap_served."""
    w = without_raw(cfg)
    s = (w.w_query_bridged * (maps.apply(q, "text", "audio") @ windows.T)
         + w.w_item_bridged * (q @ maps.apply(windows, "audio", "text", role="items").T))
    return file_max(s, owner, n_files)


def run_split(sounds: list, audio: dict[str, np.ndarray], encoder: Any, mask: np.ndarray, name: str) -> dict[str, Any]:
    """One split (``mask``: the held-out files): per combination, validation R@1 and confidence per task,
    held-out R@1 / mAP@10."""
    train = [s for s, t in zip(sounds, mask) if not t]
    test = [s for s, t in zip(sounds, mask) if t]
    pairs, groups = training_pairs(train, audio, encoder)
    sets = split_pairs(pairs, as_groups(groups, pairs["audio"]), 0.1)
    s = sets[0]
    record = TrainingRecord(np.zeros(0, np.int64), np.zeros(0, np.int64),
                            {s.name: fit_pair_baselines("audio", "text", s.train_a, s.train_b, s.train_groups)})
    tasks = validation_tasks(sets, 2000, separate_spaces=("text",))
    windows = np.concatenate([audio[x.sha256] for x in test]).astype(np.float32)
    owner = np.concatenate([[i] * len(audio[x.sha256]) for i, x in enumerate(test)])
    descriptions = sorted({x.description for x in test})
    categories = sorted({x.category for x in test} & set(CATEGORY_QUERIES))
    kinds = {"description": (descriptions, np.array([descriptions.index(x.description) for x in test])),
             "category": ([CATEGORY_QUERIES[c] for c in categories],
                          np.array([categories.index(x.category) if x.category in categories else -1 for x in test]))}
    queries = {k: (encoder.embed_text(texts), labels) for k, (texts, labels) in kinds.items() if texts}
    out: dict[str, Any] = {"split": name, "validation_clips": int(len(np.unique(s.val_groups))), "combos": {}}
    hits: dict[tuple[str, str], list[np.ndarray]] = {}
    for combo in COMBOS:
        maps = Maps(record, "text", *combo)
        row: dict[str, Any] = {"validation_R@1": {}, "test": {}}
        hits[combo] = []
        for task in tasks:
            cfg, h = served(task, maps)
            hits[combo].append(h)
            row["validation_R@1"][task.key] = round(100.0 * float(np.mean(h)), 1)
            if task.key == "text->audio":
                row["fusion"] = cfg.to_dict()
                for kind, (q, labels) in queries.items():
                    m = retrieval_metrics(test_scores(q, windows, owner, len(test), maps, cfg),
                                          np.arange(len(kinds[kind][0])), labels)
                    row["test"][kind] = {"R@1": round(m["R@1"], 1), "mAP@10": round(m["mAP@10"], 1)}
        out["combos"]["/".join(combo)] = row
    base = hits[("ridge", "ridge")]
    for combo in COMBOS[1:]:
        row = out["combos"]["/".join(combo)]
        row["confidence"] = {t.key: round(gain_confidence([(t.queries.labels, h, b)]), 3)
                             for t, h, b in zip(tasks, hits[combo], base)}
        row["confidence"]["both"] = round(gain_confidence(
            [(t.queries.labels, h, b) for t, h, b in zip(tasks, hits[combo], base)]), 3)
    return out


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    """Mean over the splits per combination; per-split confidences."""
    lines = ["# Real gap: each map's kind per task (validation vs held-out files)", "", f"- {machine()}",
             f"- command: `{command}`", "- splits (validation clips): "
             + ", ".join(f"{r['split']} ({r['validation_clips']})" for r in rows), "",
             "| text->audio map / audio->text map | validation text->audio R@1 | validation audio->text R@1 | "
             "confidence over ridge/ridge: text->audio, audio->text, both (per split) | held-out descriptions R@1 / "
             "mAP@10 | held-out categories R@1 / mAP@10 |", "| --- | ---: | ---: | --- | ---: | ---: |"]
    for combo in ("/".join(c) for c in COMBOS):
        def mean(get: Any) -> float:
            values = []
            for r in rows:
                try:
                    values.append(get(r["combos"][combo]))
                except KeyError:  # a split with no query of that kind (no canonical category held out)
                    pass
            return float(np.mean(values)) if values else float("nan")
        conf = "; ".join(", ".join(f"{v:.2f}" for v in r["combos"][combo]["confidence"].values())
                         for r in rows) if combo != "ridge/ridge" else "—"
        lines.append(
            f"| {combo} | {mean(lambda c: c['validation_R@1']['text->audio']):.1f} | "
            f"{mean(lambda c: c['validation_R@1']['audio->text']):.1f} | {conf} | "
            + " | ".join(f"{mean(lambda c, k=k: c['test'][k]['R@1']):.1f} / "
                         f"{mean(lambda c, k=k: c['test'][k]['mAP@10']):.1f}" for k in ("description", "category"))
            + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import os
    import torch

    from diffgap_search.encoders.wordllama.encoder import load_wordllama_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgsearch-real-gap")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--split", choices=("file", "package"), default="file",
                    help="file: a seeded fifth of the files held out per seed; package: each package in turn")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sounds, _ = build_table(args.cache_dir, tuple(PACKAGES))
    audio = embed_audio(sounds, args.cache_dir)
    encoder = load_wordllama_encoder(512)
    if args.split == "file":
        rows = [run_split(sounds, audio, encoder, file_split(sounds, seed), f"file seed {seed}") for seed in args.seeds]
    else:  # the linear maps and the fusion do not depend on the seed: one run per package
        rows = [run_split(sounds, audio, encoder, np.array([s.package == p for s in sounds]), f"package {p}")
                for p in PACKAGES]
    name = "anchor_by_task" if args.split == "file" else "anchor_by_task_package"
    command = command_line("anchor_by_task.py", argv)
    text = markdown(rows, command)
    print(text)
    write_outputs(args.out_dir, {f"{name}.md": text, f"{name}.jsonl": "".join(json.dumps(r) + "\n" for r in rows)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
