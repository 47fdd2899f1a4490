"""Recordings with one-shots at known seconds: CC0 samples of Debian's sonic-pi-samples over seeded quiet noise,
as 44.1 kHz FLAC files, indexed in 10 s windows with the real aisfx weights (for ``--pinpoint`` and
``--timeline``, whose right answers are those seconds)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from real_sounds import SAMPLES_DIR, require_real_sounds

from cli_runner import dg
from diffgap_search.media.audio import load_audio

RATE = 44_100
# recording -> (one-shot, its onset in seconds), each a CC0 sample of sonic-pi-samples
REELS = {"reel_a": (("drum_tom_mid_hard", 4.3), ("misc_crow", 13.1)),
         "reel_b": (("tabla_ghe4", 6.2), ("elec_bong", 15.4))}


def middle(stem: str, onset: float) -> float:
    """The seconds of the middle of ``stem`` placed at ``onset``."""
    return onset + sf.info(str(SAMPLES_DIR / f"{stem}.flac")).duration / 2


def write_reel(path: Path, events: Sequence[tuple[str, float]], seconds: float, seed: int,
               background: np.ndarray | None = None) -> Path:
    """``seconds`` of seeded -60 dBFS noise (or ``background``, mono at :data:`RATE`, looped to length) holding
    ``(one-shot, onset)`` events, as FLAC at ``path``."""
    if background is None:
        bed = (1e-3 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)
    else:
        bed = np.resize(background, int(seconds * RATE)).astype(np.float32)
    for stem, onset in events:
        shot = load_audio(SAMPLES_DIR / f"{stem}.flac", RATE)
        at = int(onset * RATE)
        bed[at : at + len(shot)] += shot
    sf.write(str(path), np.clip(bed, -1, 1), RATE)
    return path


def indexed_reels(root: Path) -> tuple[Path, Path]:
    """``REELS`` as 20 s recordings under ``root/lib`` and their aisfx index ``root/ix``."""
    require_real_sounds()
    lib = root / "lib"
    lib.mkdir()
    for seed, (name, events) in enumerate(REELS.items()):
        write_reel(lib / f"{name}.flac", events, 20.0, seed)
    ix = root / "ix"
    r = dg("index", lib, "--index", ix, "--model", "aisfx", "--workers", "0")
    assert r.exit_code == 0, r.output
    return lib, ix
