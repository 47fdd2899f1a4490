"""The paper's setting, reproducible: AudioCaps (text <-> audio) or VGGSound (video <-> audio) through the engine.

One command embeds the dataset's media with ``dgsearch index`` (the engine, its windowing, its encoders),
pairs them with the dataset's own metadata, trains a DiffGAP bridge on the official training split with
``dgsearch train --pairs-file``, evaluates it on the official test split with ``dgsearch eval --pairs-file``
(the standard protocol: a gallery of unique clips; every caption a query; audio->text a hit when any of a
clip's captions is in the top k; baselines fitted on the bridge's own training pairs), and writes a table
beside the published figures of the backbones.

    # AudioCaps: CSV_DIR holds train.csv, val.csv, test.csv (audiocap_id,youtube_id,start_time,caption);
    # MEDIA holds the clips, named YOUTUBE_ID.wav, YYOUTUBE_ID.wav or AUDIOCAP_ID.wav (any audio extension)
    python benchmarks/paper/reproduce.py audiocaps --csv-dir CSV_DIR --media MEDIA --index runs/audiocaps

    # VGGSound: vggsound.csv (youtube_id,start_seconds,label,split; no header, as published);
    # MEDIA holds YOUTUBE_ID_START.mp4 (start zero-padded to 6 digits, as distributed) or YOUTUBE_ID.mp4
    python benchmarks/paper/reproduce.py vggsound --csv vggsound.csv --media MEDIA --index runs/vggsound \
        --video-model DIR_OR_HUB_ID

The official validation split of AudioCaps is not used for training (the bridge tunes its fusion weights
and sampler on a tenth of the training clips, as always). Writes ``results/paper_<dataset>.json`` and
``.md`` (``--out-dir``).

Published figures shown beside ours (the backbones alone, as their papers report them; ranges where the
reports differ by checkpoint or protocol detail):

- LAION-CLAP (Wu et al., "Large-scale Contrastive Language-Audio Pretraining with Feature Fusion and
  Keyword-to-Caption Augmentation", ICASSP 2023, arXiv:2211.06687), AudioCaps test: text->audio R@1 about
  35-36, audio->text R@1 about 44-47.
- CAVP (Luo et al., "Diff-Foley: Synchronized Video-to-Audio Synthesis with Latent Diffusion Models",
  NeurIPS 2023, arXiv:2306.17203), VGGSound test: video->audio R@1 about 9.5, audio->video about 11.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

PUBLISHED = {
    "audiocaps": {"source": "LAION-CLAP, Wu et al., ICASSP 2023 (arXiv:2211.06687)",
                  "R@1": {"text->audio": "35-36", "audio->text": "44-47"}},
    "vggsound": {"source": "CAVP, Diff-Foley, Luo et al., NeurIPS 2023 (arXiv:2306.17203)",
                 "R@1": {"video->audio": "9.5", "audio->video": "11"}},
}
SHOWN = ("raw", "mean_shift", "ridge", "procrustes", "diffgap", "diffgap_fusion")


def read_audiocaps(csv_dir: Path) -> dict[str, dict[str, list[str]]]:
    """split -> youtube_id -> captions, from AudioCaps' ``train.csv``, ``val.csv``, ``test.csv``."""
    out: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "val", "test"):
        path = csv_dir / f"{split}.csv"
        if not path.is_file():
            continue
        clips: dict[str, list[str]] = defaultdict(list)
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                clips[row["youtube_id"].strip()].append(row["caption"].strip())
                clips.setdefault(f"#audiocap_id:{row['audiocap_id'].strip()}", []).append(row["youtube_id"].strip())
        out[split] = dict(clips)
    if "train" not in out or "test" not in out:
        raise SystemExit(f"{csv_dir} needs AudioCaps' train.csv and test.csv")
    return out


def read_vggsound(path: Path) -> dict[str, dict[str, str]]:
    """split -> youtube_id_start -> label, from VGGSound's CSV (``youtube_id,start_seconds,label,split``)."""
    out: dict[str, dict[str, str]] = {"train": {}, "test": {}}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) < 4 or row[0] == "youtube_id":
                continue
            yid, start, label, split = (c.strip() for c in row[:4])
            out.setdefault(split, {})[f"{yid}_{int(float(start)):06d}"] = label
    return out


def clip_id_of(path: str, known: set[str], aliases: dict[str, str]) -> str | None:
    """The dataset clip id a media file stands for, from its name (see the module docstring)."""
    stem = Path(path).stem
    for candidate in (stem, stem[1:] if stem.startswith("Y") else None, aliases.get(stem)):
        if candidate and candidate in known:
            return candidate
    if "_" in stem and stem.rsplit("_", 1)[0] in known:  # VGGSound file named YOUTUBE_ID_START for a bare-id CSV
        return stem.rsplit("_", 1)[0]
    return None


def dgsearch(*args: object) -> str:
    """Run the real command line (the engine, as a user runs it); stop on failure."""
    cmd = [sys.executable, "-c", "from diffgap_search.cli.app import main; main()", *map(str, args)]
    print("+ dgsearch " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dgsearch {args[0]} failed with exit code {done.returncode}")
    return done.stdout


def stored_windows(index: Path, space: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every stored window of ``space``: ``(segment ids (n,), vectors (n, D) float32, file paths)``."""
    from diffgap_search.store.catalog import Catalog

    with Catalog.open(index) as catalog:
        ids_parts, vec_parts = [], []
        for ids, vecs in catalog.read_vectors(space):
            ids_parts.append(ids)
            vec_parts.append(np.array(vecs))
        ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int64)
        hits = catalog.hit_rows(ids.tolist())
    keep = np.array([int(i) in hits for i in ids], dtype=bool)
    vectors = np.concatenate(vec_parts)[keep] if vec_parts else np.zeros((0, 0), np.float32)
    return ids[keep], vectors, [hits[int(i)].path for i in ids[keep]]


def audiocaps_pairs(index: Path, meta: dict[str, dict[str, list[str]]], device: str) -> dict[str, dict[str, np.ndarray]]:
    """split -> pairs arrays (one pair per (audio window, caption), group = youtube id)."""
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.store.settings import stored_encoder_config

    with Catalog.open(index) as catalog:
        encoder = load_encoder(stored_encoder_config(catalog, device=device))
    _, audio, paths = stored_windows(index, "audio")
    out = {}
    for split, clips in meta.items():
        aliases = {k.split(":", 1)[1]: v[0] for k, v in clips.items() if k.startswith("#audiocap_id:")}
        known = {k for k in clips if not k.startswith("#")}
        rows_a, rows_t, groups = [], [], []
        for clip in sorted(known):
            windows = [i for i, p in enumerate(paths) if clip_id_of(p, known, aliases) == clip]
            if not windows:
                continue
            texts = encoder.embed_text(clips[clip])
            for w in windows:
                for t in texts:
                    rows_a.append(audio[w])
                    rows_t.append(t)
                    groups.append(clip)
        if groups:
            out[split] = {"audio": np.stack(rows_a), "text": np.stack(rows_t), "group": np.array(groups)}
    return out


def vggsound_pairs(index: Path, meta: dict[str, dict[str, str]]) -> dict[str, dict[str, np.ndarray]]:
    """split -> pairs arrays (one pair per video window: frames and soundtrack; group = clip id)."""
    ids_a, audio, paths = stored_windows(index, "audio")
    ids_v, video, _ = stored_windows(index, "video")
    row_of = {int(i): k for k, i in enumerate(ids_a)}
    out = {}
    for split, clips in meta.items():
        known = set(clips) | {k.rsplit("_", 1)[0] for k in clips}
        rows_a, rows_v, groups = [], [], []
        for k, sid in enumerate(ids_v):
            r = row_of.get(int(sid))
            clip = clip_id_of(paths[r], known, {}) if r is not None else None
            if clip is not None:
                rows_a.append(audio[r])
                rows_v.append(video[k])
                groups.append(clip)
        if groups:
            out[split] = {"audio": np.stack(rows_a), "video": np.stack(rows_v), "group": np.array(groups)}
    return out


def table(result: dict[str, Any], dataset: str) -> str:
    lines = ["| direction | published R@1 (backbone alone) | " + " | ".join(SHOWN) + " |",
             "| --- | ---: |" + " ---: |" * len(SHOWN)]
    for key, methods in result["results"].items():
        pub = PUBLISHED[dataset]["R@1"].get(key, "–")
        lines.append(f"| {key} | {pub} | " + " | ".join(f"{methods[m]['R@1']:.1f}" for m in SHOWN if m in methods) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=("audiocaps", "vggsound"))
    p.add_argument("--csv-dir", type=Path, help="AudioCaps: the folder of train.csv, val.csv, test.csv")
    p.add_argument("--csv", type=Path, help="VGGSound: vggsound.csv")
    p.add_argument("--media", type=Path, required=True, help="the folder of the dataset's audio or video files")
    p.add_argument("--index", type=Path, required=True, help="where to build the index (and its bridge)")
    p.add_argument("--model", default=None, help="CLAP model (default: the engine's, laion/clap-htsat-unfused)")
    p.add_argument("--video-model", default=None, help="VGGSound: the video encoder")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = p.parse_args(argv)
    started = time.perf_counter()
    index_args: list[object] = ["index", args.media, "--index", args.index, "--device", args.device]
    if args.model:
        index_args += ["--model", args.model]
    if args.dataset == "audiocaps":
        if args.csv_dir is None:
            p.error("audiocaps needs --csv-dir")
        meta: Any = read_audiocaps(args.csv_dir)
        dgsearch(*index_args, "--no-frames")
        pairs = audiocaps_pairs(args.index, meta, args.device)
        kind = "text"
    else:
        if args.csv is None:
            p.error("vggsound needs --csv")
        meta = read_vggsound(args.csv)
        dgsearch(*index_args, *(["--video-model", args.video_model] if args.video_model else []))
        pairs = vggsound_pairs(args.index, meta)
        kind = "video"
    for split in ("train", "test"):
        if split not in pairs:
            raise SystemExit(f"no {split} clip of {args.dataset} was found among the indexed files of {args.media}")
    files = {}
    for split in ("train", "test"):
        files[split] = args.index / f"pairs-{split}.npz"
        np.savez(files[split], **pairs[split])
    trained = json.loads(dgsearch("train", "--index", args.index, "--pairs", kind, "--pairs-file", files["train"],
                                  "--epochs", args.epochs, "--batch-size", args.batch_size, "--json"))
    result = json.loads(dgsearch("eval", "--index", args.index, "--pairs-file", files["test"], "--json"))
    clips = {s: int(len(set(pairs[s]["group"].tolist()))) for s in pairs}
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dataset": args.dataset,
           "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
           "clips": clips, "pairs": {s: len(v["group"]) for s, v in pairs.items()}, "train": trained,
           "evaluation": result, "published": PUBLISHED[args.dataset],
           "seconds": round(time.perf_counter() - started, 1)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"paper_{args.dataset}.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [f"# {args.dataset}: DiffGAP through the engine, official splits", "", f"- date: {doc['date']}",
          f"- command: `{doc['command']}`",
          f"- clips: {clips}; pairs: {doc['pairs']}; trained on the official train split, evaluated on the official "
          "test split (standard protocol, baselines fitted on the bridge's training pairs)",
          f"- published: {PUBLISHED[args.dataset]['source']}", "", table(result, args.dataset), ""]
    (args.out_dir / f"paper_{args.dataset}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
