"""aisfx's preprocessing versions on real indexes: a new index embeds a short file from its own samples (version
2); an index made at version 1 (short files repeat-padded to the window) keeps answering and growing at version
1, queries included, so one space never holds vectors of two pipelines. Real aisfx weights, real files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fixtures_media import write_noise, write_tone
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig, WindowConfig
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing.models import ModelChoice
from diffgap_search.indexing.run import update_index
from diffgap_search.media.audio import load_audio
from diffgap_search.media.windows import window_audio
from diffgap_search.search import Query, Searcher
from diffgap_search.store.catalog import Catalog

pytestmark = pytest.mark.slow  # indexes with the real aisfx network (about 10 s on 2 shared cores)
pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")

RATE = 44_100


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("library")
    write_tone(folder / "beep.wav", freq=660.0, seconds=0.7)
    write_noise(folder / "hiss.wav", seconds=1.9, seed=3)
    write_tone(folder / "hum.wav", freq=110.0, seconds=12.0)  # two windows, neither short
    return folder


def expected(paths: list[Path], version: int) -> np.ndarray:
    """Every window of ``paths`` embedded at ``version`` by the encoder directly, ``(n, 512) float32``."""
    encoder = load_encoder(EncoderConfig(model="aisfx", device="cpu", preprocessing={"audio": version}))
    rows = []
    for path in paths:
        w = window_audio(load_audio(path, RATE), WindowConfig(sample_rate=RATE))
        rows.append(encoder.embed_audio(w.samples, w.ends - w.starts) if version >= 2 else encoder.embed_audio(w.samples))
    return np.concatenate(rows)


def stored(index: Path) -> tuple[np.ndarray, dict]:
    with Catalog.open(index) as catalog:
        vectors = np.concatenate([v for _, v in catalog.read_vectors("audio")])
        return vectors, catalog.get_meta("encoder")


def matched(vectors: np.ndarray, reference: np.ndarray) -> bool:
    """Every stored vector is one of ``reference``'s rows (cosine 1 to float32 rounding)."""
    return bool((np.max(vectors @ reference.T, axis=1) > 1 - 1e-5).all())


def test_a_new_index_embeds_short_files_from_their_own_samples(library: Path, tmp_path: Path) -> None:
    index = tmp_path / "new"
    r = CliRunner().invoke(app, ["index", str(library), "--index", str(index), "--model", "aisfx", "--workers", "0"])
    assert r.exit_code == 0, r.output
    vectors, record = stored(index)
    paths = sorted(library.glob("*.wav"))
    assert record["preprocessing"] == {"audio": 2} and len(vectors) == 4
    assert matched(vectors, expected(paths, 2)) and not matched(vectors, expected(paths, 1))
    with Searcher(index, load_encoder) as searcher:  # a query embeds as the index did: each file finds itself at 1
        for path in paths[:2]:
            top = searcher.search(Query(audio=str(path))).hits[0]
            assert (Path(top.path).name, round(top.score, 5)) == (path.name, 1.0)


def test_an_index_made_at_version_1_stays_at_version_1(library: Path, tmp_path: Path) -> None:
    index = tmp_path / "old"
    folder = tmp_path / "lib"
    shutil.copytree(library, folder)
    (folder / "hiss.wav").unlink()

    def version_1(cfg: EncoderConfig):  # type: ignore[no-untyped-def]  # what dgsearch before version 2 made
        return load_encoder(replace(cfg, preprocessing={"audio": 1}))

    update_index(folder, index, ModelChoice(model="aisfx"), load_encoder=version_1)
    assert stored(index)[1]["preprocessing"] == {"audio": 1}
    shutil.copy(library / "hiss.wav", folder / "hiss.wav")  # a file added later, indexed by today's dgsearch
    r = CliRunner().invoke(app, ["index", str(folder), "--index", str(index), "--workers", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["embedded_files"] == 1
    vectors, record = stored(index)
    paths = sorted(folder.glob("*.wav"))
    assert record["preprocessing"] == {"audio": 1} and len(vectors) == 4
    assert matched(vectors, expected(paths, 1)) and not matched(vectors, expected(paths, 2))
    with Searcher(index, load_encoder) as searcher:
        top = searcher.search(Query(audio=str(folder / "hiss.wav"))).hits[0]
        assert (Path(top.path).name, round(top.score, 5)) == ("hiss.wav", 1.0)
