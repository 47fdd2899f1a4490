"""benchmarks/paper/reproduce.py end to end on a tiny AudioCaps folder in the published CSV format, with the
tiny CLAP model: index, pair by the CSVs, train on the official train split, evaluate on the test split."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_media import chirp, noise, tone, write_audio

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"train": 16, "val": 2, "test": 6}


def _audiocaps(root: Path) -> tuple[Path, Path]:
    """CSVs ``audiocap_id,youtube_id,start_time,caption`` (5 captions per clip) and the clips, named three ways."""
    csv_dir, media = root / "csv", root / "audio"
    csv_dir.mkdir()
    media.mkdir()
    sr, n = 8_000, 0
    for split, clips in SPLITS.items():
        with (csv_dir / f"{split}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
            for c in range(clips):
                kind = ("tone", "chirp", "noise")[n % 3]
                f = 200.0 + 70.0 * n
                yid = f"{split[:2]}-{c:02d}_x{n}"
                for k in range(5):
                    w.writerow([1000 + 10 * n + k, yid, 30, f"a {kind} {k} near {int(f)} hertz"])
                x = tone(f, 1.0, sr) if kind == "tone" else chirp(1.0, sr, f0=f, f1=2 * f) if kind == "chirp" else noise(1.0, sr, seed=n)
                name = f"Y{yid}.wav" if n % 4 == 1 else f"{1000 + 10 * n}.wav" if n % 4 == 2 else f"{yid}.wav"
                write_audio(media / name, x, sr)
                n += 1
    return csv_dir, media


@pytest.mark.slow
def test_audiocaps_official_splits_through_the_engine(tiny_clap_dir: Path, tmp_path: Path) -> None:
    csv_dir, media = _audiocaps(tmp_path)
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "paper" / "reproduce.py"), "audiocaps", "--csv-dir", str(csv_dir),
         "--media", str(media), "--index", str(tmp_path / "ix"), "--model", str(tiny_clap_dir), "--device", "cpu",
         "--epochs", "1", "--batch-size", "32", "--out-dir", str(out)],
        capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "paper_audiocaps.json").read_text())
    assert doc["clips"] == SPLITS
    assert doc["pairs"] == {s: 5 * c for s, c in SPLITS.items()}
    assert doc["train"]["train_pairs"] == {"audio-text": 5 * SPLITS["train"]}
    ev = doc["evaluation"]
    assert ev["n_test"] == {"audio-text": {"audio": 6, "text": 30}}
    assert set(ev["results"]) == {"text->audio", "audio->text"}
    assert {"raw", "ridge", "procrustes", "diffgap", "diffgap_fusion"} <= set(ev["results"]["text->audio"])
    assert ev["trained_on"]["groups"] + ev["trained_on"]["validation_groups"] == SPLITS["train"]
    md = (out / "paper_audiocaps.md").read_text()
    assert "| text->audio | 35-36 |" in md and "LAION-CLAP, Wu et al., ICASSP 2023" in md


@pytest.mark.slow
def test_vggsound_official_splits_through_the_engine(tiny_clap_dir: Path, tmp_path: Path) -> None:
    """VGGSound's CSV (no header: youtube_id,start_seconds,label,split) and videos named YOUTUBE_ID_START.mp4."""
    from fixtures_video import make_testsrc, make_tiny_clip_vision

    clip32 = make_tiny_clip_vision(tmp_path / "clip32", seed=0, projection_dim=32)
    media = tmp_path / "video"
    media.mkdir()
    rows = []
    for n in range(26):
        split = "train" if n < 20 else "test"
        yid, start = f"v{n:02d}-Ab_c", 10 * n
        rows.append([yid, start, f"label {n % 4}", split])
        make_testsrc(media / f"{yid}_{start:06d}.mp4", seconds=1.0, size="32x32", rate=4)
    with (tmp_path / "vggsound.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "paper" / "reproduce.py"), "vggsound", "--csv",
         str(tmp_path / "vggsound.csv"), "--media", str(media), "--index", str(tmp_path / "ix"), "--model",
         str(tiny_clap_dir), "--video-model", str(clip32), "--device", "cpu", "--epochs", "1", "--batch-size", "16",
         "--out-dir", str(out)],
        capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "paper_vggsound.json").read_text())
    assert doc["clips"] == {"train": 20, "test": 6}
    ev = doc["evaluation"]
    assert ev["n_test"] == {"audio-video": {"audio": 6, "video": 6}}
    assert set(ev["results"]) == {"video->audio", "audio->video"}
    assert "| video->audio | 9.5 |" in (out / "paper_vggsound.md").read_text()
