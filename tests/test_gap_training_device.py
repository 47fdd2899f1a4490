"""Where DiffGAP training and its validation run (``TrainConfig.device``, ``dgsearch train --device``): names checked,
a GPU that is not there refused with one line, ``auto`` on a CPU-only machine the CPU, the device recorded with
what validation chose; on a machine with CUDA, a CUDA run takes the same random draws as a CPU run and ends with
the bridge on the CPU, within float error of the CPU run's vectors (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffgap_search.errors import UsageError
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge

A = "a" * 64
SPEC = GapSpec(dim=16, latent_dim=3, features=16)


@pytest.fixture(scope="module")
def pairs() -> tuple[dict[str, np.ndarray], np.ndarray]:
    return GapWorld(SPEC, seed=0).sample_clips(120, seed=1, captions=3, caption_jitter=0.3).pairs()


def _cfg(device: str) -> TrainConfig:
    return TrainConfig(epochs=2, batch_size=64, hidden=32, depth=1, seed=0, threads=1, device=device,
                       precision="fp32", residual_grid=())


def test_device_names_are_normalised_and_unknown_ones_refused() -> None:
    assert TrainConfig(device=" CUDA:1 ").device == "cuda:1"
    assert TrainConfig().device == "cpu"  # the library's default: reproducible on every machine
    with pytest.raises(UsageError, match="unknown device 'gpu'"):
        TrainConfig(device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_gpu_that_is_not_here_is_refused_and_auto_is_the_cpu(pairs: tuple) -> None:
    with pytest.raises(UsageError, match=r"training device 'cuda' is not here: torch .* sees 0 CUDA device\(s\)"):
        TrainConfig(device="cuda").torch_device()
    assert TrainConfig(device="auto").torch_device() == torch.device("cpu")
    data, groups = pairs
    bridge, report = train_bridge(data, groups=groups, cfg=_cfg("auto"), encoder_fingerprints={"audio": A, "text": A})
    assert report.selection["device"] == "cpu"
    assert all(p.device.type == "cpu" for p in bridge._net.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_run_ends_on_the_cpu_within_float_error_of_a_cpu_run(pairs: tuple) -> None:
    data, groups = pairs
    runs = {d: train_bridge(data, groups=groups, cfg=_cfg(d), encoder_fingerprints={"audio": A, "text": A})
            for d in ("cpu", "cuda")}
    assert runs["cuda"][1].selection["device"] == "cuda"
    assert all(p.device.type == "cpu" for p in runs["cuda"][0]._net.parameters())
    np.testing.assert_allclose(runs["cuda"][1].loss_history, runs["cpu"][1].loss_history, rtol=1e-3)
    q = data["text"][:20]
    a, b = (runs[d][0].apply(q, "text", "audio") for d in ("cpu", "cuda"))
    assert float((a * b).sum(1).min()) > 0.999


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_cli_refuses_a_missing_gpu_before_reading_pairs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from diffgap_search.cli.app import app

    missing = tmp_path / "no-such-pairs.npz"  # never read: the device is checked first
    result = CliRunner().invoke(app, ["train", "--pairs-file", str(missing), "--index", str(tmp_path / "ix"),
                                      "--device", "cuda:1"])
    assert result.exit_code == 2, result.output
    assert "training device 'cuda:1' is not here" in result.output
    assert not (tmp_path / "ix").exists()
