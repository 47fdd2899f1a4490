"""Pytest fixtures (fixtures_serve): an index of real CC0 recordings and a video, and a running server.

``serve_corpus``: six of Debian's CC0 sonic-pi samples (``tests/real_sounds.py``) copied into a folder,
four with a caption sidecar, plus a 3 s testsrc video with an AAC soundtrack (``fixtures_video``), indexed
once per session with the tiny CLAP (soundtracks only: no video model). ``served``: one
``dgsearch serve`` on it for the session (``--max-upload-mb 2``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures_video import make_testsrc
from real_sounds import SAMPLES_DIR, MISSING_REASON
from serve_server import Served, start_serve

SERVE_SOUNDS = {  # stem -> caption (None: no sidecar)
    "perc_bell": "a bell ringing",
    "ambi_choir": "a choir singing",
    "loop_amen": "a drum loop",
    "bd_haus": "a kick drum",
    "guit_harmonics": None,
    "elec_ping": None,
}
UPLOAD_LIMIT_MB = "2"


@dataclass(frozen=True)
class ServeCorpus:
    clips: Path
    index: Path
    model: Path
    video: Path


def build_serve_corpus(root: Path, model: Path) -> ServeCorpus:
    """Copy the recordings, write captions and the video, index them (inline, tiny CLAP, no frames)."""
    from diffgap_search.config import EncoderConfig, IndexingConfig, VideoConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing import index_folder

    missing = [s for s in SERVE_SOUNDS if not (SAMPLES_DIR / f"{s}.flac").is_file()]
    if missing:
        pytest.skip(MISSING_REASON)
    clips = root / "clips"
    clips.mkdir(parents=True)
    for stem, caption in SERVE_SOUNDS.items():
        shutil.copyfile(SAMPLES_DIR / f"{stem}.flac", clips / f"{stem}.flac")
        if caption:
            (clips / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
    write_long_take(clips / "long take.wav")
    (clips / "long take.txt").write_text("a drum break, a bell, a choir\n", encoding="utf-8")
    video = make_testsrc(clips / "testsrc.mp4", seconds=3.0)
    index = root / "index"
    index_folder(clips, index, load_encoder=lambda cfg: load_encoder(cfg, progress=False),
                 encoder_cfg=EncoderConfig(model=str(model), device="cpu", batch_size=8),
                 video_cfg=VideoConfig(frames=False), indexing_cfg=IndexingConfig(decode_workers=0))
    return ServeCorpus(clips, index, model, video)


def write_long_take(path: Path) -> Path:
    """25 s of real recordings at 44.1 kHz mono, so windows differ: 0–10 s the amen break looped, 10–20 s
    the bell then silence, 20–25 s the choir looped. Indexed as windows 0–10, 10–20 and 15–25."""
    import numpy as np
    import soundfile as sf

    def mono(stem: str) -> np.ndarray:
        data, rate = sf.read(SAMPLES_DIR / f"{stem}.flac", dtype="float32", always_2d=True)
        assert rate == 44_100
        return data.mean(axis=1)

    def fill(x: np.ndarray, seconds: float, loop: bool) -> np.ndarray:
        n = int(seconds * 44_100)
        return np.resize(x, n) if loop else np.concatenate([x, np.zeros(max(0, n - len(x)), np.float32)])[:n]

    audio = np.concatenate([fill(mono("loop_amen"), 10, True), fill(mono("perc_bell"), 10, False),
                            fill(mono("ambi_choir"), 5, True)])
    sf.write(path, audio, 44_100, subtype="PCM_16")
    return path


def corpus_file_id(corpus: ServeCorpus, name: str) -> int:
    """The catalog's id of the corpus file ``name`` (as the API's ``file_id``)."""
    import os

    from diffgap_search.store.catalog import Catalog

    with Catalog.open(corpus.index) as catalog:
        row = catalog.file_by_key(os.fsencode(corpus.clips / name))
    assert row is not None, name
    return row.id


@pytest.fixture(scope="session")
def serve_corpus(tmp_path_factory: pytest.TempPathFactory, tiny_clap_dir: Path) -> ServeCorpus:
    return build_serve_corpus(tmp_path_factory.mktemp("serve"), tiny_clap_dir)


@pytest.fixture(scope="session")
def served(serve_corpus: ServeCorpus) -> Iterator[Served]:
    server = start_serve(serve_corpus.index, "--max-upload-mb", UPLOAD_LIMIT_MB)
    yield server
    server.stop()
