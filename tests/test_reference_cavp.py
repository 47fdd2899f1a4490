"""CAVP's inputs equal Diff-Foley's preprocessing, clip by clip, on real recordings and a real video file.

Diff-Foley's code ships in no package, so its preprocessing is written here independently from the cited lines
of github.com/luosiallen/Diff-Foley (never from ``encoders/cavp``), with the libraries it pins:

- frames (``inference/demo_util.py``, ``Extract_CAVP_Features``): the frame decoded at its native size as RGB
  (OpenCV there, the ffmpeg CLI's ``rgb24`` here: both libswscale at native size), ``transforms.Resize((224,
  224))`` on the PIL image (Pillow's ``BILINEAR`` resize) and ``ToTensor()`` (/255);
- sound (``data_preprocess/wav2spec.py``: ``get_spectrogram`` and ``TRANSFORMS``, librosa 0.8.0 as
  ``requirements.txt`` pins, whose ``load(sr=16000)`` is soundfile, the channel mean and
  ``resampy.resample(filter="kaiser_best")`` fixed to ``ceil(n * ratio)`` samples): ``y = zeros(160000)``
  (float64), the first 10 s, ``y[:length - 1]``, ``|stft(n_fft=1024, hop=250)|`` through
  ``filters.mel(16000, 1024, fmin=125, fmax=7600, n_mels=128)``, ``max(., 1e-5)``, ``20 log10 - 20``,
  ``(+100)/100``, clipped to [0, 1]; a 4 s clip starting at frame f is the slice of 256 columns from
  ``int(f / 4 * 16000 / 250)`` (``training/open_cavp_main/src/training/data.py``).

Our side is the index's path: the file decoded by ``media`` (sound at 48 kHz, soxr; frames through
``iter_frame_windows(fit="squash")``), then ``encoders/cavp/features``. A tiny CAVP of the real classes with
random weights and data-set BatchNorm statistics embeds both; every clip must score >= 0.999 against the
reference, and different clips must score clearly lower (so the check could fail).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_video import FFMPEG, ffmpeg
from real_sounds import SAMPLES_DIR, require_real_sounds

from diffgap_search.config import WindowConfig
from diffgap_search.encoders.cavp.features import CLIP_FRAMES, clip_offsets, spec_clips, video_clips
from diffgap_search.media.audio import load_audio
from diffgap_search.media.video import iter_frame_windows

SAME = 0.999
SR, LENGTH, HOP, FPS = 16_000, 160_000, 250, 4
SOUND_STEMS = ("loop_tabla", "loop_amen", "loop_industrial", "ambi_choir", "vinyl_hiss")


def _reference_log_mel(path: Path) -> np.ndarray:
    """``wav2spec.get_spectrogram(path, 160000)``'s mel spectrogram, librosa 0.8.0's load -> ``(128, 640)``."""
    import librosa
    import resampy
    import soundfile as sf

    wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wav = wav.mean(axis=1)  # librosa.to_mono
    n = int(np.ceil(wav.shape[-1] * SR / sr))
    wav = librosa.util.fix_length(resampy.resample(wav, sr, SR, filter="kaiser_best"), size=n)
    y = np.zeros(LENGTH)
    if wav.shape[0] < LENGTH:
        y[: len(wav)] = wav
    else:
        y = wav[:LENGTH]
    y = y[: LENGTH - 1]
    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=HOP, center=True, pad_mode="reflect")) ** 1
    mel = np.dot(librosa.filters.mel(sr=SR, n_fft=1024, fmin=125, fmax=7600, n_mels=128), spec)
    return np.clip((20 * np.log10(np.maximum(mel, 1e-5)) - 20 + 100) / 100, 0, 1.0)


def _reference_spec_clips(mel: np.ndarray, offsets: list[int]) -> np.ndarray:
    """``data.py``'s cut: ``spec_start = int(start_frame / fps * sr / hop_size)``, 4 s = 256 columns."""
    truncate = int(4 * SR / HOP)
    return np.stack([mel[:, int(f / FPS * SR / HOP) : int(f / FPS * SR / HOP) + truncate] for f in offsets])


def _calibrated(seed: int, forward: str, inputs: torch.Tensor) -> torch.nn.Module:
    """A small CAVP of the real classes (random weights, ``seed``) whose BatchNorm statistics are ``inputs``'
    (what training leaves: statistics of the data) and whose heads have no bias, so that different real clips
    give clearly different vectors; eval mode."""
    from diffgap_search.encoders.cavp.model import CavpConfig, CavpModel

    torch.manual_seed(seed)
    model = CavpModel(CavpConfig(base_channels=4, stage_blocks=(1, 1, 1, 1), cnn_widths=(16, 16, 32, 32, 64, 64),
                                 embed_dim=64))
    with torch.no_grad():
        for head in (model.video_project_head, model.spec_encoder.fc1, model.spec_encoder.final_project):
            head.bias.zero_()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        getattr(model, forward)(inputs)
    return model.eval()


def _unit(x: torch.Tensor) -> np.ndarray:
    v = x.detach().to(torch.float32).numpy()
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _ten_second_file(stem: str, folder: Path) -> Path:
    """A real recording looped to 10 s, as 16-bit PCM at its own rate and channels (44.1 kHz)."""
    import soundfile as sf

    data, sr = sf.read(str(SAMPLES_DIR / f"{stem}.flac"), dtype="float32", always_2d=True)
    reps = int(np.ceil(10 * sr / len(data)))
    path = folder / f"{stem}.wav"
    sf.write(str(path), np.tile(data, (reps, 1))[: 10 * sr], sr, subtype="PCM_16")
    return path


@pytest.mark.slow  # ~13 s on 2 busy cores
def test_cavp_audio_clips_equal_diff_foley_preprocessing(tmp_path: Path) -> None:
    require_real_sounds()
    offsets = clip_offsets(40)  # a 10 s window: clips from frames 0, 12, 24
    ours, ref = [], []
    for stem in SOUND_STEMS:
        path = _ten_second_file(stem, tmp_path)
        window = load_audio(path, 48_000)[:480_000]  # as indexed: decoded at 48 kHz
        assert window.shape == (480_000,)
        ours.append(spec_clips(window, 48_000, 10.0))
        ref.append(_reference_spec_clips(_reference_log_mel(path), offsets).astype(np.float32))
    our_clips, ref_clips = torch.from_numpy(np.concatenate(ours)), torch.from_numpy(np.concatenate(ref))
    assert our_clips.shape == ref_clips.shape == (3 * len(SOUND_STEMS), 128, 256)
    mel_gap = float((our_clips - ref_clips).abs().max())
    model = _calibrated(3, "encode_spec", ref_clips)
    with torch.inference_mode():
        ours_v, ref_v = _unit(model.encode_spec(our_clips)), _unit(model.encode_spec(ref_clips))
    per_clip = np.sum(ours_v * ref_v, axis=1)
    recording = np.repeat(np.arange(len(SOUND_STEMS)), 3)
    others = (ref_v @ ref_v.T)[recording[:, None] != recording[None, :]]  # clips of different recordings
    print(f"cavp audio: clip cosines min {per_clip.min():.6f}, max |log-mel diff| {mel_gap:.4f} (x100 dB), "
          f"different recordings max {others.max():.4f}")
    assert others.max() < 0.99, "the model cannot tell these recordings apart: the check could not fail"
    assert per_clip.min() >= SAME, np.round(per_clip, 5).tolist()


def _reference_frames(video: Path, width: int, height: int) -> np.ndarray:
    """Every frame of ``video`` decoded at its native size as RGB: ``(n, height, width, 3) uint8``."""
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-vsync", "passthrough", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


def _reference_clip(frames: np.ndarray) -> torch.Tensor:
    """``Resize((224, 224))`` then ``ToTensor()`` on each PIL frame: ``(16, 3, 224, 224) float32``."""
    from PIL import Image

    resized = [np.asarray(Image.fromarray(f).resize((224, 224), Image.BILINEAR)) for f in frames]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.slow  # ~15 s on 2 busy cores
def test_cavp_video_clips_equal_diff_foley_preprocessing(tmp_path: Path) -> None:
    video = tmp_path / "scene.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i",
           "mandelbrot=size=640x360:rate=25", "-filter_complex", "[0][1]blend=all_mode=average", "-t", "10",
           "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-pix_fmt", "yuv420p", "-bitexact",
           str(video))
    (window,) = list(iter_frame_windows(video, WindowConfig(window_s=10.0), fps=4.0, fit="squash"))
    assert window.frames.shape == (40, 224, 224, 3)
    native = _reference_frames(video, 640, 360)
    picked = native[window.frame_indices]
    offsets = clip_offsets(len(picked))
    ref_clips = torch.stack([_reference_clip(picked[o : o + CLIP_FRAMES]) for o in offsets])
    our_clips = video_clips(window.frames)
    pixel_gap = float((our_clips - ref_clips).abs().mean()) * 255
    model = _calibrated(4, "encode_video", ref_clips)
    with torch.inference_mode():
        ours, ref = _unit(model.encode_video(our_clips)), _unit(model.encode_video(ref_clips))
        old = _unit(model.encode_video(video_clips(_old_pipeline_frames(video, window.frame_indices))))
    per_clip = np.sum(ours * ref, axis=1)
    between = ref @ ref.T
    print(f"cavp video: clip cosines {np.round(per_clip, 6).tolist()}, mean |pixel diff| {pixel_gap:.3f}, "
          f"different clips max {between[~np.eye(len(between), dtype=bool)].max():.4f}, "
          f"old pipeline {np.round(np.sum(old * ref, axis=1), 6).tolist()}")
    assert between[~np.eye(len(between), dtype=bool)].max() < 0.99
    assert pixel_gap < 1.0
    assert per_clip.min() >= SAME, np.round(per_clip, 5).tolist()
    # The decoder-side scaling dgsearch used before misses the mark on the same clips: the check can fail.
    assert np.sum(old * ref, axis=1).min() < SAME


def _old_pipeline_frames(video: Path, indices: np.ndarray) -> np.ndarray:
    """What dgsearch did before issue 25: decord scaling straight to 224 x 224 while decoding (libswscale's
    bilinear on the YUV planes)."""
    import decord

    reader = decord.VideoReader(str(video), ctx=decord.cpu(0), width=224, height=224)
    return reader.get_batch(indices.tolist()).asnumpy()


@pytest.mark.parametrize("rate", [48_000, 32_000])
def test_integer_decimation_equals_resampy_kaiser_best(rate: int) -> None:
    """``to_16k``'s FIR for integer ratios gives resampy's ``kaiser_best`` output (what librosa 0.8.0 calls)."""
    import resampy

    from diffgap_search.encoders.cavp.features import to_16k

    rng = np.random.default_rng(rate)
    x = (rng.standard_normal(rate * 3) * 0.2).astype(np.float32)
    x[: rate // 2] *= 1e-4  # a quiet start: relative error matters where the signal is small
    ours, ref = to_16k(x, rate), resampy.resample(x, rate, SR, filter="kaiser_best")
    assert ours.shape == ref.shape == (48_000,)
    assert float(np.abs(ours - ref).max()) <= 1e-7
