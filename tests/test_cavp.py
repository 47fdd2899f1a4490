"""CAVP (Diff-Foley's video-audio space): the module tree loads a checkpoint saved as the trainer saves it,
strictly; refusals; preprocessing aligned to our windows to the frame; loading from the loopback hub; and
``dgsearch index --video-model cavp`` + ``dgsearch query --video`` end to end, raw and fused."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import dg

from diffgap_search.cli.app import app
from fixtures_cavp import (
    TINY_CAVP_DIM,
    publish_diff_foley,
    save_cavp_checkpoint,
    tiny_cavp_model,
)
from fixtures_video import make_grey_video, make_testsrc
from hub_server import HubServer
from real_sounds import require_real_sounds

from diffgap_search.config import WindowConfig
from diffgap_search.encoders.cavp import features as feats
from diffgap_search.encoders.base import AudioVisualEncoder
from diffgap_search.encoders.cavp.model import CavpConfig, CavpModel
from diffgap_search.encoders.cavp.encoder import (
    CAVP_FILE,
    CAVP_REPO,
    load_cavp_encoder,
    read_cavp_checkpoint,
)
from diffgap_search.errors import ModelUnavailableError
from diffgap_search.media.video import iter_frame_windows, sample_times
from diffgap_search.store.catalog import Catalog

N_VIDEOS = 24


# -- the module tree and the checkpoint ----------------------------------------------------------------------
def test_full_size_tree_has_the_reference_names_and_shapes() -> None:
    """The names a checkpoint of cavp_modules.py's classes holds (mmcv ConvModule: .conv/.bn; Bottleneck3d
    inflated 3x1x1 in stages 3-4; Cnn14), at the published model's shapes."""
    with torch.device("meta"):
        state = CavpModel().state_dict()
    assert len(state) == 402
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["video_encoder.conv1.conv.weight"] == (64, 3, 1, 7, 7)
    assert shapes["video_encoder.layer1.0.conv1.conv.weight"] == (64, 64, 1, 1, 1)
    assert shapes["video_encoder.layer3.0.conv1.conv.weight"] == (256, 512, 3, 1, 1)
    assert shapes["video_encoder.layer4.2.conv2.conv.weight"] == (512, 512, 1, 3, 3)
    assert shapes["video_encoder.layer2.0.downsample.conv.weight"] == (512, 256, 1, 1, 1)
    assert "video_encoder.layer1.0.downsample.bn.num_batches_tracked" in shapes
    assert "video_encoder.layer1.1.downsample.conv.weight" not in shapes
    assert shapes["video_project_head.weight"] == (512, 2048)
    assert shapes["spec_encoder.bn.running_var"] == (128,)
    assert shapes["spec_encoder.conv_block6.conv2.weight"] == (2048, 2048, 3, 3)
    assert shapes["spec_encoder.fc1.weight"] == (2048, 2048)
    assert shapes["spec_encoder.final_project.weight"] == (512, 2048)
    assert shapes["logit_scale"] == ()
    assert CavpConfig.from_state_dict(state) == CavpConfig()


def test_checkpoint_as_trained_loads_strictly_and_embeds_as_the_model(tmp_path: Path) -> None:
    path = save_cavp_checkpoint(tmp_path / "cavp_epoch66.ckpt", seed=3)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "name", "state_dict", "optimizer"}
    assert all(k.startswith("module.") for k in raw["state_dict"])
    model = tiny_cavp_model(seed=3)
    state = read_cavp_checkpoint(path)
    assert set(state) == set(model.state_dict())
    encoder = load_cavp_encoder(str(path), "cpu", batch_size=2)
    assert (encoder.dim, encoder.fps, encoder.sample_rate) == (TINY_CAVP_DIM, 4.0, 16_000)
    assert isinstance(encoder, AudioVisualEncoder)
    assert encoder.provenance == {"source": "checkpoint", "repo_id": None, "revision": None, "commit": None,
                                  "family": "cavp"}
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(16, 224, 224, 3), dtype=np.uint8)
    with torch.inference_mode():
        want = model.encode_video(torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255).unsqueeze(0))
    got = encoder.embed_video([frames])
    np.testing.assert_allclose(got[0], (want / want.norm()).numpy()[0], atol=1e-5)
    assert got.dtype == np.float32 and got.shape == (1, TINY_CAVP_DIM)
    # The safetensors copy in our cache, named after the checkpoint's sha256, serves the next load.
    copy = Path(os.environ["DGSEARCH_CACHE_DIR"]) / "safetensors" / encoder.fingerprint / "model.safetensors"
    assert copy.is_file()
    path.write_bytes(b"")  # another file (another sha256) never finds that copy: read, and refused
    with pytest.raises(ModelUnavailableError, match="cannot read"):
        load_cavp_encoder(str(path), "cpu")


def test_bare_state_dict_without_prefix_loads_too(tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    torch.save(tiny_cavp_model(seed=1).state_dict(), path)
    enc = load_cavp_encoder(str(path), "cpu")
    assert enc.dim == TINY_CAVP_DIM


def test_checkpoint_needing_other_objects_is_refused(tmp_path: Path) -> None:
    path = save_cavp_checkpoint(tmp_path / "args.ckpt", extra={"args": argparse.Namespace(lr=8e-4)})
    with pytest.raises(ModelUnavailableError) as err:
        load_cavp_encoder(str(path), "cpu")
    assert "CAVP checkpoint" in str(err.value) and "argparse.Namespace" in str(err.value)
    assert "weights_only" in str(err.value) and "only checkpoints of tensors and plain data are read" in str(err.value)


def test_wrong_tensors_are_refused_with_what_does_not_fit(tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in tiny_cavp_model(seed=0).state_dict().items()}
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(ModelUnavailableError, match="is not a CAVP checkpoint: it has no tensor"):
        load_cavp_encoder(str(other), "cpu")
    del state["module.spec_encoder.fc1.bias"]
    state["module.extra.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.ckpt"
    torch.save({"state_dict": state}, broken)
    with pytest.raises(ModelUnavailableError, match="does not match CAVP's architecture.*spec_encoder.fc1.bias"):
        load_cavp_encoder(str(broken), "cpu")
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_cavp_encoder(str(tmp_path / "missing.ckpt"), "cpu")


# -- windows -> clips, to the frame ------------------------------------------------------------------------
@pytest.mark.parametrize(("frames", "offsets"), [(1, [0]), (12, [0]), (16, [0]), (17, [0, 1]), (20, [0, 4]),
                                                 (32, [0, 16]), (40, [0, 12, 24]), (41, [0, 12, 25])])
def test_clip_offsets(frames: int, offsets: list[int]) -> None:
    assert feats.clip_offsets(frames) == offsets


def test_clips_see_the_same_seconds_in_frames_and_spectrogram() -> None:
    """A 10 s window (9.9-19.9 s of a clip): 40 frames at 4 fps; clip j = frames o_j..o_j+15 = spectrogram
    frames 16 o_j..16 o_j+255 (hop 250 at 16 kHz): both start o_j / 4 s into the window."""
    start, end = 9.9, 19.9
    times = sample_times(start, end, feats.FPS)
    assert len(times) == feats.frame_count(end - start) == 40
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(40, 224, 224, 3), dtype=np.uint8)
    clips = feats.video_clips(frames)
    assert clips.shape == (3, 16, 3, 224, 224)
    for j, o in enumerate([0, 12, 24]):
        np.testing.assert_array_equal(clips[j].mul(255).round().byte().permute(0, 2, 3, 1).numpy(), frames[o:o + 16])
        assert times[o] - start == pytest.approx(o / 4 + 0.125) and times[o + 15] - start == pytest.approx(o / 4 + 3.875)
        assert 16 * o * feats.HOP / feats.SAMPLE_RATE == pytest.approx(o / 4)
    # The spectrogram: a ramp of loudness tells which slice each clip took.
    sr = 48_000
    t = np.arange(10 * sr) / sr
    window = (np.sin(2 * np.pi * 1000 * t) * (t / 10)).astype(np.float32)
    mel = feats.log_mel(feats.to_16k(window, sr))
    assert mel.shape == (128, 640)  # 10 s less one sample at hop 250, as the training data's 640 frames
    specs = feats.spec_clips(window, sr, end - start)
    for j, o in enumerate([0, 12, 24]):
        np.testing.assert_array_equal(specs[j], mel[:, 16 * o : 16 * o + 256])


def test_short_window_repeats_frames_and_sound_alike() -> None:
    frames = np.stack([np.full((224, 224, 3), i, np.uint8) for i in range(12)])  # a 3 s window: 12 frames
    clip = feats.video_clips(frames)[0].mul(255).round()[:, 0, 0, 0].tolist()
    assert clip == [float(i) for i in list(range(12)) + [0, 1, 2, 3]]
    assert feats.spec_clips(np.zeros(48_000 * 10, np.float32), 48_000, 3.0).shape == (1, 128, 256)


def test_decoded_frames_are_squashed_whole_and_sampled_by_time(tmp_path: Path) -> None:
    """Frames of a real file through the index's decoder with CAVP's fit: 224 x 224 from the whole 32 x 24 frame
    (no crop), the frame on screen at each slot centre (grey level 8 i for frame i at 10 fps)."""
    video = make_grey_video(tmp_path / "grey.mp4")
    (window,) = list(iter_frame_windows(video, WindowConfig(window_s=10.0), fps=4.0, fit="squash"))
    assert window.frames.shape == (10, 224, 224, 3)  # 2.5 s at 4 fps
    expected = np.floor((np.arange(10) + 0.5) / 4 * 10).astype(int)
    np.testing.assert_array_equal(window.frame_indices, expected)
    np.testing.assert_allclose(window.frames[:, 112, 112, 0], 8 * expected, atol=2)
    np.testing.assert_allclose(window.frames[:, 0, 0, 0], 8 * expected, atol=2)  # corners kept: not cropped


# -- the hub ---------------------------------------------------------------------------------------------
_LOAD = ("import json, sys; from diffgap_search.encoders.cavp.encoder import load_cavp_encoder as l; "
         "e = l('cavp', 'cpu', progress=False); print(json.dumps([e.fingerprint, e.provenance]))")


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               DGSEARCH_CACHE_DIR=str(tmp_path / "dgsearch-cache"), **extra)
    return env


def test_cavp_loads_from_the_hub_as_published_then_offline(tmp_path: Path) -> None:
    repo = publish_diff_foley(tmp_path / "diff-foley")
    with HubServer({CAVP_REPO: repo}) as server:
        env = _env(tmp_path, server.url)
        first = subprocess.run([sys.executable, "-c", _LOAD], check=False, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        gets = [p for verb, p in server.requests if verb == "GET" and "/resolve/" in p]
    fingerprint, provenance = json.loads(first.stdout)
    import hashlib

    assert fingerprint == hashlib.sha256((repo / CAVP_FILE).read_bytes()).hexdigest()
    assert [p.rsplit("/", 2)[-2:] for p in gets] == [["diff_foley_ckpt", "cavp_epoch66.ckpt"]]
    assert provenance["repo_id"] == CAVP_REPO and provenance["file"] == CAVP_FILE and len(provenance["commit"]) == 40
    offline = subprocess.run([sys.executable, "-c", _LOAD], check=False, env={**env, "HF_HUB_OFFLINE": "1"},
                             capture_output=True, text=True, timeout=300)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)[0] == fingerprint
    empty = subprocess.run([sys.executable, "-c", _LOAD], check=False, env={**_env(tmp_path / "b", env["HF_ENDPOINT"]), "HF_HUB_OFFLINE": "1"},
                           capture_output=True, text=True, timeout=300)
    assert empty.returncode != 0 and "HF_HUB_OFFLINE" in empty.stderr


# -- end to end ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sfx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real CC0 recordings, audio only."""
    root = tmp_path_factory.mktemp("cavp-sfx") / "sfx"
    root.mkdir()
    for sound in require_real_sounds()[:6]:
        shutil.copy(sound.path, root / sound.path.name)
    return root


def test_video_query_on_an_audio_only_index_needs_no_bridge(sfx: Path, tiny_clap_dir: Path, tiny_cavp_ckpt: Path,
                                                           tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    r = dg("index", sfx, "--index", ix, "--model", tiny_clap_dir, "--video-model", tiny_cavp_ckpt, "--workers", "0")
    assert r.exit_code == 0, r.output
    clip = make_testsrc(tmp_path / "clip.mp4", seconds=3.0, size="64x48", rate=10)
    q = dg("query", "--video", clip, "--index", ix, "--json")
    assert q.exit_code == 0, q.output
    hits = json.loads(q.stdout)["hits"]
    assert sorted(Path(h["path"]).name for h in hits) == sorted(p.name for p in sfx.iterdir())
    assert all(h["start_s"] == 0.0 and h["end_s"] > 0 for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    with Catalog.open(ix) as cat:
        assert cat.count_vectors("cavp_audio") == cat.count_vectors("audio") == cat.stats()["segments"]
        assert cat.count_vectors("video") == 0
        # the raw CAVP cosine, checked against the stored vectors
        best = max(hits, key=lambda h: h["score"])
        stored = cat.vectors_of("cavp_audio", [best["segment_id"]])[best["segment_id"]]
    enc = load_cavp_encoder(str(tiny_cavp_ckpt), "cpu")
    (window,) = list(iter_frame_windows(clip, WindowConfig(), fps=4.0, fit="squash"))
    assert float(enc.embed_video([window.frames])[0] @ stored) == pytest.approx(best["score"], abs=1e-5)
    # --start/--end cut the query; a span with no frames is refused
    assert dg("query", "--video", clip, "--index", ix, "--start", "1", "--end", "2").exit_code == 0


def test_pinpoint_scores_a_span_in_cavps_space_as_search_scores_the_window(sfx: Path, tiny_clap_dir: Path,
                                                                          tiny_cavp_ckpt: Path, tmp_path: Path) -> None:
    """On a CAVP index a video query is scored in CAVP's space (``cavp_audio``): ``--pinpoint`` embeds its spans with
    CAVP's audio tower, so a span that is a hit's whole window, read back from its file, scores the hit's score."""
    from diffgap_search.cli.loaders import query_video_loader
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.pinpoint import SpanScorer, load_region

    ix = tmp_path / "ix"
    r = dg("index", sfx, "--index", ix, "--model", tiny_clap_dir, "--video-model", tiny_cavp_ckpt, "--workers", "0")
    assert r.exit_code == 0, r.output
    clip = make_testsrc(tmp_path / "clip.mp4", seconds=3.0, size="64x48", rate=10)
    with Searcher(ix, load_encoder, load_video_encoder=query_video_loader) as s:
        hits = s.search(Query(video=clip)).hits
        terms = s.terms_for("video", s.embed_query(Query(video=clip)))
        assert [t.space for t in terms] == ["cavp_audio"]
        rate = s.window().sample_rate
        regions = [(h.start_s, load_region(Path(h.fs_path), rate, h.start_s, h.end_s)) for h in hits]
        class CavpOnly:  # what the index's CLAP encoder hears, and a failure if it were asked to embed
            input_samples = s.encoder.input_samples

            def embed_audio(self, *args: object, **kwargs: object) -> None:
                raise AssertionError("a CAVP-space query's spans need no CLAP embedding")

        scores = SpanScorer(s.opened, CavpOnly(), terms, regions, rate)([[(h.start_s, h.end_s)] for h in hits])  # type: ignore[arg-type]
    assert len(hits) == 6
    np.testing.assert_allclose([float(x[0]) for x in scores], [h.score for h in hits], atol=1e-5)
    q = dg("query", "--video", clip, "--index", ix, "--pinpoint", "--json")
    assert q.exit_code == 0, q.output
    narrowed = [h for h in json.loads(q.stdout)["hits"] if "window" in h]
    quarter = [(h["window"][1] - h["window"][0]) / 4 for h in narrowed]  # the region: the window and a quarter each side
    assert narrowed and all(h["window"][0] - q <= h["start_s"] < h["end_s"] <= h["window"][1] + q
                            for h, q in zip(narrowed, quarter))


def test_switching_an_index_to_cavp_embeds_only_what_is_missing(sfx: Path, tiny_clap_dir: Path, tiny_cavp_ckpt: Path,
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diffgap_search.cli.loaders as cli

    loads: list[str] = []
    real_loader = cli.video_encoder_loader
    monkeypatch.setattr(cli, "video_encoder_loader", lambda cfg, device: loads.append(cfg.model) or real_loader(cfg, device))
    ix = tmp_path / "ix"
    assert dg("index", sfx, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    with Catalog.open(ix) as cat:
        before = dict(cat.conn.execute("SELECT segment_id, vector FROM vectors WHERE space = 'audio'").fetchall())
        assert cat.count_vectors("cavp_audio") == 0
    r = dg("index", sfx, "--index", ix, "--video-model", tiny_cavp_ckpt, "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["windows_embedded"] == len(before)
    with Catalog.open(ix) as cat:
        after = dict(cat.conn.execute("SELECT segment_id, vector FROM vectors WHERE space = 'audio'").fetchall())
        assert after == before  # CLAP vectors untouched
        assert cat.count_vectors("cavp_audio") == len(before)
    assert loads == [str(tiny_cavp_ckpt)]
    again = dg("index", sfx, "--index", ix, "--workers", "0", "--json")  # the index keeps CAVP: nothing to do
    assert again.exit_code == 0 and json.loads(again.stdout)["windows_embedded"] == 0
    assert loads == [str(tiny_cavp_ckpt)]  # and loads no model


@pytest.mark.slow  # ~80 s on 2 cores: 24 videos indexed, a bridge trained, queries raw and fused
def test_with_a_bridge_trained_in_cavp_space_the_video_query_is_fused(tiny_clap_dir: Path, tiny_cavp_ckpt: Path,
                                                                     tmp_path: Path) -> None:
    from diffgap_search.search import Searcher

    root = tmp_path / "clips"
    root.mkdir()
    for i in range(N_VIDEOS):
        make_testsrc(root / f"video{i:02d}.mkv", seconds=1.0 + 0.1 * i, size="32x32", rate=4)
    ix = tmp_path / "ix"
    r = dg("index", root, "--index", ix, "--model", tiny_clap_dir, "--video-model", tiny_cavp_ckpt, "--workers", "0")
    assert r.exit_code == 0, r.output
    raw = dg("query", "--video", root / "video03.mkv", "--index", ix, "--json")
    assert raw.exit_code == 0, raw.output
    t = dg("train", "--index", ix, "--pairs", "video", "--epochs", "2", "--batch-size", "8", "--json")
    assert t.exit_code == 0, t.output
    assert json.loads(t.stdout)["derived_vectors"]["audio_as_video"] == N_VIDEOS
    fused = dg("query", "--video", root / "video03.mkv", "--index", ix, "--json")
    assert fused.exit_code == 0, fused.output
    assert len(json.loads(fused.stdout)["hits"]) == 10
    tuned = json.loads(t.stdout)["fusion"]["video->audio"]
    with Searcher(ix, lambda cfg: None) as searcher:  # type: ignore[arg-type,return-value]
        assert searcher.bridge.shared_spaces == ("video",)  # training knew CAVP's video and sound share a space
        terms = searcher.terms_for("video", np.full((1, TINY_CAVP_DIM), 0.1, np.float32))
    # the served weights are the ones tuned on validation, the raw CAVP cosine among them (not a fixed share)
    expected = {("cavp_audio", "raw"): tuned["w_raw"], ("cavp_audio", "bridged"): tuned["w_query_bridged"],
                ("audio_as_video", "raw"): tuned["w_item_bridged"]}
    served = {(t.space, "raw" if np.allclose(t.queries, 0.1) else "bridged"): t.weight for t in terms}
    assert served == pytest.approx({k: w for k, w in expected.items() if w > 0})
    assert sum(served.values()) == pytest.approx(1.0)
    assert json.loads(fused.stdout)["hits"] != json.loads(raw.stdout)["hits"] or tuned["w_raw"] == 1.0
    with Catalog.open(ix) as cat:  # the bridged space came from the soundtracks' CAVP vectors
        assert cat.count_vectors("audio_as_video") == cat.count_vectors("cavp_audio") == N_VIDEOS
        n_clap_audio = cat.count_vectors("audio")
    # --pairs all on a CAVP index: text pairs on CLAP's audio, video pairs on CAVP's, one bridge serving both
    t = dg("train", "--index", ix, "--pairs", "all", "--captions", "names", "--epochs", "2", "--batch-size", "8",
           "--json")
    assert t.exit_code == 0, t.output
    report = json.loads(t.stdout)
    assert report["derived_vectors"] == {"audio_as_text": n_clap_audio, "audio_as_video": N_VIDEOS}
    assert set(report["fusion"]) == {"text->audio", "audio->text", "video->audio", "audio->video"}
    for args in (["--video", root / "video03.mkv"], ["video 3"]):
        q = dg("query", *args, "--index", ix, "--mode", "semantic", "--json")
        assert q.exit_code == 0, q.output
        assert len(json.loads(q.stdout)["hits"]) == 10
    with Searcher(ix, lambda cfg: None) as searcher:  # type: ignore[arg-type,return-value]
        assert searcher.bridge.shared_spaces == ("video",)
        assert {d.value for d in searcher.bridge.directions} == {"audio|text", "text|audio", "audio|video", "video|audio"}
