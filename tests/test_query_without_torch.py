"""Words searched on an aisfx + WordLlama index without torch: the aisfx network is loaded at the first audio
window (``encoders/aisfx/on_demand.py``), the bridge's anchor map served in numpy where validation chose residual
scale 0 (``gap/served_bridge.py``). Real aisfx and WordLlama weights from their packages; a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_media import write_noise, write_tone
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig, FaissConfig, SearchConfig, SearchMode
from diffgap_search.encoders.base import identity_of
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.paired import text_identity_of

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")
pytest.importorskip("wordllama", reason="the wordllama package (pip install --no-deps wordllama==0.4.0.post1) holds the weights")

PAIRED = EncoderConfig(model="aisfx", text_model="wordllama", device="cpu")


def test_the_on_demand_encoder_is_the_loaded_one_until_audio_needs_it() -> None:
    forced = EncoderConfig(model="aisfx", text_model="wordllama", device="cpu", precision="fp32")  # never ONNX
    eager = load_encoder(forced)
    lazy = load_encoder(forced, audio_on_demand=True)
    assert identity_of(lazy) == identity_of(eager) and text_identity_of(lazy) == text_identity_of(eager)
    assert np.array_equal(lazy.embed_text(["a dog barking"]), eager.embed_text(["a dog barking"]))
    assert lazy.audio._loaded is None  # identity and words: no network yet
    window = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 44_100)).astype(np.float32)
    assert np.array_equal(lazy.embed_audio(window), eager.embed_audio(window))
    assert lazy.audio._loaded is not None and lazy.audio._loaded.provenance == {"source": "package"}
    assert lazy.batch_size == eager.batch_size  # any other attribute: the loaded encoder's
    # a named GPU loads at once (its errors belong to loading, not to the first window)
    assert type(load_encoder(EncoderConfig(model="aisfx", text_model="wordllama", device="cpu"),
                             audio_on_demand=False).audio).__name__ == "AisfxEncoder"


def test_with_auto_the_on_demand_encoder_embeds_audio_through_the_checked_onnx_export() -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'diffgap-search[onnx]'")
    pytest.importorskip("onnx", reason="the onnx extra: pip install 'diffgap-search[onnx]'")
    load_encoder(PAIRED)  # an eager auto load exports and checks once (a no-op once the run's cache has it)
    lazy = load_encoder(PAIRED, audio_on_demand=True)
    window = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 44_100)).astype(np.float32)
    vectors = lazy.embed_audio(window)
    assert lazy.audio.onnx_runner() is not None and lazy.audio._loaded is None  # no torch network
    fp32 = load_encoder(EncoderConfig(model="aisfx", device="cpu", precision="fp32")).embed_audio(window)
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    assert np.min(np.sum(vectors * fp32, axis=1)) >= 0.9999
    twelve = np.random.default_rng(1).uniform(-0.5, 0.5, (12, 441_000)).astype(np.float32)
    lazy.embed_audio(twelve)  # twelve 10 s windows (onnx_query.QUERY_FRAMES): still ONNX Runtime
    assert lazy.audio._loaded is None
    lazy.embed_audio(np.concatenate([twelve, twelve[:1]]))  # thirteen: the torch network is loaded for them
    assert lazy.audio._loaded is not None


def test_words_are_embedded_without_importing_torch() -> None:
    code = ("import sys\nfrom diffgap_search.config import EncoderConfig\n"
            "from diffgap_search.encoders.loading import load_encoder\n"
            "e = load_encoder(EncoderConfig(model='aisfx', text_model='wordllama'), audio_on_demand=True)\n"
            "print(e.embed_text(['door']).shape, e.fingerprint[:12], 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    eager = load_encoder(PAIRED)
    assert done.stdout.split() == ["(1,", "512)", eager.fingerprint[:12], "False"]


@pytest.fixture(scope="module")
def bridged_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six short files indexed with aisfx + WordLlama, and a bridge (trained on seeded 512-d pairs, the index's
    encoders' fingerprints) whose text queries validation "chose" to serve by the anchor alone."""
    from diffgap_search.bridge.index_bridge import encoder_fingerprints
    from diffgap_search.bridge.train import _store_bridge
    from diffgap_search.gap.bridge import Bridge
    from diffgap_search.gap.training import TrainConfig, train_bridge
    from diffgap_search.store.catalog import Catalog

    library = tmp_path_factory.mktemp("library")
    for i, name in enumerate(["dog_bark", "door_slam", "rain_light"]):
        write_tone(library / f"{name}.wav", freq=220.0 * (i + 1), seconds=0.5)
        write_noise(library / f"{name}_noise.wav", seconds=0.5, seed=i)
    index = tmp_path_factory.mktemp("wl") / "index"
    result = CliRunner().invoke(app, ["index", str(library), "--index", str(index), "--model", "aisfx",
                                      "--text-model", "wordllama", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((400, 512)).astype(np.float32)
    text = (audio @ rng.standard_normal((512, 512)).astype(np.float32) / 20 + rng.standard_normal((400, 512))
            ).astype(np.float32)
    with Catalog.open(index) as catalog:
        cfg = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, seed=0, separate_spaces=("text",),
                          tune_sampler=False)
        trained, _ = train_bridge({"audio": audio, "text": text}, cfg=cfg,
                                  encoder_fingerprints=encoder_fingerprints(catalog))
        scales = {"audio|text": 0.0, "text|audio": 1.0}
        bridge = Bridge(trained.denoiser, trained.schedule, trained.sample, trained.encoder_fingerprints,
                        trained.directions, {k: trained.fusion_for(*k.split("->")) for k in ("text->audio",
                                                                                         "audio->text")},
                        trained.train_info, trained.record,
                        selection={**trained.selection, "residual_scale": scales, "residual_scale_items": scales})
        _store_bridge(index, catalog, bridge, None, {}, FaissConfig())
    return index


@pytest.mark.slow  # indexes with the real aisfx network (about 10 s on 2 shared cores)
def test_a_text_query_on_a_bridged_aisfx_index_runs_without_torch(bridged_index: Path) -> None:
    from diffgap_search.search import Query, Searcher

    wrapper = ("import atexit, sys\n"
               "atexit.register(lambda: sys.stderr.write(f'torch imported: {\"torch\" in sys.modules}\\n'))\n"
               "from diffgap_search.cli.app import main\n"
               "sys.argv = ['dgsearch', *sys.argv[1:]]\nmain()\n")
    done = subprocess.run([sys.executable, "-c", wrapper, "query", "a dog barking", "--index", str(bridged_index),
                           "--mode", "semantic", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "torch imported: False"
    hits = json.loads(done.stdout)["hits"]
    # the same query served by the torch bridge itself (and the aisfx network loaded): same files, same order
    with Searcher(bridged_index, load_encoder) as searcher:
        served = searcher.opened.bridge
        searcher.opened._bridge = served.full()  # the record is unchanged: the torch bridge stays in use
        expected = searcher.search(Query(text="a dog barking"), SearchConfig(mode=SearchMode.SEMANTIC)).hits
        assert type(searcher.opened.bridge).__name__ == "Bridge"
    assert [Path(h["path"]).name for h in hits] == [Path(h.path).name for h in expected]
    assert len(hits) == 6
    np.testing.assert_allclose([h["score"] for h in hits], [h.score for h in expected], atol=1e-6)
