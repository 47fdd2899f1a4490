"""How much LAION-CLAP's int16 round trip moves CLAP audio vectors: cosine with/without, on real recordings.

LAION-CLAP quantises every waveform to int16 and back before its features (``training/data.py``
``float32_to_int16``/``int16_to_float32``, applied by ``hook.py`` and the training loader); transformers'
``ClapFeatureExtractor`` does not. dgsearch applies it to original ``.pt`` checkpoints (as laion_clap does) and
not to hub models (as transformers does); this measures what the choice is worth on one model: the first 10 s
window (repeat-padded, 48 kHz) of each CC0 sonic-pi sample, at its own level and 30 dB quieter (a quiet
recording), embedded in float32 with and without the round trip; the figure is the cosine between the two
vectors of each window, with the cosine between different recordings beside it (so the reader sees what a
difference of that size means on this model).

    python benchmarks/bench_int16_round_trip.py --checkpoint CKPT.pt --tokenizer DIR [--out-dir benchmarks/results]

``CKPT.pt``: a LAION-CLAP checkpoint (``tests/reference/run_laion_clap.py`` writes full-size HTSAT-tiny random
weights saved by laion_clap's own ``CLAP_Module``, its BatchNorm set to real recordings' statistics).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUIET_DB = -30.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0, help="first N samples only (0: all 130)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args()

    from real_sounds import available_real_sounds

    from diffgap_search.encoders.clap.encoder import ClapEncoder
    from diffgap_search.media.audio import load_audio
    from diffgap_search.media.windows import repeat_pad

    began = time.time()
    sounds = available_real_sounds()[: args.limit or None]
    windows = np.stack([repeat_pad(load_audio(s.path, 48_000)[:480_000], 480_000) for s in sounds])
    encoder = ClapEncoder.from_laion_checkpoint(args.checkpoint, args.tokenizer, model_id="bench", device="cpu",
                                                precision="fp32")
    rows = {}
    for level, gain in (("as recorded", 1.0), (f"{QUIET_DB:g} dB", 10 ** (QUIET_DB / 20))):
        scaled = (windows * gain).astype(np.float32)
        encoder.int16_round_trip = True
        with_rt = encoder.embed_audio(scaled)
        encoder.int16_round_trip = False
        without = encoder.embed_audio(scaled)
        same = np.sum(with_rt * without, axis=1)
        between = with_rt @ with_rt.T
        off = between[~np.eye(len(between), dtype=bool)]
        worst = np.argsort(same)[:5]
        rows[level] = {"windows": len(same), "min": float(same.min()), "p5": float(np.percentile(same, 5)),
                       "median": float(np.median(same)), "below_0.999": int((same < 0.999).sum()),
                       "worst": [[sounds[i].stem, float(same[i])] for i in worst],
                       "between_recordings_max": float(off.max()), "between_recordings_median": float(np.median(off))}
    out = {"machine": machine(), "seconds": round(time.time() - began, 1), "checkpoint": str(args.checkpoint),
           "levels": rows}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "int16_round_trip.json").write_text(json.dumps(out, indent=2))
    lines = ["# LAION-CLAP int16 round trip: cosine with/without, per window", "",
             f"- command: `python benchmarks/bench_int16_round_trip.py` ({out['seconds']} s)", "",
             "| level | windows | min | 5th pct | median | < 0.999 | different recordings: max / median | worst |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for level, r in rows.items():
        worst = ", ".join(f"{s} {c:.4f}" for s, c in r["worst"][:3])
        lines.append(f"| {level} | {r['windows']} | {r['min']:.4f} | {r['p5']:.4f} | {r['median']:.5f} | "
                     f"{r['below_0.999']} | {r['between_recordings_max']:.4f} / {r['between_recordings_median']:.4f} "
                     f"| {worst} |")
    (args.out_dir / "int16_round_trip.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
