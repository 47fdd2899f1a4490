"""An indexing run's bf16 audio tower in two lanes on a CPU (``encoders/clap/lanes.py``): which encoders and calls
take them, that each lane runs on its own share of torch's threads without touching the caller's, and that the
vectors are each chunk's as one thread computes it, in order."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from diffgap_search.encoders.clap.encoder import ClapEncoder
from diffgap_search.encoders.clap.lanes import LANE_WINDOWS, Lanes, index_in_lanes, lane_chunks, lanes_for

S = 480_000


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two torch threads for the test (an earlier test in the process may have left one), restored after."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("lanes need two CPUs")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _encoder(base: Any, precision: str) -> ClapEncoder:
    return ClapEncoder(base.model, base.feature_extractor, base.tokenizer, model_id=base.model_id,
                       fingerprint=base.fingerprint, device=torch.device("cpu"), batch_size=16, precision=precision)


def _windows(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.clip(0.3 * rng.standard_normal((n, S)), -1, 1).astype(np.float32)


def test_only_bf16_on_a_cpu_with_two_threads_takes_lanes() -> None:
    cpu = torch.device("cpu")
    assert lanes_for(cpu, bf16=False, threads=2) is None
    assert lanes_for(cpu, bf16=True, threads=1) is None
    assert lanes_for(torch.device("meta"), bf16=True, threads=2) is None
    assert lanes_for(cpu, bf16=True, threads=2).per_lane == 1  # type: ignore[union-attr]
    assert lanes_for(cpu, bf16=True, threads=8).per_lane == 4  # type: ignore[union-attr]


def test_a_lane_has_its_own_thread_count_and_the_caller_keeps_its_own() -> None:
    before = torch.get_num_threads()
    lanes = Lanes(threads=4)
    try:
        seen = lanes.map(lambda _: np.array([torch.get_num_threads(), threading.get_ident()]), [np.zeros(1)] * 6)
        assert {int(s[0]) for s in seen} == {2}
        assert threading.get_ident() not in {int(s[1]) for s in seen}
        assert torch.get_num_threads() == before
    finally:
        lanes.close()


@pytest.mark.parametrize(("n", "sizes"), [(8, [4, 4]), (9, [4, 5]), (12, [3, 3, 3, 3]), (16, [4, 4, 4, 4]),
                                          (17, [4, 4, 5, 4]), (18, [4, 5, 5, 4]), (21, [4, 3, 3, 4, 4, 3])])
def test_a_call_splits_into_an_even_number_of_chunks_of_about_four(n: int, sizes: list[int]) -> None:
    windows = np.arange(n, dtype=np.float32)[:, None].repeat(3, axis=1)
    chunks = lane_chunks(windows)
    assert [len(c) for c in chunks] == sizes
    np.testing.assert_array_equal(np.concatenate(chunks), windows)  # every window once, in order


def test_lanes_keep_the_order_and_raise_a_chunks_error() -> None:
    lanes = Lanes(threads=2)

    def double(c: np.ndarray) -> np.ndarray:
        if c[0] == 5:
            raise ValueError("chunk 5")
        return c * 2

    try:
        chunks = [np.full(3, i, np.float32) for i in range(9)]
        assert [int(c[0]) for c in lanes.map(lambda c: c * 2, chunks)] == [0, 2, 4, 6, 8, 10, 12, 14, 16]
        with pytest.raises(ValueError, match="chunk 5"):
            lanes.map(double, chunks)
    finally:
        lanes.close()


@pytest.mark.usefixtures("two_threads")
def test_bf16_windows_run_in_lanes_as_one_thread_runs_each_chunk(tiny_encoder: Any) -> None:
    enc = _encoder(tiny_encoder, "bf16")
    index_in_lanes(enc)  # before the path is chosen: lanes come with it
    windows = _windows(2 * LANE_WINDOWS + 1)  # 9 windows: chunks of 4 and 5, one per lane
    got = enc.embed_audio(windows)
    assert enc.audio_path == "bf16" and enc.lanes is not None
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the reference: each chunk on one thread, in this thread, one after another
        want = np.concatenate([enc._audio_batch(windows[:4]), enc._audio_batch(windows[4:])])
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(got, want)
    assert got.shape == (9, enc.dim) and got.dtype == np.float32


@pytest.mark.usefixtures("two_threads")
def test_short_calls_other_paths_and_queries_keep_one_team(tiny_encoder: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _encoder(tiny_encoder, "bf16")
    enc.embed_audio(_windows(1))
    assert enc.lanes is None  # not an indexing run's encoder
    index_in_lanes(enc)  # the path already chosen: lanes now
    assert enc.lanes is not None
    used: list[int] = []
    monkeypatch.setattr(enc.lanes, "map", lambda fn, chunks: used.append(len(chunks)) or [fn(c) for c in chunks])
    enc.embed_audio(_windows(2 * LANE_WINDOWS - 1))  # 7 windows: one team
    assert used == []
    enc.embed_audio(_windows(2 * LANE_WINDOWS))
    assert used == [2]
    fp32 = _encoder(tiny_encoder, "fp32")
    index_in_lanes(fp32)
    fp32.embed_audio(_windows(2 * LANE_WINDOWS))
    assert fp32.lanes is None


@pytest.mark.usefixtures("two_threads")
def test_an_indexing_run_asks_its_clap_encoder_for_lanes(tiny_clap_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from diffgap_search.config import EncoderConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing import RunSettings, default_stages, run_index

    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        sf.write(clips / f"noise{i}.wav", (0.2 * rng.standard_normal(48_000 * 45)).astype(np.float32), 48_000)
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=16, precision="bf16")
    encoder = load_encoder(cfg, progress=False)
    calls: list[int] = []
    lanes_map = Lanes.map
    monkeypatch.setattr(Lanes, "map", lambda self, fn, chunks: calls.append(len(chunks)) or lanes_map(self, fn, chunks))
    report = run_index(RunSettings(clips, tmp_path / "index", load_encoder=lambda _c: encoder, encoder_cfg=cfg),
                       default_stages())
    assert report.windows_embedded == 10 and encoder.lanes is not None
    assert calls == [2]  # 10 windows of two 45 s files in one call: chunks of 5 and 5


@pytest.mark.usefixtures("two_threads")
def test_a_ray_actor_embeds_in_lanes_as_the_local_engine_does(tiny_clap_dir: Path) -> None:
    """``--engine ray``'s embedding actor (``ray_engine/work.py``, no Ray runtime needed to build its models) asks
    its CLAP encoder for lanes as ``RunModels`` does: one call gives the same bf16 vectors in both engines. (A bf16
    row also depends on the size of the chunk it runs in: 7.6e-4 per component at most between 17 and 16 windows,
    cosine 0.999997, on the full-size architecture.)"""
    from diffgap_search.config import EncoderConfig, VideoConfig, WindowConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing.ray_engine.work import ActorModels, ModelSpec

    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=16, precision="bf16")
    spec = ModelSpec(load_encoder=lambda c: load_encoder(c, progress=False), cfg=cfg, load_video_encoder=None,
                     video_cfg=VideoConfig(), window=WindowConfig(), bridge=None, is_cavp=False)
    actor = ActorModels(spec).audio()
    windows = _windows(2 * LANE_WINDOWS + 1)
    got = actor.embed_audio(windows)
    assert actor.lanes is not None and actor.lanes.per_lane == 1
    local = load_encoder(cfg, progress=False)
    index_in_lanes(local)  # what RunModels.audio() asks of the local engine's encoder
    np.testing.assert_array_equal(got, local.embed_audio(windows))
