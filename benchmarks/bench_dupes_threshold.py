"""The default ``dgsearch dupes`` threshold, measured: aisfx (real weights) on real recordings with planted copies.

The 130 CC0 recordings of Debian's sonic-pi-samples, plus four copies (mp3, ogg, first 0.5 s trimmed,
6 dB quieter; ``tests/planted_dupes.py``) of every third recording of at least 1.5 s (16 of them), are
indexed with ``--model aisfx``. Every file pair's similarity (``dupes.file_similarity``) is computed
exactly; for each threshold, union-find groups the pairs at or above it, as ``dgsearch dupes`` does, and
the table says how many planted pairs end up together, how many other pairs do (different recordings
grouped, directly or through a chain), and how many planted groups come out exactly. Also: the lowest
score of a copy with its original (by kind of copy), and the highest score of two recordings of
different kinds.

    python benchmarks/bench_dupes_threshold.py          # a few minutes on 2 cores (aisfx embeds 210 files)
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_results  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from planted_dupes import VARIANTS, plant  # noqa: E402
from real_sounds import REAL_SOUNDS, available_real_sounds  # noqa: E402

THRESHOLDS = (0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98)


def main() -> int:
    import soundfile as sf
    from typer.testing import CliRunner

    from diffgap_search.cli.app import app
    from diffgap_search.search.dupes import DEFAULT_THRESHOLD, file_similarity, group_pairs
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.store.similarity_rows import segment_files

    if len(available_real_sounds()) < len(REAL_SOUNDS):
        print("the CC0 recordings of sonic-pi-samples are missing (apt-get install sonic-pi-samples)", file=sys.stderr)
        return 1
    duration = {s.stem: sf.info(str(s.path)).duration for s in REAL_SOUNDS}
    originals = [s for s in REAL_SOUNDS if duration[s.stem] >= 1.5][::3][:20]
    distinct = [s for s in REAL_SOUNDS if s not in originals]
    work = Path(tempfile.mkdtemp(prefix="bench-dupes-threshold-"))
    try:
        groups = plant(work / "library", originals, distinct)
        ix = work / "ix"
        r = CliRunner().invoke(app, ["index", str(work / "library"), "--index", str(ix), "--model", "aisfx",
                                     "--workers", "0", "--json"])
        if r.exit_code != 0:
            print(r.output, file=sys.stderr)
            return 1
        with Catalog.open(ix) as cat:
            seg, files = segment_files(cat, "audio")
            vec = {}
            for ids, v in cat.read_vectors("audio"):
                vec.update(zip(ids.tolist(), v))
            name = {f.id: Path(f.path).name for f in cat.files(status="ok")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    windows: dict[int, list[np.ndarray]] = {}
    for s, f in zip(seg.tolist(), files.tolist()):
        windows.setdefault(f, []).append(vec[s])
    per = {name[f]: np.stack(w) for f, w in windows.items()}
    group_of = {n: i for i, g in enumerate(groups) for n in g}
    source = {n: next(o for o in originals if n == o.path.name or n.startswith(o.stem + "_")) for n in group_of}
    kind = {s.path.name: s.kind for s in distinct} | {n: o.kind for n, o in source.items()}
    scores = [(file_similarity(per[a], per[b]), a, b) for a, b in itertools.combinations(sorted(per), 2)]
    planted = [x for x in scores if x[1] in group_of and group_of.get(x[1]) == group_of.get(x[2])]
    others = [x for x in scores if x not in planted]
    ids = {n: i for i, n in enumerate(sorted(per))}
    rows = [("threshold", "planted pairs together", "other pairs together", "planted groups exact")]
    sweep = []
    for t in THRESHOLDS:
        found = group_pairs([(ids[a], ids[b], s) for s, a, b in scores if s >= t])
        comp = {m: k for k, (members, _) in enumerate(found) for m in members}

        def together(a: str, b: str) -> bool:
            return ids[a] in comp and comp[ids[a]] == comp.get(ids[b])

        n_planted = sum(together(a, b) for _, a, b in planted)
        n_other = sum(together(a, b) for _, a, b in others)
        exact = sum(1 for g in groups if (k := comp.get(ids[next(iter(g))])) is not None
                    and {sorted(per)[i] for i in found[k][0]} == g)
        sweep.append({"threshold": t, "planted_together": n_planted, "other_together": n_other, "exact_groups": exact})
        rows.append((f"{t:.2f}" + (" (default)" if t == DEFAULT_THRESHOLD else ""), f"{n_planted}/{len(planted)}",
                     str(n_other), f"{exact}/{len(groups)}"))
    lowest = {}
    for suffix in VARIANTS:
        vs = [s for s, a, b in planted if (a.endswith(suffix) and b == source[a].path.name)
              or (b.endswith(suffix) and a == source[b].path.name)]
        long_vs = [s for s, a, b in planted if ((a.endswith(suffix) and b == source[a].path.name)
                   or (b.endswith(suffix) and a == source[b].path.name)) and duration[source[a].stem] >= 2.5]
        lowest[suffix] = {"all": round(min(vs), 4), "originals >= 2.5 s": round(min(long_vs), 4)}
    cross = max((s, a, b) for s, a, b in others if kind[a] != kind[b])
    same_kind = max((s, a, b) for s, a, b in others if kind[a] == kind[b])
    notes = [f"{len(per)} files, {len(groups)} planted groups of 5; lowest copy–original score by copy: "
             + json.dumps(lowest),
             f"highest score of two recordings of different kinds: {cross[0]:.4f} ({cross[1]}, {cross[2]})",
             f"highest score of two different recordings of one kind: {same_kind[0]:.4f} ({same_kind[1]}, {same_kind[2]})"]
    write_results("dupes_threshold", {"sweep": sweep, "lowest_copy_scores": lowest, "cross_kind_max": cross,
                                      "same_kind_max": same_kind, "default_threshold": DEFAULT_THRESHOLD},
                  rows, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
