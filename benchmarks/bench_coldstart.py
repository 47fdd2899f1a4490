"""Cold start: ``dgsearch --help`` (no torch import; target ≤ 0.3 s) and a cold ``dgsearch query`` against
``python -c "import torch, transformers"`` plus loading the model (target: overhead ≤ 20 %).

Each figure is the median of ``--repeats`` fresh processes. The index queried holds a few generated clips
embedded with the full-size random-weight CLAP architecture, in a cache folder of this run's own
(``DGSEARCH_CACHE_DIR``), so the index run makes the text tower's ONNX export (``encoders/clap/text_onnx.py``)
that a cold word query then runs without torch; ``--precision fp32`` is the query that builds the model as every
word query did before that export. An audio query (one of the clips) runs, where ``auto`` chose an ONNX path for
the audio tower, through numpy features and that file without torch (``encoders/clap/audio_query.py``); with
``--precision`` set to that same path it starts the encoder deferred, through torch, as before.

    python benchmarks/bench_coldstart.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_clips, make_full_clap, write_results  # noqa: E402


CPU: dict[str, float] = {}  # command label -> median CPU seconds (user + sys) of its processes


def timed(cmd: list[str], repeats: int, label: str | None = None) -> float:
    """Median wall seconds of ``repeats`` fresh runs of ``cmd``; their median CPU seconds (user + sys, the
    process and its children: steadier than wall time on a shared machine) go to ``CPU[label or cmd[-1]]``."""
    times, cpu = [], []
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    CPU[label or cmd[-1]] = statistics.median(cpu)
    return statistics.median(times)


def remembered_audio_path(cache: Path) -> str:
    """The audio tower's path ``auto`` chose in the index run (``precision-probes.json``), fp32 if none."""
    import json

    chosen = json.loads((cache / "precision-probes.json").read_text())
    found = [v for k, v in chosen.items() if "|audio|" in k and k.endswith("|auto") and isinstance(v, str)]
    return found[0] if found else "fp32"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--name", default="coldstart")
    args = ap.parse_args()
    exe = Path(sys.executable).parent / "dgsearch"
    dg = [str(exe)] if exe.exists() else [sys.executable, "-m", "diffgap_search.cli"]
    model = make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    work = Path(tempfile.mkdtemp(prefix="dgsearch-bench-cold-"))
    os.environ["DGSEARCH_CACHE_DIR"] = str(work / "cache")  # this run's exports and probes, made by its index run
    index = work / "index"
    make_clips(work / "clips", 3)
    subprocess.run([*dg, "index", str(work / "clips"), "--index", str(index), "--model", str(model),
                    "--device", args.device], check=True, capture_output=True)
    help_s = timed([*dg, "--help"], args.repeats)
    import_s = timed([sys.executable, "-c", "import torch, transformers"], args.repeats)
    load = ("import torch, transformers\nfrom transformers import ClapModel, AutoTokenizer\n"
            f"m = ClapModel.from_pretrained({str(model)!r}).eval()\nt = AutoTokenizer.from_pretrained({str(model)!r})")
    base_s = timed([sys.executable, "-c", load], args.repeats)
    query_s = timed([*dg, "query", "dog barking", "--index", str(index), "--json"], args.repeats)
    torch_s = timed([*dg, "query", "dog barking", "--index", str(index), "--precision", "fp32", "--jsonl"],
                    args.repeats)
    clip = str(sorted((work / "clips").iterdir())[0])
    audio_path = remembered_audio_path(work / "cache")
    audio_s = timed([*dg, "query", "--audio", clip, "--index", str(index), "--json"], args.repeats, "audio")
    audio_torch_s = timed([*dg, "query", "--audio", clip, "--index", str(index), "--precision", audio_path, "--json"],
                          args.repeats, "audio torch")
    shutil.rmtree(work, ignore_errors=True)
    overhead = query_s / base_s - 1
    cpu = {"help": CPU["--help"], "import": CPU["import torch, transformers"], "baseline": CPU[load],
           "query": CPU["--json"], "query torch": CPU["--jsonl"], "audio": CPU["audio"],
           "audio torch": CPU["audio torch"]}
    cpu_overhead = cpu["query"] / cpu["baseline"] - 1
    table = [("what", "median s (wall)", "median CPU s", "target"),
             ("dgsearch --help", f"{help_s:.3f}", f"{cpu['help']:.3f}", "≤ 0.3 s"),
             ('python -c "import torch, transformers"', f"{import_s:.2f}", f"{cpu['import']:.2f}", ""),
             ("baseline: import + ClapModel.from_pretrained + tokenizer", f"{base_s:.2f}", f"{cpu['baseline']:.2f}", ""),
             ('dgsearch query "dog barking" (cold)', f"{query_s:.2f}", f"{cpu['query']:.2f}",
              f"≤ baseline + 20 % ({base_s * 1.2:.2f})"),
             ("query overhead over the baseline", f"{overhead:+.0%}", f"{cpu_overhead:+.0%}", "≤ +20 %"),
             ('dgsearch query "dog barking" --precision fp32 (cold; the model built)', f"{torch_s:.2f}",
              f"{cpu['query torch']:.2f}", ""),
             ("dgsearch query --audio CLIP (cold)", f"{audio_s:.2f}", f"{cpu['audio']:.2f}", ""),
             (f"dgsearch query --audio CLIP --precision {audio_path} (cold; auto's audio path, through torch)",
              f"{audio_torch_s:.2f}", f"{cpu['audio torch']:.2f}", "")]
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results(args.name, {"help_s": help_s, "import_s": import_s, "baseline_s": base_s, "query_s": query_s,
                              "query_torch_s": torch_s, "audio_s": audio_s, "audio_torch_s": audio_torch_s,
                              "audio_path": audio_path,
                                "overhead": overhead, "cpu_s": cpu, "cpu_overhead": cpu_overhead,
                                "repeats": args.repeats}, table,
                  [f"median of {args.repeats} fresh processes each; full-size CLAP architecture, random weights",
                   "CPU s: user + sys of the process and its children, steadier than wall time on a shared machine"],
                  **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
