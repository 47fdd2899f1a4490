"""aisfx's network on its precision paths (``encoders/aisfx/precision.py``): speed and per-file cosine to float32.

Every file of two real sets is embedded as ``dgsearch index`` embeds it (preprocessing version 2: a file under
10 s from its own samples, a longer one by its first 10 s window here), its features computed once; then only
the network is timed, one torch thread, on three paths:

- ``fp32 contiguous``: the network as it ran before channels-last (the baseline);
- ``fp32``: float32, channels-last layout (what ``--precision fp32`` runs now);
- ``bf16``: autocast to bfloat16, channels-last (``--precision bf16``; ``auto`` where bf16 is native and the probe
  agrees).

Sets: sonic-pi's 130 CC0 samples (``tests/real_sounds.py``: where the path was checked first) and the 743
described sounds of the Debian packages (``real_gap/packages.py``; the judge). The cosine of each file's vector
to ``fp32 contiguous``'s: min, 1st percentile, median, and the count below 0.999. With ``--isa avx2`` the run
is repeated in a child process under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (torch's kernels and
oneDNN's capped to AVX2, how an AVX2-only CPU is approximated; bf16 is emulated there, and ``auto`` never takes
it).

    python benchmarks/bench_aisfx_precision.py [--isa native|avx2|both] [--limit N]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "real_gap"))
from _common import ROOT, write_results  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))

RATE = 44_100
WINDOW = 10 * RATE
PATHS = ("fp32 contiguous", "fp32", "bf16")


def measure(sets: dict[str, list[str]]) -> dict[str, Any]:
    """Per set and path: network seconds (one thread) and each file's cosine to the baseline's vector."""
    import torch

    from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder
    from diffgap_search.media.audio import load_audio

    torch.set_num_threads(1)
    encoder = load_aisfx_encoder("cpu", precision="fp32")
    nets = {"fp32 contiguous": copy.deepcopy(encoder.net).to(memory_format=torch.contiguous_format),
            "fp32": encoder.net, "bf16": encoder.net}
    out: dict[str, Any] = {"capability": torch.backends.cpu.get_cpu_capability()}
    for name, paths in sets.items():
        inputs = []
        for p in paths:
            samples = load_audio(p, RATE)[:WINDOW]
            if len(samples):
                inputs.append(encoder.model_input(samples[None, :].astype(np.float32)))
        seconds, vectors = {}, {}
        for path in PATHS:
            net = nets[path]
            rows, started = [], time.perf_counter()
            with torch.inference_mode():
                for x in inputs:
                    if path == "bf16":
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            rows.append(net(x).float())
                    else:
                        rows.append(net(x))
            seconds[path] = time.perf_counter() - started
            vectors[path] = torch.nn.functional.normalize(torch.cat(rows), dim=1).numpy()
        cos = {path: np.sum(vectors[path] * vectors["fp32 contiguous"], axis=1) for path in PATHS[1:]}
        out[name] = {"files": len(inputs), "seconds": seconds,
                     "cosine": {path: {"min": float(c.min()), "p1": float(np.percentile(c, 1)),
                                       "median": float(np.median(c)), "below_0999": int((c < 0.999).sum())}
                                for path, c in cos.items()}}
    return out


def child(isa: str, limit: int, cache_dir: Path) -> dict[str, Any]:
    """``measure`` in a fresh process under ``isa``'s caps (native: none)."""
    env = dict(os.environ)
    if isa == "avx2":
        env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    cmd = [sys.executable, __file__, "--child", "--limit", str(limit), "--cache-dir", str(cache_dir)]
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def real_sets(limit: int, cache_dir: Path) -> dict[str, list[str]]:
    from packages import build_table
    from real_sounds import available_real_sounds

    sonic = [str(s.path) for s in available_real_sounds()]
    debian = [s.path for s in build_table(cache_dir)[0]]
    return {"sonic-pi (130)": sonic[:limit] if limit else sonic, "Debian packages (judge)": debian[:limit] if limit else debian}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isa", choices=("native", "avx2", "both"), default="both")
    p.add_argument("--limit", type=int, default=0, help="at most this many files per set (0: all)")
    p.add_argument("--cache-dir", type=Path,
                   default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgsearch-real-gap")
    p.add_argument("--name", default="bench_aisfx_precision")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(real_sets(args.limit, args.cache_dir))))
        return 0
    isas = ("native", "avx2") if args.isa == "both" else (args.isa,)
    results = {isa: child(isa, args.limit, args.cache_dir) for isa in isas}
    rows = [("ISA (torch capability)", "set", "files", "path", "network s", "x baseline", "cosine to baseline: min / p1 / median",
             "below 0.999")]
    for isa, r in results.items():
        for name, s in r.items():
            if name == "capability":
                continue
            base = s["seconds"]["fp32 contiguous"]
            for path in PATHS:
                c = s["cosine"].get(path)
                cosine = f"{c['min']:.5f} / {c['p1']:.5f} / {c['median']:.6f}" if c else "(the baseline)"
                rows.append((f"{isa} ({r['capability']})", name, str(s["files"]), path, f"{s['seconds'][path]:.1f}",
                             f"{base / s['seconds'][path]:.2f}", cosine, str(c["below_0999"]) if c else "-"))
    notes = ["one torch thread; features computed once, outside the timing; each file once (under 10 s: its own"
             " samples; longer: its first 10 s)",
             "under avx2 caps bfloat16 is emulated: `auto` takes bf16 only where it is native (avx512_bf16 or AMX)"]
    write_results(args.name, results, rows, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
