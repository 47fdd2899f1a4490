"""`dgsearch export`: bridged embeddings (.npy + JSON sidecar) for texts and for every stored window, with the
tiny CLAP model and a bridge trained on the index's own captioned clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import dg

from fixtures_media import chirp, noise, tone, write_audio
from fixtures_video import make_testsrc

from diffgap_search.bridge.index_bridge import load_index_bridge
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder, stored_encoder_config

N_CLIPS = 24
TEXTS = ["a tone around 300 hertz", "white noise", "a rising chirp"]


@pytest.fixture(scope="module")
def trained(tiny_clap_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of 24 captioned clips (one of them 12 s long: two windows) with a text bridge."""
    root = tmp_path_factory.mktemp("export") / "clips"
    root.mkdir()
    sr = 8_000
    for i in range(N_CLIPS):
        kind = ("tone", "chirp", "noise")[i % 3]
        f = 150.0 + 90.0 * i
        seconds = 12.0 if i == 0 else 1.0
        x = tone(f, seconds, sr) if kind == "tone" else chirp(seconds, sr, f0=f, f1=f * 3) if kind == "chirp" else noise(seconds, sr, seed=i)
        write_audio(root / f"{kind}{i:02d}.wav", x, sr)
        (root / f"{kind}{i:02d}.txt").write_text(f"a {kind} around {int(f)} hertz\n")
    ix = root.parent / "ix"
    assert dg("index", root, "--index", ix, "--model", tiny_clap_dir, "--workers", "0", "--no-frames").exit_code == 0
    t = dg("train", "--index", ix, "--pairs", "text", "--epochs", "2", "--batch-size", "16")
    assert t.exit_code == 0, t.output
    return ix


def test_texts_are_bridged_to_the_audio_side_with_a_sidecar(trained: Path, tmp_path: Path) -> None:
    lines = tmp_path / "queries.txt"
    lines.write_text("white noise\n\n  a rising chirp  \n")
    r = dg("export", "--index", trained, "--text", TEXTS[0], "--text-file", lines, "--out", tmp_path / "q", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["files"] == [str(tmp_path / "q.npy"), str(tmp_path / "q.json")]
    assert (out["count"], out["direction"]) == (3, "text->audio")
    vectors = np.load(tmp_path / "q.npy")
    side = json.loads((tmp_path / "q.json").read_text())
    with Catalog.open(trained) as catalog:
        bridge = load_index_bridge(trained, catalog)
        encoder = load_encoder(stored_encoder_config(catalog, device="cpu"))
        model = stored_encoder(catalog)
    expected = bridge.apply(np.concatenate([encoder.embed_text([t]) for t in TEXTS]), "text", "audio")
    assert vectors.dtype == np.float32 and vectors.shape == (3, bridge.dim)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert side["rows"] == [{"id": i, "text": t} for i, t in enumerate(TEXTS)]
    assert side["direction"] == "text->audio" and side["count"] == 3 and side["dim"] == bridge.dim
    assert side["bridge"]["fingerprint"] == bridge.fingerprint == out["bridge"]
    assert side["encoders"]["encoder"]["fingerprint"] == model["fingerprint"]
    assert side["bridge"]["sampler"]["steps"] == bridge.sample.steps
    # deterministic: the same export twice gives the same bytes
    again = dg("export", "--index", trained, "--text", TEXTS[0], "--text-file", lines, "--out", tmp_path / "again")
    assert again.exit_code == 0 and "exported 3 text->audio embeddings" in again.stdout
    assert (tmp_path / "again.npy").read_bytes() == (tmp_path / "q.npy").read_bytes()
    named = dg("export", "--index", trained, "--text", TEXTS[0], "--text-file", lines, "--out", tmp_path / "e.npy", "--json")
    assert json.loads(named.stdout)["files"] == [str(tmp_path / "e.npy"), str(tmp_path / "e.json")]  # as numpy.save
    assert sorted(p.name for p in tmp_path.glob("e.*")) == ["e.json", "e.npy"]
    assert (tmp_path / "e.npy").read_bytes() == (tmp_path / "q.npy").read_bytes()
    dotted = dg("export", "--index", trained, "--text", TEXTS[0], "--out", tmp_path / "run.v2", "--json")
    assert json.loads(dotted.stdout)["files"] == [str(tmp_path / "run.v2.npy"), str(tmp_path / "run.v2.json")]


def test_every_window_is_exported_with_its_segment_file_and_seconds(trained: Path, tmp_path: Path) -> None:
    r = dg("export", "--index", trained, "--windows", "text", "--out", tmp_path / "w" / "windows", "--json")
    assert r.exit_code == 0, r.output
    vectors = np.load(tmp_path / "w" / "windows.npy")
    side = json.loads((tmp_path / "w" / "windows.json").read_text())
    assert side["direction"] == "audio->text" and side["count"] == N_CLIPS + 1 == len(vectors)
    with Catalog.open(trained) as catalog:
        bridge = load_index_bridge(trained, catalog)
        ids, audio = next(catalog.read_vectors("audio"))
        hits = catalog.hit_rows(ids.tolist())
    assert [row["segment_id"] for row in side["rows"]] == ids.tolist()
    assert [(row["path"], row["start_s"], row["end_s"]) for row in side["rows"]] == [
        (hits[i].path, hits[i].start_s, hits[i].end_s) for i in ids.tolist()]
    long = [row for row in side["rows"] if row["path"].endswith("tone00.wav")]
    assert [(row["start_s"], row["end_s"]) for row in long] == [(0.0, 10.0), (2.0, 12.0)]
    np.testing.assert_allclose(vectors, bridge.apply(audio, "audio", "text", role="items"), atol=1e-6)


def test_refusals(trained: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    both = dg("export", "--index", trained, "--text", "x", "--windows", "text", "--out", tmp_path / "x")
    assert both.exit_code == 2
    assert both.stderr == "dgsearch: error: export one kind of rows: --text/--text-file, --video, or --windows text|video\n"
    nothing = dg("export", "--index", trained, "--out", tmp_path / "x")
    assert nothing.exit_code == 2
    video = tmp_path / "v.mkv"
    make_testsrc(video, seconds=1.0, size="32x32", rate=4)
    no_video_bridge = dg("export", "--index", trained, "--video", video, "--out", tmp_path / "x")
    assert no_video_bridge.exit_code == 10, no_video_bridge.output
    no_windows = dg("export", "--index", trained, "--windows", "video", "--out", tmp_path / "x")
    assert no_windows.exit_code == 10
    assert "exporting audio -> video embeddings needs a DiffGAP bridge for video" in no_windows.stderr
    missing = dg("export", "--index", trained, "--text-file", tmp_path / "absent.txt", "--out", tmp_path / "x")
    assert missing.exit_code == 3
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        parquet = dg("export", "--index", trained, "--text", "x", "--format", "parquet", "--out", tmp_path / "x")
        assert parquet.exit_code == 2 and "--format parquet needs pyarrow" in parquet.stderr
    else:
        parquet = dg("export", "--index", trained, "--text", "x", "--format", "parquet", "--out", tmp_path / "p")
        assert parquet.exit_code == 0 and (tmp_path / "p.parquet").is_file()
    assert not list(tmp_path.glob("x.*"))
