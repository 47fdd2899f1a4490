"""Planted near-duplicates of real recordings: each original copied re-encoded (mp3, ogg), trimmed (its first
0.5 s dropped) and 6 dB quieter, by ffmpeg, beside distinct recordings; for ``dgsearch dupes`` tests and the
threshold measurement."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from real_sounds import RealSound

VARIANTS: dict[str, list[str]] = {  # suffix of the copy's name -> ffmpeg output options
    "mp3.mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "ogg.ogg": ["-c:a", "libvorbis", "-q:a", "3"],
    "trim.flac": ["-af", "atrim=start=0.5,asetpts=PTS-STARTPTS"],
    "quiet.wav": ["-af", "volume=-6dB"],
}


def _ffmpeg(src: Path, dst: Path, options: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), *options,
                    str(dst)], check=True, timeout=120)


def plant(folder: Path, originals: list[RealSound], distinct: list[RealSound]) -> list[set[str]]:
    """Write every original, its four copies and the distinct recordings into ``folder``; returns the
    expected groups as sets of file names (one per original: itself and its copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    groups = []
    for sound in originals:
        shutil.copy(sound.path, folder / sound.path.name)
        names = {sound.path.name}
        for suffix, options in VARIANTS.items():
            name = f"{sound.stem}_{suffix}"
            _ffmpeg(sound.path, folder / name, options)
            names.add(name)
        groups.append(names)
    for sound in distinct:
        shutil.copy(sound.path, folder / sound.path.name)
    return groups
