"""The measurements of ``benchmarks/gpu_check.sh`` (run that: it checks for a GPU first). Each part is bounded
so the whole stays under 8 minutes on one GPU; a part that fails is recorded with its error, not fatal."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import make_clips, make_full_clap, write_results  # noqa: E402

RESULTS: dict[str, Any] = {}
ROWS: list[tuple[str, ...]] = [("measure", "value", "note")]


def part(name: str, fn: Callable[[], None]) -> None:
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - a failed part is recorded, the others still run
        RESULTS[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        ROWS.append((name, "failed", f"{type(exc).__name__}: {str(exc)[:120]}"))
        traceback.print_exc()
    print(f"gpu_check: {name} took {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def windows_per_s(embed: Callable[[np.ndarray], Any], batch: np.ndarray, seconds: float) -> float:
    embed(batch[:2])  # warm-up (CUDA context, kernels)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        embed(batch)
        n += len(batch)
    return n / (time.perf_counter() - t0)


def clap_parts(model_dir: Path) -> None:
    import torch

    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder

    rng = np.random.default_rng(0)
    batch = (0.1 * rng.standard_normal((32, 480_000))).astype(np.float32)
    for device, secs in (("cuda", 30.0), ("cpu", 20.0)):
        enc = load_encoder(EncoderConfig(model=str(model_dir), device=device, batch_size=32), progress=False)
        rate = windows_per_s(enc.embed_audio, batch if device == "cuda" else batch[:8], secs)
        RESULTS[f"clap_{device}_windows_per_s"] = rate
        ROWS.append((f"CLAP (full-size, random weights) windows/s, {device}", f"{rate:.1f}", "encoder as indexing runs it"))
    RESULTS["clap_speedup"] = RESULTS["clap_cuda_windows_per_s"] / RESULTS["clap_cpu_windows_per_s"]
    ROWS.append(("CLAP CUDA speedup over CPU", f"{RESULTS['clap_speedup']:.1f}x", ""))
    from transformers import ClapFeatureExtractor, ClapModel

    fe = ClapFeatureExtractor.from_pretrained(str(model_dir))
    feats = fe(list(batch[:16]), sampling_rate=48_000, return_tensors="pt")
    model = ClapModel.from_pretrained(str(model_dir)).eval().cuda()
    with torch.inference_mode():
        inputs = {k: v.cuda() for k, v in feats.items()}
        ref = torch.nn.functional.normalize(model.get_audio_features(**inputs).float(), dim=-1)
        for dtype in (torch.float16, torch.bfloat16):
            low = model.to(dtype)
            cast = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
            out = torch.nn.functional.normalize(low.get_audio_features(**cast).float(), dim=-1)
            cos = (out * ref).sum(-1).cpu().numpy()
            name = str(dtype).split(".")[-1]
            RESULTS[f"clap_{name}_cosine_min"] = float(cos.min())
            RESULTS[f"clap_{name}_cosine_mean"] = float(cos.mean())
            ROWS.append((f"CLAP {name} vs fp32 audio vectors, cosine min / mean", f"{cos.min():.5f} / {cos.mean():.5f}",
                         "fit for indexing if min >= 0.999"))
            model = model.float()


def aisfx_part() -> None:
    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder

    rng = np.random.default_rng(1)
    for device, secs in (("cuda", 20.0), ("cpu", 15.0)):
        enc = load_encoder(EncoderConfig(model="aisfx", device=device, batch_size=32), progress=False)
        batch = (0.1 * rng.standard_normal((32 if device == "cuda" else 8, int(enc.sample_rate * 10)))).astype(np.float32)
        rate = windows_per_s(enc.embed_audio, batch, secs)
        RESULTS[f"aisfx_{device}_windows_per_s"] = rate
        ROWS.append((f"aisfx windows/s, {device}", f"{rate:.1f}", ""))


def faiss_part() -> None:
    import faiss

    rng = np.random.default_rng(2)
    x = rng.standard_normal((200_000, 512)).astype(np.float32)
    faiss.normalize_L2(x)
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    RESULTS["faiss_gpus"] = gpus
    for gpu in ([True] if gpus else []) + [False]:
        km = faiss.Kmeans(512, 1024, niter=10, seed=0, gpu=gpu, verbose=False)
        t0 = time.perf_counter()
        km.train(x if gpu else x[:50_000])
        dt = time.perf_counter() - t0
        where = "GPU" if gpu else "CPU"
        RESULTS[f"faiss_kmeans_{where.lower()}_s"] = dt
        ROWS.append((f"FAISS k-means 1024 centroids, 10 iterations, {where}",
                     f"{dt:.1f} s", "200k x 512" if gpu else "50k x 512 (a quarter of the GPU's points)"))
    if not gpus:
        ROWS.append(("FAISS GPU k-means", "not measured", "faiss has no GPU here (pip install faiss-gpu-cu12)"))


def ray_part(model_dir: Path, work: Path) -> None:
    make_clips(work / "clips", 100, min_s=29.95, max_s=30.0)
    port = _free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                             f"--temp-dir={work / 'ray'}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(15)
        dg = str(Path(sys.executable).with_name("dgsearch"))
        t0 = time.perf_counter()
        subprocess.run([dg, "index", str(work / "clips"), "--index", str(work / "ix"), "--model", str(model_dir),
                        "--engine", "ray", "--batch-size", "32", "--json"], check=True, timeout=180,
                       env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        RESULTS["ray_one_gpu_actor_windows_per_s"] = 300 / dt
        ROWS.append(("dgsearch index --engine ray, 1 GPU actor, 300 windows, process start included",
                     f"{300 / dt:.1f} windows/s", "full-size CLAP; decode on this machine's CPUs"))
    finally:
        head.terminate()
        try:
            head.wait(60)
        finally:
            try:
                os.killpg(head.pid, 9)
            except ProcessLookupError:
                pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()
    import torch

    RESULTS["gpu"] = torch.cuda.get_device_name(0)
    work = Path(tempfile.mkdtemp(prefix="dgsearch-gpu-check-"))
    model_dir = make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")
    part("clap", lambda: clap_parts(model_dir))
    try:
        import aisfx  # noqa: F401

        part("aisfx", aisfx_part)
    except ImportError:
        ROWS.append(("aisfx", "not measured", "the aisfx package is not installed"))
    part("faiss", faiss_part)
    try:
        import ray  # noqa: F401

        part("ray", lambda: ray_part(model_dir, work))
    except ImportError:
        ROWS.append(("--engine ray", "not measured", "Ray is not installed (pip install -e '.[ray]')"))
    ROWS.append(("CLIP, CAVP, DiffGAP training on CUDA", "not measured here", "need their weights; see docs/ray.md"))
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    write_results("gpu_check", RESULTS, ROWS, [f"GPU: {RESULTS['gpu']}"], **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
