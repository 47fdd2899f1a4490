"""The measurements of ``benchmarks/gpu_check.py``, one function per part. Each takes a ``Check`` (where to
write, which device stands for the GPU, how long to time) and adds figures to ``check.results`` and rows to
``check.rows``. ``check.gpu`` is ``"cuda"`` on a GPU machine; the dry run (``--dry-run``) passes ``"cpu"`` and
short timings so every part's code runs on a machine without a GPU."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass
class Check:
    """What every part shares: ``gpu`` (the device measured), ``work`` (a scratch folder), ``scale`` (1.0 on a
    GPU; small in the dry run), results and table rows; ``model_dir``, the full-size random CLAP, is written on
    first use (a minute and 600 MB: only the parts that run CLAP need it)."""

    gpu: str
    work: Path
    scale: float = 1.0
    results: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        import tempfile

        from _common import make_full_clap

        return make_full_clap(Path(tempfile.gettempdir()) / "dgsearch-bench-clap")  # cached once written

    def row(self, measure: str, value: str, note: str = "") -> None:
        self.rows.append((measure, value, note))

    def seconds(self, full: float) -> float:
        """A timing window: ``full`` seconds on a GPU, a tenth of a second per ten in the dry run."""
        return max(0.5, full * self.scale)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(embed: Callable[[Any], Any], batch: Any, n: int, seconds: float, device: str) -> float:
    """Items per second of ``embed(batch)`` (``n`` items a call) over at least ``seconds``, after one warm-up."""
    embed(batch)  # warm-up: CUDA context, kernels, allocator, a first probe
    _sync(device)
    calls, t0 = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - t0 < seconds:
        embed(batch)
        calls += 1
    _sync(device)
    return calls * n / (time.perf_counter() - t0)


def clap(check: Check) -> None:
    """CLAP (full-size HTSAT + RoBERTa, random weights) as indexing runs it: windows/s on the GPU with the
    precision path ``auto`` chooses there and with fp32, on this machine's CPUs in fp32; fp16 and bf16 audio
    vectors against fp32 (cosine, 16 windows of noise)."""
    import torch

    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder

    rng = np.random.default_rng(0)
    batch = (0.1 * rng.standard_normal((32, 480_000))).astype(np.float32)
    for role, device, precision, n, secs in (("gpu", check.gpu, "auto", 32, 20.0), ("gpu", check.gpu, "fp32", 32, 15.0),
                                             ("cpu", "cpu", "fp32", 8, 10.0)):
        enc = load_encoder(EncoderConfig(model=str(check.model_dir), device=device, batch_size=32,
                                         precision=precision), progress=False)
        r = rate(enc.embed_audio, batch[:n], n, check.seconds(secs), device)
        path = str(getattr(enc, "audio_path", None) or precision)
        key = f"clap_{role}_{precision}"
        check.results[key] = {"windows_per_s": r, "path": path, "device": device,
                              "probe_cosines": dict(getattr(enc, "probe_report", {}) or {})}
        check.row(f"CLAP audio windows/s, {device}, --precision {precision}", f"{r:.1f}", f"path taken: {path}")
        del enc
    gpu_best = max(check.results["clap_gpu_auto"]["windows_per_s"], check.results["clap_gpu_fp32"]["windows_per_s"])
    check.results["clap_speedup"] = gpu_best / check.results["clap_cpu_fp32"]["windows_per_s"]
    check.row(f"CLAP {check.gpu} over {os.cpu_count()} CPUs (fp32)", f"{check.results['clap_speedup']:.1f}x", "")
    from indexing_loops import _embeds  # get_audio_features' vectors under transformers 4 and 5
    from transformers import ClapFeatureExtractor, ClapModel

    feats = ClapFeatureExtractor.from_pretrained(str(check.model_dir))(list(batch[:16]), sampling_rate=48_000,
                                                                         return_tensors="pt")
    model = ClapModel.from_pretrained(str(check.model_dir)).eval().to(check.gpu)
    with torch.inference_mode():
        inputs = {k: v.to(check.gpu) for k, v in feats.items()}
        ref = torch.nn.functional.normalize(_embeds(model.get_audio_features(**inputs)).float(), dim=-1)
        for dtype in (torch.float16, torch.bfloat16):
            low = copy.deepcopy(model).to(dtype)  # a fresh cast of the float32 weights each time
            cast = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
            out = torch.nn.functional.normalize(_embeds(low.get_audio_features(**cast)).float(), dim=-1)
            cos = (out * ref).sum(-1).cpu().numpy()
            name = str(dtype).split(".")[-1]
            check.results[f"clap_{name}_cosine"] = {"min": float(cos.min()), "mean": float(cos.mean())}
            check.row(f"CLAP {name} vs fp32 audio vectors, cosine min / mean", f"{cos.min():.5f} / {cos.mean():.5f}",
                      "fit for indexing if min >= 0.999")
            del low


def training(check: Check) -> None:
    """The DiffGAP optimiser loop (default network, D = 512, batch 256 per pair set): seconds per 10k pairs
    on the GPU (fp32 and bf16 autocast) and on this machine's CPUs (fp32)."""
    import time as _time

    from diffgap_search.gap.synthetic import GapSpec, GapWorld
    from diffgap_search.gap.training import TrainConfig, train_bridge

    n_pairs = max(2_000, int(20_000 * min(1.0, check.scale * 10)))
    pairs, groups = GapWorld(GapSpec(dim=512, latent_dim=8, features=64), seed=0).sample_clips(
        n_pairs // 5, 1, captions=5, caption_jitter=0.3).pairs()
    fp = {"audio": "0" * 64, "text": "0" * 64}
    for role, device, precision, epochs in (("gpu", check.gpu, "fp32", 3), ("gpu", check.gpu, "bf16", 3),
                                            ("cpu", "cpu", "fp32", 2)):
        if role == "gpu" and precision == "bf16" and device == "cpu":
            continue  # the dry run: emulated bf16 on a CPU without it takes minutes and tells nothing
        stamps: list[float] = []
        first_epoch_steps: list[int] = []

        def on_step(epoch: int, step: int, loss: float, pairs_per_s: float) -> None:
            if epoch == 0:
                first_epoch_steps.append(step)
            else:
                stamps.append(_time.perf_counter())

        cfg = TrainConfig(epochs=epochs, precision=precision, patience=0, eval_every=10**6, residual_grid=(),
                          tune_sampler=False, device=device, threads=0)
        _, report = train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints=fp, on_step=on_step)
        batch = 2 * min(cfg.batch_size, report.n_train["audio-text"])  # both directions of the pair set
        per_step = (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)
        s10k = per_step / batch * 10_000
        key = f"train_{role}_{precision}"
        check.results[key] = {"seconds_per_10k_pairs": s10k, "pairs_per_s": batch / per_step, "device": device,
                              "threads": report.selection.get("threads"), "steps_timed": len(stamps) - 1}
        check.row(f"DiffGAP training, D = 512, {device}, {precision}", f"{s10k:.2f} s per 10k pairs",
                  f"{batch / per_step:,.0f} pairs/s, {report.selection.get('threads')} CPU threads")


def train_cli(check: Check) -> None:
    """``dgsearch train --pairs-file`` on AudioCaps-size pairs (10k clips x 5 captions = 50k pairs, D = 512,
    synthetic gap) with ``--device`` the GPU: wall seconds, process start, validation and choices included."""
    from diffgap_search.gap.synthetic import GapSpec, GapWorld

    clips = max(400, int(10_000 * min(1.0, check.scale * 10)))
    pairs, groups = GapWorld(GapSpec(dim=512, latent_dim=8, features=64), seed=0).sample_clips(
        clips, 1, captions=5, caption_jitter=0.3).pairs()
    path = check.work / "pairs50k.npz"
    np.savez(path, audio=pairs["audio"], text=pairs["text"], group=groups)
    t0 = time.perf_counter()
    out = subprocess.run([_dgsearch(), "train", "--pairs-file", str(path), "--index", str(check.work / "train-ix"),
                          "--device", check.gpu, "--json"], check=True, capture_output=True, text=True,
                         timeout=200 if check.gpu != "cpu" else 600)
    wall = time.perf_counter() - t0
    doc = json.loads(out.stdout)
    check.results["train_cli"] = {"pairs": len(groups), "wall_s": wall, "output": doc}
    check.row(f"dgsearch train --pairs-file, {len(groups):,} pairs, D = 512, --device {check.gpu}", f"{wall:.0f} s",
              "process start, validation and every choice included")


def index_e2e(check: Check) -> None:
    """``dgsearch index`` (local engine) with ``--device`` the GPU on 100 clips of 30 s (300 windows),
    process start and model load included; decoding on this machine's CPUs."""
    from _common import make_clips

    n = max(6, int(100 * min(1.0, check.scale * 10)))
    make_clips(check.work / "clips", n, min_s=29.95, max_s=30.0)
    t0 = time.perf_counter()
    subprocess.run([_dgsearch(), "index", str(check.work / "clips"), "--index", str(check.work / "ix-local"),
                    "--model", str(check.model_dir), "--device", check.gpu, "--batch-size", "32", "--no-frames",
                    "--json"], check=True, capture_output=True, timeout=300)
    wall = time.perf_counter() - t0
    check.results["index_local"] = {"clips": n, "windows": 3 * n, "wall_s": wall, "windows_per_s": 3 * n / wall}
    check.row(f"dgsearch index --device {check.gpu} (local engine), {3 * n} windows", f"{3 * n / wall:.1f} windows/s",
              f"{wall:.1f} s with process start and model load; decode on {os.cpu_count()} CPUs")


def ray_engine(check: Check) -> None:
    """``dgsearch index --engine ray`` with one GPU actor on the clips of ``index_e2e``, against a Ray head
    started here on loopback (token auth), process start included."""
    import secrets
    import socket

    import ray  # noqa: F401 - absent: the part is skipped with its reason

    n = max(6, int(100 * min(1.0, check.scale * 10)))
    from _common import make_clips

    make_clips(check.work / "clips", n, min_s=29.95, max_s=30.0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                             f"--temp-dir={check.work / 'ray'}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(15)
        t0 = time.perf_counter()
        subprocess.run([_dgsearch(), "index", str(check.work / "clips"), "--index", str(check.work / "ix-ray"),
                        "--model", str(check.model_dir), "--engine", "ray", "--device", check.gpu, "--batch-size",
                        "32", "--no-frames", "--json"], check=True, timeout=240, capture_output=True,
                       env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"})
        wall = time.perf_counter() - t0
        check.results["index_ray"] = {"clips": n, "windows": 3 * n, "wall_s": wall, "windows_per_s": 3 * n / wall}
        check.row(f"dgsearch index --engine ray, 1 actor on {check.gpu}, {3 * n} windows",
                  f"{3 * n / wall:.1f} windows/s", "process start included; decode as Ray tasks on this machine")
    finally:
        head.terminate()
        try:
            head.wait(60)
        finally:
            try:
                os.killpg(head.pid, 9)
            except ProcessLookupError:
                pass


def clip_frames(check: Check) -> None:
    """CLIP ViT-B/32 (full size, random weights) frames/s on the GPU and on the CPUs, as video indexing runs it."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from diffgap_search.encoders.clip.encoder import load_clip_encoder

    folder = check.work / "clip-vit-b32"
    if not (folder / "model.safetensors").is_file():
        import torch

        torch.manual_seed(0)
        CLIPModel(CLIPConfig()).save_pretrained(str(folder), safe_serialization=True)
        CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}).save_pretrained(str(folder))
    frames = np.random.default_rng(3).integers(0, 256, size=(64, 360, 640, 3), dtype=np.uint8)
    for role, device, n, secs in (("gpu", check.gpu, 64, 15.0), ("cpu", "cpu", 16, 10.0)):
        enc = load_clip_encoder(str(folder), device=device, batch_size=64, progress=False)
        r = rate(lambda f: enc.embed_video([f]), frames[:n], n, check.seconds(secs), device)
        check.results[f"clip_{role}_frames_per_s"] = r
        check.row(f"CLIP ViT-B/32 frames/s, {device}", f"{r:.1f}", "640x360 frames, preprocessing included")


def cavp(check: Check) -> None:
    """CAVP (full-size, random weights) video and audio windows/s on the GPU (``bench_cavp.py --device``)."""
    for role, device, video, audio in (("gpu", check.gpu, 8, 32), ("cpu", "cpu", 1, 4)):
        if check.scale < 1:
            video, audio = 1, 2
        out = check.work / f"cavp-{device}"
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_cavp.py")), "--device", device,
                        "--video-windows", str(video), "--audio-windows", str(audio), "--batch-size", "8",
                        "--repeats", "2" if device != "cpu" else "1", "--out-dir", str(out)],
                       check=True, capture_output=True, timeout=240)
        doc = json.loads((out / "cavp.json").read_text())
        check.results[f"cavp_{role}"] = {k: doc[k] for k in ("device", "video", "audio")}
        check.row(f"CAVP video windows/s (40 frames), {device}", f"{doc['video']['windows_per_s']:.2f}",
                  f"network alone {doc['video']['network_windows_per_s']:.2f}")
        check.row(f"CAVP audio windows/s, {device}", f"{doc['audio']['windows_per_s']:.1f}",
                  f"network alone {doc['audio']['network_windows_per_s']:.1f}")


def aisfx(check: Check) -> None:
    """aisfx (the package's real weights) windows/s on the GPU in fp32 and bf16 (with bf16's min cosine to fp32 on
    the batch) and on the CPUs on the path ``auto`` takes there."""
    import aisfx as _  # noqa: F401 - absent: the part is skipped with its reason

    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder

    vectors = {}
    for role, device, n, secs, precision in (("gpu", check.gpu, 32, 8.0, "fp32"), ("gpu_bf16", check.gpu, 32, 8.0, "bf16"),
                                             ("cpu", "cpu", 8, 10.0, "auto")):
        enc = load_encoder(EncoderConfig(model="aisfx", device=device, batch_size=32, precision=precision), progress=False)
        batch = (0.1 * np.random.default_rng(1).standard_normal((n, int(enc.sample_rate * 10)))).astype(np.float32)
        r = rate(enc.embed_audio, batch, n, check.seconds(secs), device)
        vectors[role] = enc.embed_audio(batch[:8])
        check.results[f"aisfx_{role}_windows_per_s"] = r
        check.results[f"aisfx_{role}_precision"] = str(enc.precision)
        check.row(f"aisfx windows/s, {device} {enc.precision}", f"{r:.1f}", "real weights from the aisfx package")
    cosine = float(np.min(np.sum(vectors["gpu"] * vectors["gpu_bf16"], axis=1)))
    check.results["aisfx_gpu_bf16_min_cosine"] = cosine
    check.row("aisfx bf16 vs fp32 on the GPU, min cosine", f"{cosine:.5f}", "8 noise windows; must be >= 0.999")


def faiss_kmeans(check: Check) -> None:
    """FAISS k-means (1024 centroids, 10 iterations, 512-d) on the GPU where faiss has one, else on the CPUs."""
    import faiss

    n = max(20_000, int(200_000 * min(1.0, check.scale * 10)))
    x = np.random.default_rng(2).standard_normal((n, 512)).astype(np.float32)
    faiss.normalize_L2(x)
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    check.results["faiss_gpus"] = gpus
    for gpu in ([True] if gpus else []) + [False]:
        km = faiss.Kmeans(512, 1024, niter=10, seed=0, gpu=gpu, verbose=False)
        t0 = time.perf_counter()
        km.train(x)
        dt = time.perf_counter() - t0
        where = "GPU" if gpu else f"{os.cpu_count()} CPUs"
        check.results[f"faiss_kmeans_{'gpu' if gpu else 'cpu'}_s"] = dt
        check.row(f"FAISS k-means, {n:,} x 512, 1024 centroids, 10 iterations, {where}", f"{dt:.1f} s",
                  f"faiss {faiss.__version__}")
    if not gpus:
        check.row("FAISS k-means on the GPU", "not measured", "this faiss has no GPU support (faiss-gpu-cu12 needs "
                  "CUDA 12's cuBLAS beside it)")


def _dgsearch() -> str:
    """The ``dgsearch`` console script of this Python (its venv's bin, else the PATH's)."""
    beside = Path(sys.executable).with_name("dgsearch")
    return str(beside) if beside.is_file() else (shutil.which("dgsearch") or "dgsearch")
