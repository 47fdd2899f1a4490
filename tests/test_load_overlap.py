"""The local engine loads its models on a thread while real decode worker processes start on the first files
(``runner._Run.embed_all``): the index equals one built without the overlap; a model that cannot load stops
the workers and commits nothing; an encoder at another rate than the run's window has its files decoded again
at its own rate (the real aisfx weights, 44.1 kHz, against the 48 kHz default)."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader

from diffgap_search.config import EncoderConfig, IndexingConfig
from diffgap_search.errors import ModelUnavailableError
from diffgap_search.indexing import index_folder

WORKERS = IndexingConfig(decode_workers=2)
CLIP_FILES = ["Yabc123.mp3", "chirp.ogg", "dog_bark.wav", "rain.flac", "siren.wav"]  # clips_dir's media


def _workers_seen(timeout_s: float = 60.0) -> bool:
    """Whether decode worker processes (children of this process) appear within ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if multiprocessing.active_children():
            return True
        time.sleep(0.01)
    return False


def _vectors(index_dir: Path) -> dict[tuple[str, float], np.ndarray]:
    """(file name, window start) -> audio vector."""
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    out = {(Path(p).name, float(a)): np.frombuffer(v, "<f4") for p, a, v in conn.execute(
        "SELECT f.path, s.start_s, v.vector FROM vectors v JOIN segments s ON s.id = v.segment_id"
        " JOIN files f ON f.id = s.file_id WHERE v.space = 'audio'")}
    conn.close()
    return out


def test_decoding_starts_while_the_model_loads_and_gives_the_same_index(clips_dir: Path, tmp_path: Path,
                                                                        tiny_cfg: EncoderConfig,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import diffgap_search.indexing.decode as decode_mod

    seen: list[bool] = []
    counting = CountingLoader()

    def loader(cfg: EncoderConfig) -> Any:
        seen.append(_workers_seen())  # called on the load thread: the decode workers are already running
        return counting(cfg)

    report = index_folder(clips_dir, tmp_path / "overlap", load_encoder=loader, encoder_cfg=tiny_cfg,
                          indexing_cfg=WORKERS)
    assert seen == [True] and counting.loads == 1
    assert (report.embedded_files, report.windows_embedded) == (5, 7)
    assert multiprocessing.active_children() == []
    decoded: list[str] = []
    read_tags = decode_mod.read_tags
    monkeypatch.setattr(decode_mod, "read_tags", lambda path: decoded.append(Path(path).name) or read_tags(path))
    inline = index_folder(clips_dir, tmp_path / "inline", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                          indexing_cfg=INLINE)  # decoded by the prefetch thread of this process, while it loads
    assert inline.windows_embedded == 7
    assert sorted(decoded) == CLIP_FILES  # each decoded once: the loaded CLAP cuts the windows it was given
    ours, theirs = _vectors(tmp_path / "overlap"), _vectors(tmp_path / "inline")
    assert sorted(ours) == sorted(theirs) and len(ours) == 7
    for key, vec in ours.items():
        np.testing.assert_allclose(vec, theirs[key], atol=1e-5)


def test_a_model_that_cannot_load_stops_the_decode_workers_and_commits_nothing(clips_dir: Path,
                                                                              tmp_path: Path) -> None:
    def loader(cfg: EncoderConfig) -> Any:
        assert _workers_seen()
        raise ModelUnavailableError("cannot load model 'nowhere': no such folder")

    with pytest.raises(ModelUnavailableError, match=r"^cannot load model 'nowhere': no such folder$"):
        index_folder(clips_dir, tmp_path / "ix", load_encoder=loader, encoder_cfg=EncoderConfig(model="nowhere"),
                     indexing_cfg=WORKERS)
    assert multiprocessing.active_children() == []
    conn = sqlite3.connect(tmp_path / "ix" / "catalog.sqlite")
    assert conn.execute("SELECT count(*) FROM segments").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM vectors").fetchone() == (0,)
    conn.close()


def test_an_encoder_at_another_rate_gets_its_files_decoded_again_at_its_rate(tmp_path: Path) -> None:
    pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")
    from real_sounds import require_real_sounds

    from diffgap_search.encoders.loading import load_encoder

    library = tmp_path / "library"
    library.mkdir()
    for sound in require_real_sounds()[:6]:
        shutil.copy(sound.path, library / sound.path.name)
    cfg = EncoderConfig(model="aisfx", device="cpu")
    loads: list[bool] = []

    def loader(c: EncoderConfig) -> Any:
        loads.append(_workers_seen())  # the workers decode at the run's 48 kHz meanwhile
        return load_encoder(c, progress=False)

    report = index_folder(library, tmp_path / "overlap", load_encoder=loader, encoder_cfg=cfg, indexing_cfg=WORKERS)
    inline = index_folder(library, tmp_path / "inline", load_encoder=lambda c: load_encoder(c, progress=False),
                          encoder_cfg=cfg, indexing_cfg=INLINE)
    assert loads == [True] and report.embedded_files == inline.embedded_files == 6
    conn = sqlite3.connect(tmp_path / "overlap" / "catalog.sqlite")
    assert '"sample_rate": 44100' in conn.execute("SELECT value FROM meta WHERE key = 'window'").fetchone()[0]
    conn.close()
    ours, theirs = _vectors(tmp_path / "overlap"), _vectors(tmp_path / "inline")
    assert sorted(ours) == sorted(theirs)
    for key, vec in ours.items():
        np.testing.assert_allclose(vec, theirs[key], atol=1e-5)
