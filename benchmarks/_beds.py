"""Backgrounds for benchmarks that hide one-shots in recordings: seeded white noise (every result before
2026-12-07) or real recordings looped to length at a level (``--beds DIR|wesnoth --bed-db DB``): Wesnoth's eight
ambient loops (birds, campfire, morning, night, a ship, war drums; Debian's ``wesnoth-1.16-data``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BED_DB = -60.0  # the white-noise bed's level, dBFS
WESNOTH_AMBIENT = "usr/share/games/wesnoth/1.16/data/core/sounds/ambient"


def load_beds(folder: Path, rate: int) -> list[np.ndarray]:
    """Every recording under ``folder`` (by name), mono at ``rate``, scaled to unit RMS."""
    from diffgap_search.media.audio import load_audio

    out = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".ogg", ".flac", ".wav"}):
        audio = load_audio(path, rate).astype(np.float64)
        rms = float(np.sqrt(np.mean(audio**2))) if len(audio) else 0.0
        if rms > 1e-6:
            out.append((audio / rms).astype(np.float32))
    return out


def beds_folder(asked: Path) -> Path:
    """``asked``, or for ``wesnoth`` the ambient loops of Debian's wesnoth-1.16-data (fetched once into
    ``$XDG_CACHE_HOME/dgsearch-real-gap``, as ``real_gap/run.py`` keeps its packages)."""
    if str(asked) != "wesnoth":
        return asked
    import os

    from real_gap.packages import fetch

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgsearch-real-gap"
    return fetch("wesnoth-1.16-data", cache) / WESNOTH_AMBIENT


def bed_name(asked: Path) -> str:
    """How the results name the beds asked for."""
    return "Wesnoth's ambient loops" if str(asked) == "wesnoth" else f"{asked}/"


def make_bed(n: int, rng: np.random.Generator, beds: list[np.ndarray], db: float,
             avoid: int = -1) -> tuple[np.ndarray, int]:
    """``((n,) float32, which)``: white noise at ``BED_DB`` dBFS without ``beds`` (which = -1); else one of them
    (never ``avoid``, the reel's, when there are two or more), looped from a seeded offset, at ``db`` dBFS RMS."""
    if not beds:
        return (10 ** (BED_DB / 20) * rng.standard_normal(n)).astype(np.float32), -1
    pick = int(rng.integers(0, len(beds)))
    if pick == avoid and len(beds) > 1:
        pick = (pick + 1) % len(beds)
    src = beds[pick]
    start = int(rng.integers(0, len(src)))
    looped = np.resize(np.roll(src, -start), n)
    return (10 ** (db / 20) * looped).astype(np.float32), pick
