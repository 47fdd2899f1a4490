"""The DiffGAP bridge end to end: train from an index's pairs, bridged spaces, fused queries, video -> audio,
eval, and refusals."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from cli_runner import dg

from fixtures_index import CountingLoader
from fixtures_media import chirp, noise, tone, write_audio
from fixtures_video import make_testsrc, make_tiny_clip_vision

from diffgap_search.bridge.index_bridge import load_index_bridge
from diffgap_search.config import SearchConfig, SearchMode
from diffgap_search.errors import BridgeMismatchError
from diffgap_search.gap.fusion import fused_unit_scores
from diffgap_search.gap.protocol import Task, build_side
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.selection import term_matrices
from diffgap_search.bridge.pairs import index_pairs
from diffgap_search.search import Query, Searcher
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder_config

N_AUDIO, N_VIDEO = 32, 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 captioned clips (tones, chirps, noise) and 20 one-second videos with different soundtracks."""
    root = tmp_path_factory.mktemp("bridge") / "clips"
    root.mkdir()
    sr = 8_000
    for i in range(N_AUDIO):
        kind = ("tone", "chirp", "noise")[i % 3]
        f = 150.0 + 90.0 * i
        samples = tone(f, 1.0, sr) if kind == "tone" else chirp(1.0, sr, f0=f, f1=f * 3) if kind == "chirp" else noise(1.0, sr, seed=i)
        write_audio(root / f"{kind}{i:02d}.wav", samples, sr)
        (root / f"{kind}{i:02d}.txt").write_text(f"a {kind} around {int(f)} hertz\n")
    for i in range(N_VIDEO):
        make_testsrc(root / f"video{i:02d}.mkv", seconds=1.0, size="32x32", rate=4)
    return root


@pytest.fixture(scope="module")
def clip32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip_vision(tmp_path_factory.mktemp("clip32") / "model", seed=0, projection_dim=32)


@pytest.fixture(scope="module")
def trained(corpus: Path, clip32: Path, tiny_clap_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    ix = tmp_path_factory.mktemp("bridge-index") / "ix"
    r = dg("index", corpus, "--index", ix, "--model", tiny_clap_dir, "--video-model", clip32, "--workers", "0")
    assert r.exit_code == 0, r.output
    refused = dg("query", "--video", corpus / "video00.mkv", "--index", ix)
    assert refused.exit_code == 10 and " ".join(refused.stderr.split()).endswith(
        "needs a DiffGAP bridge between the video and audio encoders, and this index has none: index some videos, then"
        " run `dgsearch train --pairs video`; or search by the video's own sound: --audio FILE")
    by_sound = dg("query", "--audio", corpus / "video00.mkv", "--index", ix, "--json")  # what the message offers
    assert by_sound.exit_code == 0 and json.loads(by_sound.stdout)["hits"][0]["path"] == str(corpus / "video00.mkv")
    t = dg("train", "--index", ix, "--epochs", "3", "--batch-size", "16", "--json")
    assert t.exit_code == 0, t.output
    return ix, json.loads(t.stdout)


def test_train_uses_every_pair_once_and_holds_some_out(trained: tuple[Path, dict]) -> None:
    ix, out = trained
    assert {k: out["train_pairs"][k] + out["held_out_pairs"].get(k, 0) for k in out["train_pairs"]} == {
        "audio-text": N_AUDIO, "audio-video": N_VIDEO}
    assert out["held_out_pairs"]["audio-text"] >= 1
    assert out["derived_vectors"] == {"audio_as_text": N_AUDIO + N_VIDEO, "audio_as_video": N_AUDIO + N_VIDEO}
    info = json.loads(dg("info", "--index", ix, "--json").stdout)["summary"]
    assert f"audio_as_text ({N_AUDIO + N_VIDEO} vectors" in info["vector spaces"]
    assert f"audio_as_video ({N_AUDIO + N_VIDEO} vectors" in info["vector spaces"]


def test_fused_text_query_equals_its_exact_formula(trained: tuple[Path, dict]) -> None:
    ix, _ = trained
    with Searcher(ix, CountingLoader()) as s:
        result = s.search(Query(text="a tone around 600 hertz"), SearchConfig(mode=SearchMode.SEMANTIC, top_k=5, group_by_file=False))
        bridge = s.bridge
        q = s.embed_query(Query(text="a tone around 600 hertz"))
        ids, audio = next(s.catalog.read_vectors("audio"))
        _, as_text = next(s.catalog.read_vectors("audio_as_text"))
    w = bridge.fusion_for("text", "audio")
    qb = bridge.apply(q, "text", "audio")
    score = (w.w_raw * (audio @ q[0]) + w.w_query_bridged * (audio @ qb[0]) + w.w_item_bridged * (as_text @ q[0]))
    score /= w.w_raw + w.w_query_bridged + w.w_item_bridged
    order = np.argsort(-score, kind="stable")[:5]
    assert [h.segment_id for h in result.hits] == ids[order].tolist()
    assert [h.score for h in result.hits] == pytest.approx(score[order].tolist(), abs=1e-5)
    assert result.timings_ms["bridge"] > 0


def test_the_fused_score_tuned_in_training_is_the_one_search_serves(trained: tuple[Path, dict]) -> None:
    """``fusion.fused_unit_scores`` (what training tunes the weights on) ranks files exactly as the searcher."""
    ix, _ = trained
    with Searcher(ix, CountingLoader()) as s:
        result = s.search(Query(text="a chirp around 420 hertz"), SearchConfig(mode=SearchMode.SEMANTIC, top_k=8))
        bridge = s.bridge
        q = s.embed_query(Query(text="a chirp around 420 hertz"))
        ids, audio = next(s.catalog.read_vectors("audio"))
        files = s.catalog.hit_rows({int(i): 0.0 for i in ids})
    file_of = np.array([files[int(i)].file_id for i in ids])
    task = Task(build_side("text", q, np.array([-1])), build_side("audio", audio, file_of))
    raw, qb, ib = term_matrices(task, bridge)
    scores = fused_unit_scores(task, raw, qb, ib, bridge.fusion_for("text", "audio"))[0]
    order = np.argsort(-scores, kind="stable")[:8]
    assert [h.file_id for h in result.hits] == task.items.labels[order].tolist()
    assert [h.score for h in result.hits] == pytest.approx(scores[order].tolist(), abs=1e-5)


def test_no_bridge_is_plain_cosine(trained: tuple[Path, dict]) -> None:
    ix, _ = trained
    plain = json.loads(dg("query", "a chirp", "--index", ix, "--no-bridge", "--segments", "--json", "-k", "3").stdout)
    with Searcher(ix, CountingLoader(), use_bridge=False) as s:
        q = s.embed_query(Query(text="a chirp"))
        ids, audio = next(s.catalog.read_vectors("audio"))
    order = np.argsort(-(audio @ q[0]), kind="stable")[:3]
    assert [h["segment_id"] for h in plain["hits"]] == ids[order].tolist()


def test_video_query_goes_through_the_bridge(trained: tuple[Path, dict], corpus: Path) -> None:
    ix, _ = trained
    r = dg("query", "--video", corpus / "video03.mkv", "--index", ix, "--json", "-k", "5")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["query_kind"] == "video" and len(doc["hits"]) == 5
    scores = [h["score"] for h in doc["hits"]]
    assert scores == sorted(scores, reverse=True)
    again = json.loads(dg("query", "--video", corpus / "video03.mkv", "--index", ix, "--json", "-k", "5").stdout)
    assert again["hits"] == doc["hits"]
    no = dg("query", "--video", corpus / "video03.mkv", "--index", ix, "--no-bridge")
    assert no.exit_code == 10 and "(--no-bridge)" in no.stderr
    # --timeline: a one-window video is one list, the plain query's, under the video's seconds
    timeline = json.loads(dg("query", "--video", corpus / "video03.mkv", "--index", ix, "--json", "-k", "5",
                             "--timeline").stdout)
    assert [(w["start_s"], w["end_s"]) for w in timeline["windows"]] == [(0.0, 1.0)]
    assert [h["segment_id"] for h in timeline["windows"][0]["hits"]] == [h["segment_id"] for h in doc["hits"]]
    assert [h["score"] for h in timeline["windows"][0]["hits"]] == pytest.approx(scores, abs=1e-6)
    refused = dg("query", "--video", corpus / "video03.mkv", "--index", ix, "--no-bridge", "--timeline")
    assert refused.exit_code == 10 and "(--no-bridge)" in refused.stderr  # the plain query's checks, the same


def test_eval_prints_the_methods_side_by_side(trained: tuple[Path, dict]) -> None:
    ix, _ = trained
    r = dg("eval", "--index", ix, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res["results"]) == {"text->audio", "audio->text"} | (
        {"video->audio", "audio->video"} if "audio-video" in res["n_test"] else set())
    assert res["pairs_source"] == "index" and res["n_test"]["audio-text"]["audio"] >= 2
    for methods in res["results"].values():
        assert {"raw", "mean_shift", "ridge", "procrustes", "diffgap", "diffgap_fusion"} <= set(methods)
        assert all(0 <= m["R@1"] <= 100 for m in methods.values())
    table = dg("eval", "--index", ix)
    assert "diffgap_fusion" in table.stdout and "median rank" in table.stdout


def test_new_files_get_bridged_vectors_and_other_encoders_are_refused(trained: tuple[Path, dict], corpus: Path,
                                                                      tmp_path: Path) -> None:
    ix, _ = trained
    extra = tmp_path / "extra"
    extra.mkdir()
    write_audio(extra / "late.wav", tone(777.0, 1.0, 8_000), 8_000)
    r = dg("index", extra, "--index", ix, "--workers", "0")
    assert r.exit_code == 0, r.output
    with Catalog.open(ix) as cat:
        assert cat.count_vectors("audio_as_text") == cat.count_vectors("audio") == N_AUDIO + N_VIDEO + 1
        conn = sqlite3.connect(ix / "catalog.sqlite")
        meta = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'video_encoder'").fetchone()[0])
        conn.execute("UPDATE meta SET value = ? WHERE key = 'video_encoder'",
                     (json.dumps({**meta, "fingerprint": "0" * 64}),))
        conn.commit()
        conn.close()
        with pytest.raises(BridgeMismatchError, match=r"was trained on video embeddings from encoder [0-9a-f]{12},"
                           r" but this index uses encoder 000000000000: train a new bridge with `dgsearch train`"):
            load_index_bridge(ix, cat)
    q = dg("query", "a tone", "--index", ix)
    assert q.exit_code == 6 and q.stderr.startswith("dgsearch: error: ")
    conn = sqlite3.connect(ix / "catalog.sqlite")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'video_encoder'", (json.dumps(meta),))
    conn.commit()
    conn.close()
    assert dg("query", "a tone", "--index", ix).exit_code == 0


def test_index_text_pairs_are_one_per_window_and_caption(tiny_clap_dir: Path, tmp_path: Path) -> None:
    """Search bridges single windows, so an index's text pairs are (window, caption), grouped by file."""
    clips = tmp_path / "clips"
    clips.mkdir()
    write_audio(clips / "long.wav", tone(440.0, 21.0, 8_000), 8_000)  # three 10 s windows (the last padded)
    (clips / "long.txt").write_text("a long tone\na steady beep\n")
    ix = tmp_path / "ix"
    assert dg("index", clips, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    with Catalog.open(ix) as cat:
        encoder = CountingLoader()(stored_encoder_config(cat))
        pairs = index_pairs(cat, encoder, ["text"])
        ids, windows = next(cat.read_vectors("audio"))
        sha = cat.files()[0].sha256
    captions = encoder.embed_text(["a long tone", "a steady beep"])
    assert len(ids) == 3 and len(pairs) == 6 and set(pairs.groups.tolist()) == {sha}
    assert np.allclose(pairs.arrays["audio"], np.repeat(windows, 2, axis=0), atol=1e-6)
    assert np.allclose(pairs.arrays["text"], np.tile(captions, (3, 1)), atol=1e-6)


def test_media_indexed_after_a_pairs_file_bridge_asks_for_a_new_bridge(tiny_clap_dir: Path, tmp_path: Path) -> None:
    """A bridge trained into an empty index knows no encoder: once media records one, it is refused (exit 6,
    saying what to do) until trained again, which then records the index's encoders."""
    pairs, _ = GapWorld(GapSpec(dim=32, latent_dim=3, features=16), seed=0).sample_clips(
        20, 1, captions=2, caption_jitter=0.3).pairs()
    np.savez(tmp_path / "pairs.npz", **pairs)
    ix = tmp_path / "ix"
    assert dg("train", "--pairs-file", tmp_path / "pairs.npz", "--index", ix, "--epochs", "1").exit_code == 0
    clips = tmp_path / "clips"
    clips.mkdir()
    write_audio(clips / "a.wav", tone(440.0, 1.0, 8_000), 8_000)
    refused = dg("index", clips, "--index", ix, "--model", tiny_clap_dir, "--workers", "0")
    assert refused.exit_code == 6 and "trained on pairs from unrecorded encoders" in refused.stderr
    assert dg("train", "--pairs-file", tmp_path / "pairs.npz", "--index", ix, "--epochs", "1").exit_code == 0
    assert dg("index", clips, "--index", ix, "--workers", "0").exit_code == 0
    found = dg("query", "a tone", "--index", ix, "--json")
    assert found.exit_code == 0 and len(json.loads(found.stdout)["hits"]) == 1


def test_pinpoint_scores_a_span_as_search_scores_the_window_it_equals(trained: tuple[Path, dict]) -> None:
    """``--pinpoint`` embeds and scores spans as the index and the search do: a span that is a hit's whole window
    (read back from its file, a video's soundtrack through ffmpeg) scores the hit's fused score (raw + bridged
    query + the items' bridged ``audio_as_text``), for every window of the index."""
    from diffgap_search.search.pinpoint import SpanScorer, load_region

    ix, _ = trained
    with Searcher(ix, CountingLoader()) as s:
        cfg = SearchConfig(mode=SearchMode.SEMANTIC, top_k=N_AUDIO + N_VIDEO, group_by_file=False, all_copies=True)
        result = s.search(Query(text="a tone around 600 hertz"), cfg)
        terms = s.terms_for("text", s.embed_query(Query(text="a tone around 600 hertz")))
        assert {t.space for t in terms} == {"audio", "audio_as_text"}  # fused, with the items' bridged vectors
        rate = s.window().sample_rate
        regions = [(h.start_s, load_region(Path(h.fs_path), rate, h.start_s, h.end_s)) for h in result.hits]
        scorer = SpanScorer(s.opened, s.encoder, terms, regions, rate)
        scores = scorer([[(h.start_s, h.end_s)] for h in result.hits])
    assert len(result.hits) == N_AUDIO + N_VIDEO and {h.kind for h in result.hits} == {"audio", "video"}
    np.testing.assert_allclose([float(x[0]) for x in scores], [h.score for h in result.hits], atol=2e-5)
