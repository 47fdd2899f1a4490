"""Shared helpers of the benchmark scripts: machine facts, result files, a full-size random CLAP, clips.

Every script prints its figures and writes ``results/<name>.json`` and ``results/<name>.md`` (date,
machine, command). Timings are wall-clock on whatever machine runs them: compare ratios within one run.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def bench_device(name: str) -> str:
    """The torch device for ``--device``; a GPU asked for where there is none falls back to the CPU (said)."""
    from diffgap_search.encoders.runtime import resolve_device

    try:
        return str(resolve_device(name))
    except Exception as exc:  # noqa: BLE001 - no GPU here: say so, run on CPU
        print(f"device {name!r} unavailable ({exc}): skipping GPU, running on CPU", file=sys.stderr)
        return "cpu"


def machine() -> dict[str, Any]:
    """CPU count (and affinity), platform, Python, torch/faiss versions where imported."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "python": platform.python_version(),
        "cpu_flags": cpu_flags(),
    }
    for mod in ("torch", "transformers", "faiss", "numpy"):
        if mod in sys.modules:
            info[mod] = getattr(sys.modules[mod], "__version__", "?")
    return info


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line's value in ``/proc/cpuinfo`` (None where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), None)


def cpu_flags() -> list[str]:
    """Which of the flags that decide the encoders' speed paths the CPU has (avx2, avx512f, avx512_bf16, amx)."""
    flags = (_cpuinfo_field("flags") or "").split()
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]


def _cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor()


def memory_status_mb(*fields: str) -> dict[str, float]:
    """This process's ``/proc/self/status`` memory lines named ``fields`` (``VmRSS``, ``RssAnon``, …), in MB;
    a field the kernel does not report is absent (empty off Linux)."""
    try:
        with open("/proc/self/status") as fh:
            lines = [line.split() for line in fh if line.split(":")[0] in fields]
    except OSError:
        return {}
    return {parts[0].rstrip(":"): int(parts[1]) / 1024 for parts in lines if len(parts) >= 2}


def write_results(name: str, payload: dict[str, Any], table: list[tuple[str, ...]], notes: list[str] = (),
                  out_dir: Path = RESULTS) -> None:
    """``out_dir/name.json`` (payload + date, machine, command) and ``out_dir/name.md`` (table + notes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
    }
    doc = {**meta, **payload}
    (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    m = meta["machine"]
    lines = [f"# {name}", "", f"- date: {meta['date']}",
             f"- machine: {m['cpus_usable']} usable CPUs of {m['cpu_count']} ({m['processor']}), {m['platform']}",
             f"- CPU flags: {', '.join(m['cpu_flags']) or 'none of avx2, avx512f, avx512_bf16, amx_tile'}",
             f"- command: `{meta['command']}`", ""]
    header, *rows = table
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + " --- |" * len(header))
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def make_full_clap(path: Path, seed: int = 0) -> Path:
    """A full-size ``ClapModel`` with random weights in the real layout of ``laion/clap-htsat-unfused``.

    ``ClapConfig()`` defaults are that model's architecture (HTSAT-tiny audio tower: depths 2-2-6-2, 96-d
    patch embeddings, 768-d; RoBERTa-base text tower; 512-d projection; no fusion): the hub config only
    restates defaults. The feature extractor is the hub's (rand_trunc, repeatpad, 64 mel, 48 kHz, 10 s).
    The tokenizer is a small BPE trained on the spot (tokenising is not what is measured). Cached: a
    folder that already holds the weights is reused.
    """
    path = Path(path)
    if (path / "model.safetensors").is_file() and (path / "preprocessor_config.json").is_file():
        return path
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    from tests.fixtures_models import _quietly, _save_tokenizer

    path.mkdir(parents=True, exist_ok=True)
    _save_tokenizer(path, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(ClapConfig(projection_dim=512)).eval()
    _quietly(model.save_pretrained, str(path), safe_serialization=True)
    ClapFeatureExtractor(
        feature_size=64, sampling_rate=48_000, hop_length=480, max_length_s=10, fft_window_size=1024,
        frequency_min=50, frequency_max=14_000, truncation="rand_trunc", padding="repeatpad",
    ).save_pretrained(str(path))
    return path


def make_clips(folder: Path, count: int, seed: int = 0, min_s: float = 10.0, max_s: float = 30.0,
               rates: tuple[int, ...] = (44_100, 48_000, 32_000)) -> list[Path]:
    """``count`` mono 16-bit WAVs of ``min_s``..``max_s`` seconds (tones, sweeps and noise mixed, seeded),
    at sample rates cycling through ``rates`` (so most need resampling to 48 kHz, as real folders do)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        p = folder / f"clip_{i:05d}.wav"
        sr = rates[i % len(rates)]
        seconds = float(rng.uniform(min_s, max_s))
        if not p.exists():
            t = np.arange(int(seconds * sr)) / sr
            f0, f1 = rng.uniform(100, 4000, 2)
            sig = 0.3 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)))
            sig += 0.1 * rng.standard_normal(t.shape) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t))
            sf.write(p, sig.astype(np.float32), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def windows_of(paths: list[Path], limit: int | None = None) -> np.ndarray:
    """``(N, 480000) float32`` windows of ``paths`` as the engine cuts them (10 s, hop 10 s), in order, at most
    ``limit`` (None: all of them); ``(0, 480000)`` for no paths."""
    from diffgap_search.config import WindowConfig
    from diffgap_search.media.audio import load_audio
    from diffgap_search.media.windows import window_audio

    cfg = WindowConfig()
    wins: list[np.ndarray] = []
    for path in paths:
        wins.append(window_audio(load_audio(path, cfg.sample_rate), cfg).samples)
        if limit is not None and sum(len(w) for w in wins) >= limit:
            break
    if not wins:
        return np.zeros((0, cfg.embed_samples), np.float32)
    return np.concatenate(wins)[:limit].astype(np.float32, copy=False)


def indexing_encoder(clips: int, precision: str = "auto") -> tuple[Any, Any, list[Path]]:
    """``(cfg, encoder, paths)``: the full-size CLAP architecture (random weights) on ``precision``'s path, loaded
    once and asked for lanes as an indexing run asks (made where ``lanes_for`` allows), with ``clips`` generated
    clips (``make_clips``); the heap policy an indexing run sets."""
    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.clap.lanes import index_in_lanes
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing.memory import keep_freed_memory

    keep_freed_memory()  # as an indexing run sets it, so the encoder alone runs under the same heap policy
    model_dir = make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    paths = make_clips(Path(tempfile.gettempdir()) / "dgsearch-bench-clips", clips)
    cfg = EncoderConfig(model=str(model_dir), device="cpu", batch_size=16, precision=precision)
    encoder = load_encoder(cfg, progress=False)
    index_in_lanes(encoder)  # as an indexing run asks
    encoder.embed_audio(np.zeros((2, encoder.window_samples), np.float32))  # the path chosen, lanes made
    return cfg, encoder, paths


def bf16_encoder_in_lanes(clips: int) -> tuple[Any, Any, list[Path]]:
    """``indexing_encoder`` on the bf16 path (forced), for the lanes' benchmarks. Exits where no lanes are made
    (one torch thread)."""
    cfg, encoder, paths = indexing_encoder(clips, "bf16")
    if encoder.lanes is None:
        raise SystemExit("no lanes here (one torch thread, or no bf16 path): nothing to compare")
    return cfg, encoder, paths


def lanes_args(doc: str, name: str) -> Any:
    """The lanes' benchmarks' arguments: ``--clips`` (240), ``--rounds`` (4), ``--out-dir``, ``--name`` (``name``)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--name", default=name)
    return ap.parse_args()


def link_folder(folder: Path, paths: list[Path]) -> Path:
    """``folder`` made, holding a symbolic link to each of ``paths`` (a library to index without copying)."""
    folder.mkdir(parents=True)
    for p in paths:
        (folder / p.name).symlink_to(p)
    return folder
