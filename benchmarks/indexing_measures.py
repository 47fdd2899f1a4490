"""What ``bench_indexing.py`` times: fresh processes end to end (the engine's ``dgsearch index``, the loops of
``indexing_loops.py``), the engine in process with its model loaded, the encoder alone on pre-decoded windows
(the ceiling), the in-process prefetch A/B, and the bf16 audio tower's cosine to float32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import windows_of

LOOPS = Path(__file__).resolve().with_name("indexing_loops.py")


def timed_process(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``argv`` as a fresh process; ``(seconds from spawn to exit, CPU seconds, stdout)``; raises on failure.

    CPU seconds are user + sys of the process and its children (decode workers): on a shared machine they
    move less than wall time, so the report gives both ratios."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {r.returncode}: {r.stderr[-2000:]}")
    return seconds, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, r.stdout


def loop_process(kind: str, paths: list[Path], model_dir: Path, work: Path, batch_size: int) -> dict:
    """``kind`` (naive|competent) in a fresh Python process, timed end to end."""
    listing = work / f"{kind}.txt"
    listing.write_text("\n".join(map(str, paths)))
    argv = [sys.executable, str(LOOPS), "--loop", kind, "--list", str(listing), "--model-dir", str(model_dir),
            "--batch-size", str(batch_size), "--loop-out", str(work / f"{kind}.npy")]
    seconds, cpu, out = timed_process(argv)
    return {**json.loads(out.strip().splitlines()[-1]), "seconds": seconds, "cpu_s": cpu}


def engine_process(folder: Path, index_dir: Path, model_dir: Path, device: str, batch_size: int) -> dict:
    """``dgsearch index`` in a fresh process, timed end to end."""
    exe = Path(sys.executable).with_name("dgsearch")
    argv = [str(exe), "index", str(folder), "--index", str(index_dir), "--model", str(model_dir), "--device",
            device, "--batch-size", str(batch_size), "--json"]
    seconds, cpu, out = timed_process(argv, {"HF_HUB_OFFLINE": "1", "NO_COLOR": "1"})
    return {"windows": json.loads(out)["windows_embedded"], "seconds": seconds, "cpu_s": cpu}


def first_use(paths: list[Path], work: Path, model_dir: Path, device: str, batch_size: int) -> dict:
    """A fresh ``dgsearch index`` of one clip into a throwaway index, before anything is timed: on a machine
    where ``--precision auto`` has not yet chosen for these weights it probes (and exports the ONNX paths) here,
    once, so the timed runs find the choice remembered, as a user's second run does. Returns its seconds and
    whether it probed (the probe file changed)."""
    from diffgap_search.encoders.weights.fingerprint import cache_dir

    probes = cache_dir() / "precision-probes.json"
    before = probes.read_text() if probes.is_file() else None
    folder = work / "first-use"
    folder.mkdir()
    (folder / paths[0].name).symlink_to(paths[0])
    run = engine_process(folder, work / "index-first-use", model_dir, device, batch_size)
    after = probes.read_text() if probes.is_file() else None
    return {**run, "probed": after != before}


def bf16_error(encoder, paths: list[Path], max_windows: int) -> dict:
    """Cosine of the bf16 audio tower's vectors to float32's, on real recordings and on the generated clips."""
    import torch

    real_dir = Path("/usr/share/sonic-pi/samples")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from real_sounds import available_real_sounds  # type: ignore[import-not-found]
        real = [r.path for r in available_real_sounds()]
    except Exception:  # noqa: BLE001 - no helper or no package: take what the folder has
        real = sorted(real_dir.glob("*.flac")) if real_dir.is_dir() else []
    out = {}
    from diffgap_search.encoders.clap import fast_paths

    exact, low = fast_paths.fp32_runner(encoder.model), fast_paths.bf16_runner(encoder.model)
    for name, files in (("real recordings (sonic-pi CC0)", real), ("generated clips", paths)):
        batch = windows_of(files, max_windows)
        if not len(batch):
            continue
        cos = []
        for i in range(0, len(batch), 16):
            feats = encoder._features(batch[i : i + 16])
            with torch.inference_mode():
                a = encoder._forward_audio(feats, exact)
                b = encoder._forward_audio(feats, low)
            cos.append((a * b).sum(1))
        c = np.concatenate(cos)
        out[name] = {"windows": len(c), "min": float(c.min()), "median": float(np.median(c)), "mean": float(c.mean())}
    return out


def ceiling(encoder, paths: list[Path], max_windows: int) -> tuple[int, float]:
    """The engine's encoder alone on pre-decoded windows; returns (windows, seconds of the best of 3 runs)."""
    batch = windows_of(paths, max_windows)
    encoder.embed_audio(batch[:2])  # first call: precision probe, lazy init
    best = float("inf")
    for _ in range(3):  # the best of three: the ceiling, and less at the mercy of a noisy machine
        t0 = time.perf_counter()
        encoder.embed_audio(batch)
        best = min(best, time.perf_counter() - t0)
    return len(batch), best


def engine(folder: Path, index_dir: Path, model_dir: Path, device: str, batch_size: int,
           stages=None, warm_runs: int = 0) -> tuple[int, float, dict]:
    """``index_folder`` end to end (model load excluded: loaded once before the clock starts); ``stages``: the
    run's stages (default: the local engine's, as ``index_folder`` builds them). ``warm_runs``: that many more
    runs of the same loaded model into fresh indexes, their seconds in ``info["warm_s"]`` (the first run pays
    the kernels' first use at each batch shape, which a long run pays once)."""
    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing import RunSettings, default_stages, run_index

    cfg = EncoderConfig(model=str(model_dir), device=device, batch_size=batch_size)
    encoder = load_encoder(cfg, progress=False)
    encoder.embed_audio(np.zeros((1, encoder.window_samples), np.float32))  # precision probe, as a warm process
    runs_s, reports = [], []
    for i in range(1 + warm_runs):  # the first run, then the warm ones, each into a fresh index
        target = index_dir if i == 0 else index_dir.with_name(f"{index_dir.name}-warm{i - 1}")
        t0 = time.perf_counter()
        reports.append(run_index(RunSettings(folder, target, load_encoder=lambda _c: encoder, encoder_cfg=cfg),
                                 stages or default_stages()))
        runs_s.append(time.perf_counter() - t0)
    report, seconds, warm_s = reports[0], runs_s[0], runs_s[1:]
    info = {"warm_s": warm_s, "files": report.embedded_files, "audio_dtype": str(encoder.audio_dtype),
            "audio_path": str(encoder.audio_path),
            "fast_features": encoder._fast_features is not None, "batch_size": batch_size}
    return report.windows_embedded, seconds, info


class InlineDecoded:
    """The decode map iterated by the consumer itself, as indexing did before its prefetch thread (workers
    idle while the encoder runs): the in-process A/B's baseline, as the run's decode stage."""

    def __init__(self, tasks, workers, deadline_s, budget) -> None:
        from diffgap_search.indexing.decode import decode_task, lost_decode
        from diffgap_search.indexing.pool import ordered_map

        self._source = ordered_map(decode_task, iter(tasks), workers, on_lost=lost_decode, deadline_s=deadline_s)

    def __iter__(self):
        return self._source

    def __next__(self):
        return next(self._source)

    def set_budget(self, budget: int) -> None:
        """Nothing is decoded ahead of the consumer here: no budget to change (``indexing.stages.DecodedFiles``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._source.close()


def engine_ab(folder: Path, work: Path, model_dir: Path, device: str, batch_size: int, rounds: int = 2) -> dict:
    """``index_folder`` in process with and without the prefetch thread, alternated ``rounds`` times on the
    same machine state; median seconds of each."""
    from dataclasses import replace

    from diffgap_search.indexing import default_stages

    variants = {"prefetch": default_stages(), "inline": replace(default_stages(), decode=InlineDecoded)}
    times: dict[str, list[float]] = {"prefetch": [], "inline": []}
    for r in range(rounds):
        for variant, stages in variants.items():
            n, seconds, _ = engine(folder, work / f"index-ab-{variant}-{r}", model_dir, device, batch_size, stages)
            times[variant].append(seconds)
            print(f"  A/B {variant}: {n} windows in {seconds:.1f} s", flush=True)
    return {k: {"windows": n, "seconds": float(np.median(v)), "runs": v} for k, v in times.items()}


def decode_plain(args):
    """The decode task as it was before 2026-12-05's second heap change: ``decode_file`` in a worker whose malloc
    is as glibc sets it (``bench_heap.py``'s policies other than ``keep``, through ``stages.decode_in_workers``'s
    ``task``). Module level: spawned workers import it."""
    from diffgap_search.indexing.decode import decode_file

    return decode_file(*args)

