"""Guidance and the linear anchor: `--guidance` on `dgsearch train`, the sampler tuned on validation, and
sampling that is bit-for-bit deterministic within a process and across processes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffgap_search.cli.app import app
from typer.testing import CliRunner

from diffgap_search.gap.baselines import l2n
from diffgap_search.gap.bridge import Bridge, SampleConfig, load_bridge
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge
from diffgap_search.gap.training_data import Batcher, split_pairs

A = "a" * 64
SPEC = GapSpec(dim=16, latent_dim=3, features=16)
SAMPLERS = {
    "plain": SampleConfig(steps=4),
    "guided": SampleConfig(steps=4, guidance_scale=1.7),
    "noise-mean": SampleConfig(steps=3, guidance_scale=1.3, noise_scale=1.0, seed=7, samples=4),
}
APPLY = """
import sys, numpy as np
from diffgap_search.gap.bridge import SampleConfig, load_bridge
b = load_bridge(sys.argv[1], None)
q = np.load(sys.argv[2])
for name, kw in {samplers}.items():
    sys.stdout.write(name + " " + b.apply(q, "text", "audio", sample=SampleConfig(**kw)).tobytes().hex() + "\\n")
"""


@pytest.fixture(scope="module")
def data() -> tuple[dict, np.ndarray, np.ndarray]:
    pairs, groups = GapWorld(SPEC, seed=0).sample_clips(120, seed=1, captions=3, caption_jitter=0.3).pairs()
    return pairs, groups, pairs["text"][:25]


@pytest.fixture(scope="module")
def trained(data: tuple) -> Bridge:
    pairs, groups, _ = data
    # residual_grid=(): the whole residual is served (alpha = 1), so every sampler reaches the network's output
    cfg = TrainConfig(epochs=2, batch_size=64, hidden=32, depth=1, seed=0, residual_grid=())
    return train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})[0]


def test_sampling_is_bit_for_bit_deterministic_across_calls_loads_and_processes(trained: Bridge, data: tuple,
                                                                                tmp_path: Path) -> None:
    _, _, q = data
    path, qpath = tmp_path / "bridge.safetensors", tmp_path / "q.npy"
    trained.save(path)
    np.save(qpath, q)
    here = {n: trained.apply(q, "text", "audio", sample=s).tobytes() for n, s in SAMPLERS.items()}
    again = load_bridge(path, None)
    for name, s in SAMPLERS.items():
        assert trained.apply(q, "text", "audio", sample=s).tobytes() == here[name]
        assert again.apply(q, "text", "audio", sample=s).tobytes() == here[name]
    # the samplers differ from each other (guidance and the seeded starts do something)
    assert len(set(here.values())) == len(here)
    script = APPLY.format(samplers={n: s.__dict__ for n, s in SAMPLERS.items()})
    runs = [subprocess.run([sys.executable, "-c", script, str(path), str(qpath)], capture_output=True, text=True,
                           check=True, env={"OMP_NUM_THREADS": str(torch.get_num_threads()), "PATH": "/usr/bin:/bin"})
            for _ in range(2)]
    for run in runs:
        got = dict(line.split(" ") for line in run.stdout.splitlines())
        assert {n: bytes.fromhex(h) for n, h in got.items()} == here


def test_the_anchor_is_the_ridge_map_and_the_network_learns_its_residual(trained: Bridge, data: tuple) -> None:
    """With the network's output layer zeroed, one step from the zero start returns the ridge map's answer."""
    _, _, q = data
    assert trained.denoiser.cfg.anchor == "ridge"
    ridge = trained.record.baselines["audio-text"].linear("ridge", "text", "audio")
    net = type(trained.denoiser)(trained.denoiser.cfg)
    net.load_state_dict(trained.denoiser.state_dict())
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
    silent = Bridge(net, trained.schedule, SampleConfig(steps=1), {"audio": A, "text": A}, trained.directions)
    np.testing.assert_allclose(silent.apply(q, "text", "audio"), ridge(q), atol=2e-6)
    # the trained residual moves the answer away from the linear map
    assert float(np.abs(trained.apply(q, "text", "audio") - ridge(q)).max()) > 1e-3


def test_the_sampler_is_tuned_on_validation_or_fixed_by_guidance(data: tuple) -> None:
    pairs, groups, _ = data
    base = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, seed=0)
    auto, report = train_bridge(pairs, groups=groups, cfg=base, encoder_fingerprints={"audio": A, "text": A})
    assert (auto.sample.steps, auto.sample.guidance_scale) in {(k, g) for k in (1, 4) for g in (1.0, 1.5, 2.0)}
    assert report.sample["guidance_scale"] == auto.sample.guidance_scale
    fixed, report = train_bridge(pairs, groups=groups, cfg=base.with_guidance("2.5"),
                                 encoder_fingerprints={"audio": A, "text": A})
    assert fixed.sample.guidance_scale == 2.5 and report.sample["guidance_scale"] == 2.5
    regression = replace(base, objective="regression")
    reg, _ = train_bridge(pairs, groups=groups, cfg=regression, encoder_fingerprints={"audio": A, "text": A})
    assert reg.sample.steps == 1  # a one-step regressor is never asked for more steps


def test_one_direction_training_fills_every_batch_with_that_direction(data: tuple) -> None:
    pairs, groups, _ = data
    sets = split_pairs(pairs, groups, 0.1)
    from diffgap_search.gap.directions import Direction

    only = Batcher(sets, 32, np.random.default_rng(0), Direction.AUDIO_GIVEN_TEXT)
    only.new_epoch()
    batch = only.batch(0)
    assert batch.direction.tolist() == [Direction.AUDIO_GIVEN_TEXT.index] * 32
    cfg = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, only_direction="text|audio", tune_sampler=False)
    bridge, _ = train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})
    assert [d.value for d in bridge.directions] == ["text|audio"]


def test_guidance_flag_on_train(tmp_path: Path, data: tuple) -> None:
    pairs, groups, _ = data
    np.savez(tmp_path / "train.npz", **pairs, group=groups)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--pairs-file", str(tmp_path / "train.npz"), "--index", str(tmp_path / "ix"),
                            "--epochs", "1", "--batch-size", "64", "--guidance", "1.25", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["sampler"]["guidance_scale"] == 1.25
    bridge = load_bridge(tmp_path / "ix" / out["file"], None)
    assert bridge.sample.guidance_scale == 1.25
    bad = runner.invoke(app, ["train", "--pairs-file", str(tmp_path / "train.npz"), "--index", str(tmp_path / "iy"),
                              "--guidance", "strong"])
    assert bad.exit_code == 2
    assert bad.stderr == "dgsearch: error: --guidance takes 'auto' or a scale >= 0 (1 = no guidance), got 'strong'\n"


def test_mean_of_samples_is_the_normalised_mean_of_each_seeded_sample(trained: Bridge, data: tuple) -> None:
    _, _, q = data
    base = SampleConfig(steps=2, noise_scale=1.0, seed=3)
    singles = [trained.apply(q, "text", "audio", sample=replace(base, seed=3 + k)) for k in range(3)]
    mean = trained.apply(q, "text", "audio", sample=replace(base, samples=3))
    np.testing.assert_allclose(mean, l2n(sum(singles)), atol=1e-6)
