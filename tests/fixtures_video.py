"""Pytest fixtures (fixtures_video): tiny generated videos and a tiny random-weight CLIP image model.

Every video is made by ffmpeg from lavfi sources or from raw frames piped in, so it is deterministic
(``-bitexact``, single-threaded x264) and a few kilobytes. ``grey_video`` codes each frame's index in
its pixel values (grey level ``GREY_STEP * index``), so a test can read back exactly which source frame
was sampled.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
GREY_STEP = 8  # grey level of frame i is GREY_STEP * i (lossless x264 keeps it within +-1)
GREY_FPS = 10
GREY_FRAMES = 25
VFR_STARTS = [round(0.1 * i, 3) for i in range(10)] + [round(1.0 + 0.5 * i, 3) for i in range(5)]
TINY_CLIP_IMAGE = 32
_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-pix_fmt", "yuv420p"]


def ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    """Run ffmpeg quietly, overwriting outputs; raise with its stderr on failure."""
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    if stdin is not None:
        cmd.remove("-nostdin")
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")


def make_testsrc(path: Path, *, seconds: float = 3.0, size: str = "64x48", rate: int = 10,
                 audio: bool = True, extra: Sequence[str] = ()) -> Path:  # fmt: skip
    """A ``testsrc`` pattern video, with a 440 Hz sine soundtrack at 16 kHz when ``audio``."""
    inputs = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
    suffix = path.suffix.lower()
    vcodec = {".webm": ["-c:v", "libvpx", "-threads", "1"], ".avi": ["-c:v", "mpeg4"]}.get(suffix, _X264)
    acodec = {".webm": ["-c:a", "libvorbis"], ".mkv": ["-c:a", "pcm_s16le"], ".avi": ["-c:a", "pcm_s16le"],
              ".mov": ["-c:a", "pcm_s16le"]}.get(suffix, ["-c:a", "aac"])  # fmt: skip
    ffmpeg(*inputs, "-t", str(seconds), *vcodec, *(acodec if audio else []), *extra, "-bitexact", str(path))
    return path


def make_grey_video(path: Path, *, n: int = GREY_FRAMES, rate: int = GREY_FPS, size: tuple[int, int] = (32, 24),
                    starts: Sequence[float] | None = None) -> Path:  # fmt: skip
    """Frame i is a solid grey ``GREY_STEP * i`` (lossless x264). ``starts`` gives VFR presentation times."""
    w, h = size
    raw = b"".join(bytes([GREY_STEP * i]) * (w * h * 3) for i in range(n))
    timing: list[str] = []
    if starts is not None:
        expr = "+".join(f"eq(N\\,{i})*{t}" for i, t in enumerate(starts))
        timing = ["-vf", f"setpts=({expr})/TB", "-fps_mode", "vfr", "-video_track_timescale", "1000"]
    ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(rate), "-i", "-",
           *timing, "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-qp", "0",
           "-pix_fmt", "yuv444p", "-bitexact", str(path), stdin=raw)  # fmt: skip
    return path


def grey_index(frames: np.ndarray) -> np.ndarray:
    """``(F, H, W, 3) uint8`` grey-coded frames -> ``(F,)`` source frame indices."""
    return np.rint(frames.reshape(frames.shape[0], -1).mean(axis=1) / GREY_STEP).astype(np.int64)


def make_tiny_clip_vision(path: Path, seed: int = 0, projection_dim: int = 16) -> Path:
    """A tiny random-weight ``CLIPModel`` (the hub repo's class and layout) with its preprocessor config.

    Writes ``config.json``, ``model.safetensors`` and ``preprocessor_config.json`` (CLIPImageProcessor
    format, written by hand since CLIPImageProcessor needs Pillow) into ``path``; image size 32;
    embeddings of ``projection_dim`` (32 matches the tiny CLAP, so one DiffGAP bridge can span both).
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": 99, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 24, "max_position_embeddings": 16, "projection_dim": projection_dim,
                     "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1},  # fmt: skip
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "intermediate_size": 48, "image_size": TINY_CLIP_IMAGE, "patch_size": 8,
                       "projection_dim": projection_dim},  # fmt: skip
        projection_dim=projection_dim,
    )
    model = CLIPModel(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    processor: dict[str, Any] = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": TINY_CLIP_IMAGE},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": TINY_CLIP_IMAGE, "width": TINY_CLIP_IMAGE},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_convert_rgb": True,
    }
    (path / "preprocessor_config.json").write_text(json.dumps(processor, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def video_with_sound(video_dir: Path) -> Path:
    """3 s, 64x48, 10 fps testsrc with a PCM 16 kHz sine soundtrack (.mkv, exact audio length)."""
    return make_testsrc(video_dir / "sound.mkv")


@pytest.fixture(scope="session")
def video_aac(video_dir: Path) -> Path:
    """3 s, 64x48, 10 fps testsrc with an AAC soundtrack (.mp4: encoder delay/padding apply)."""
    return make_testsrc(video_dir / "sound.mp4")


@pytest.fixture(scope="session")
def video_silent(video_dir: Path) -> Path:
    """3 s, 64x48, 10 fps testsrc, no audio stream (.mp4)."""
    return make_testsrc(video_dir / "silent.mp4", audio=False)


@pytest.fixture(scope="session")
def grey_video(video_dir: Path) -> Path:
    """25 frames at 10 fps (2.5 s), 32x24; frame i is grey ``GREY_STEP * i``."""
    return make_grey_video(video_dir / "grey.mp4")


@pytest.fixture(scope="session")
def vfr_video(video_dir: Path) -> Path:
    """Grey-coded frames at variable rate: frames 0-9 every 0.1 s, then 10-14 every 0.5 s (3.5 s)."""
    return make_grey_video(video_dir / "vfr.mp4", n=len(VFR_STARTS), starts=VFR_STARTS)


@pytest.fixture(scope="session")
def odd_size_video(video_dir: Path) -> Path:
    """175x97 (odd sides, yuv444p), 2 s at 10 fps."""
    return make_testsrc(video_dir / "odd.mp4", seconds=2, size="175x97", audio=False,
                        extra=["-pix_fmt", "yuv444p"])  # fmt: skip


@pytest.fixture(scope="session")
def marker_video(video_dir: Path) -> Path:
    """64x48 black, white 16x8 block in the top-left corner: shows orientation. 1 s at 10 fps."""
    src = "color=black:size=64x48:rate=10,drawbox=x=0:y=0:w=16:h=8:color=white:t=fill"
    ffmpeg("-f", "lavfi", "-i", src, "-t", "1", *_X264, "-bitexact", str(video_dir / "marker.mp4"))
    return video_dir / "marker.mp4"


@pytest.fixture(scope="session")
def rotated_video(video_dir: Path, marker_video: Path) -> Path:
    """``marker_video`` with 90-degree rotation metadata (display matrix; stored 64x48, shown 48x64)."""
    out = video_dir / "rotated.mp4"
    ffmpeg("-i", str(marker_video), "-c", "copy", "-metadata:s:v", "rotate=90", str(out))
    return out


@pytest.fixture(scope="session")
def audio_only_mp4(video_dir: Path) -> Path:
    out = video_dir / "audio_only.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "1", "-c:a", "aac", str(out))
    return out


@pytest.fixture(scope="session")
def truncated_mp4(video_dir: Path) -> Path:
    """The first half of an mp4 whose index (moov) is at the end: the index is gone."""
    src = make_testsrc(video_dir / "whole.mp4", seconds=4, audio=False)
    out = video_dir / "truncated.mp4"
    data = src.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def _faststart_source(video_dir: Path) -> Path:
    src = video_dir / "whole_fs.mp4"
    if not src.exists():
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10,noise=alls=60:allf=t", "-t", "10", *_X264,
               "-movflags", "+faststart", "-bitexact", str(src))  # fmt: skip
    return src


@pytest.fixture(scope="session")
def truncated_faststart_mp4(video_dir: Path) -> Path:
    """A faststart mp4 (index first, 10 s declared) cut cleanly after its 50th video packet."""
    src = _faststart_source(video_dir)
    cmd = [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-select_streams", "v:0",
           "-show_entries", "packet=pos,size", "-of", "csv=p=0", str(src)]  # fmt: skip
    rows = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    pos, size = (int(x) for x in rows[49].split(",")[:2])
    out = video_dir / "truncated_fs.mp4"
    out.write_bytes(src.read_bytes()[: pos + size])
    return out


@pytest.fixture(scope="session")
def damaged_faststart_mp4(video_dir: Path) -> Path:
    """A faststart mp4 cut at half its bytes, in the middle of a packet."""
    data = _faststart_source(video_dir).read_bytes()
    out = video_dir / "damaged_fs.mp4"
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.fixture(scope="session")
def garbage_mp4(video_dir: Path) -> Path:
    rng = random.Random(0)
    out = video_dir / "garbage.mp4"
    out.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    return out


@pytest.fixture(scope="session")
def empty_mp4(video_dir: Path) -> Path:
    out = video_dir / "empty.mp4"
    out.write_bytes(b"")
    return out


@pytest.fixture(scope="session")
def long_video(video_dir: Path) -> Path:
    """10 minutes of 16x16 at 1 fps (600 frames), for the bounded-memory test."""
    out = video_dir / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=16x16:rate=1", "-t", "600", *_X264, "-bitexact", str(out))
    return out


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIPModel (seed 0) in the hub layout."""
    return make_tiny_clip_vision(tmp_path_factory.mktemp("tiny_clip"), seed=0)


@pytest.fixture(scope="session")
def tiny_video_encoder(tiny_clip_dir: Path) -> Any:
    """``ClipEncoder`` over ``tiny_clip_dir`` on CPU, batch size 8."""
    from diffgap_search.encoders.clip.encoder import load_clip_encoder

    return load_clip_encoder(str(tiny_clip_dir), device="cpu", batch_size=8)
