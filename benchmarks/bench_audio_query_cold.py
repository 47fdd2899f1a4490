"""A cold ``dgsearch query --audio FILE`` on an aisfx index: ONNX Runtime on the checked export
(``encoders/aisfx/onnx_query.py``, no torch) against the torch network as ``auto`` ran it before.

The index is sonic-pi's samples (Debian's ``sonic-pi-samples``, real recordings, CC0) indexed with ``--model aisfx
--no-frames`` in a cache folder of this run's own, so the index run makes the export. Queries: three files of
different lengths, a 0.9 s one-shot, a 10.7 s loop (two windows) and 120 s of sonic-pi loops joined (12 windows).
Each runs in fresh processes, alternated: ``auto`` (the ONNX path), ``--precision P`` with P the network path
``auto`` took on this machine (bf16 where bfloat16 is native, else fp32: the torch path ``auto`` took before the
export existed) and ``python -c "import torch"`` for scale. The hits of the two paths are compared (names in order).

    python benchmarks/bench_audio_query_cold.py --repeats 7
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

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _alternated import alternated, timing_rows  # noqa: E402
from _common import write_results  # noqa: E402

SONIC_PI = Path("/usr/share/sonic-pi/samples")
SHORT, LOOP = "glitch_perc5.flac", "loop_tabla.flac"
JOINED = ("loop_amen_full", "loop_compus", "loop_tabla", "loop_garzul", "loop_mika", "loop_safari")
RATE = 44_100


def joined_file(path: Path, seconds: float = 120.0) -> Path:
    """``seconds`` of sonic-pi loops one after another (repeated in order until long enough), as 16-bit FLAC."""
    import librosa

    parts, total = [], 0
    while total < seconds * RATE:
        for stem in JOINED:
            samples, _ = librosa.load(SONIC_PI / f"{stem}.flac", sr=RATE, mono=True)
            parts.append(samples)
            total += len(samples)
    sf.write(path, np.concatenate(parts)[: int(seconds * RATE)], RATE, subtype="PCM_16")
    return path


def network_path(cache: Path) -> str:
    """The path ``auto`` chose for aisfx's network here (``aisfx paths`` in ``precision-probes.json``)."""
    chosen = json.loads((cache / "precision-probes.json").read_text())
    (path,) = [v for k, v in chosen.items() if "|aisfx paths " in k]
    return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--name", default="audio_query_cold")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dg-audio-cold-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DGSEARCH_CACHE_DIR": str(tmp / "cache")}
    dg = [str(Path(sys.executable).parent / "dgsearch")]
    try:
        index = tmp / "index"
        t0 = time.perf_counter()
        subprocess.run([*dg, "index", str(SONIC_PI), "--index", str(index), "--model", "aisfx", "--no-frames"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        print(f"indexed {SONIC_PI} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        torch_path = network_path(tmp / "cache")
        queries = {"0.9 s one-shot": SONIC_PI / SHORT, "10.7 s loop": SONIC_PI / LOOP,
                   "120 s joined loops": joined_file(tmp / "joined.flac")}
        commands: dict[str, list[str]] = {}
        for label, file in queries.items():
            base = [*dg, "query", "--index", str(index), "--audio", str(file), "--paths", "-k", "10"]
            commands[f"{label}: auto (onnx)"] = base
            commands[f"{label}: --precision {torch_path} (torch)"] = [*base, "--precision", torch_path]
        commands["python -c 'import torch'"] = [sys.executable, "-c", "import torch"]
        times, outputs = alternated(commands, args.repeats, env)
        medians = {k: statistics.median(v) for k, v in times.items()}
        same = {label: outputs[f"{label}: auto (onnx)"] == outputs[f"{label}: --precision {torch_path} (torch)"]
                for label in queries}
        rows = timing_rows(times)
        notes = [f"index: {SONIC_PI} ({len(list(SONIC_PI.glob('*.flac')))} files), --model aisfx --no-frames; "
                 f"{args.repeats} fresh processes per command, alternated; top 10, --paths",
                 f"the torch path: --precision {torch_path}, what auto chose for the network on this machine",
                 "the same 10 hits in the same order on both paths: "
                 + ", ".join(f"{label} {ok}" for label, ok in same.items())]
        write_results(args.name, {"times": times, "medians": medians, "torch_path": torch_path, "same_hits": same},
                      rows, notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
