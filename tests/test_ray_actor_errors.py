"""``--engine ray`` when the embedding actors cannot do their job (issue 22), on the session's real loopback Ray
runtime (``fixtures_ray.py``): a model missing or different on the workers, an encoder that raises there, actors
that cannot even be created, a CUDA device on a cluster without GPUs. Each ends the run with the exit code the
local engine gives the same fault, one line, nothing printed on stdout and nothing committed."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures_index import (
    BrokenEncoderOnWorkers,
    CountingLoader,
    NoModelOnWorkers,
    OtherWeightsOnWorkers,
    UnpicklableOnWorkers,
)
from fixtures_models import make_tiny_clap
from fixtures_ray import RayCluster
from ray_helpers import committed_count, ray_left_alone

from diffgap_search.config import EncoderConfig, WindowConfig
from diffgap_search.errors import EngineUnavailableError, ModelUnavailableError
from diffgap_search.indexing import index_folder
from diffgap_search.indexing.ray_engine import RayOptions, ray_stages
from diffgap_search.indexing.ray_engine.failure import ActorError

WINDOW = WindowConfig(window_s=2.0, hop_s=2.0)


@pytest.mark.slow
def test_actors_that_cannot_load_the_model_end_the_run_as_a_missing_model_in_one_line_and_print_nothing(
        ray_env: RayCluster, clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig,
        capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModelUnavailableError) as failed:  # exit 5, as the local engine without the model
        index_folder(clips_dir, tmp_path / "ix", load_encoder=NoModelOnWorkers(os.getpid()), encoder_cfg=tiny_cfg,
                     window_cfg=WINDOW, stages=ray_stages(RayOptions(batch_size=4, actors=1)))
    assert str(failed.value) == (
        "an embedding actor on the Ray node 127.0.0.1 cannot start:"
        f" model directory '{tiny_cfg.model}' does not exist"
        " (every node needs diffgap-search, its models and the files, at the same paths)")
    out, _ = capfd.readouterr()
    assert out == ""
    assert committed_count(tmp_path / "ix") == 0


@pytest.mark.slow
def test_an_actor_with_other_weights_than_the_drivers_refuses_to_embed(
        ray_env: RayCluster, clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    from diffgap_search.encoders.loading import load_encoder

    other = str(make_tiny_clap(tmp_path / "other-model", seed=1))  # same architecture, other weights
    ours, theirs = (load_encoder(replace(tiny_cfg, model=m), progress=False).fingerprint for m in (tiny_cfg.model, other))
    with pytest.raises(ModelUnavailableError) as failed:  # exit 5: vectors of two spaces must never mix
        index_folder(clips_dir, tmp_path / "ix", load_encoder=OtherWeightsOnWorkers(os.getpid(), other),
                     encoder_cfg=tiny_cfg, window_cfg=WINDOW, stages=ray_stages(RayOptions(batch_size=4, actors=1)))
    assert str(failed.value) == (
        f"an embedding actor on the Ray node 127.0.0.1 cannot start: its audio weights ({theirs[:12]}) are not the"
        f" driver's ({ours[:12]}) (every node needs diffgap-search, its models and the files, at the same paths)")
    assert ours != theirs
    assert committed_count(tmp_path / "ix") == 0


@pytest.mark.slow
def test_actors_that_cannot_be_created_end_the_run_in_one_line_and_print_nothing(
        ray_env: RayCluster, clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig,
        capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EngineUnavailableError) as failed:  # exit 16: the actor's own code never ran
        index_folder(clips_dir, tmp_path / "ix", load_encoder=UnpicklableOnWorkers(os.getpid()), encoder_cfg=tiny_cfg,
                     window_cfg=WINDOW, stages=ray_stages(RayOptions(batch_size=4, actors=1)))
    assert str(failed.value) == (
        f"the embedding actors cannot start on the Ray cluster at {ray_env.address}:"
        " ModuleNotFoundError: No module named 'diffgap_search'"
        " (every node needs diffgap-search, its models and the files, at the same paths)")
    out, _ = capfd.readouterr()
    assert out == ""  # Ray's driver printed the raylet's traceback of every try here, where --json writes
    assert committed_count(tmp_path / "ix") == 0


@pytest.mark.slow
def test_an_actor_whose_encoder_raises_ends_the_run_as_an_internal_error_with_the_actors_traceback(
        ray_env: RayCluster, clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    # as the local engine, whose encoder's exception ends the run; Ray Data alone would drop the block and
    # every file would end as "lost" (then "nothing indexed")
    with pytest.raises(ActorError) as failed:
        index_folder(clips_dir, tmp_path / "ix", load_encoder=BrokenEncoderOnWorkers(os.getpid()),
                     encoder_cfg=tiny_cfg, window_cfg=WINDOW, stages=ray_stages(RayOptions(batch_size=4, actors=1)))
    assert str(failed.value) == "an embedding actor failed: ValueError: this encoder cannot embed here"
    (note,) = failed.value.__notes__
    assert note.startswith("the actor's traceback:\nTraceback (most recent call last):")
    assert note.rstrip().endswith("ValueError: this encoder cannot embed here")
    assert committed_count(tmp_path / "ix") == 0
    del failed  # the run's frames go with its exception: nothing of Ray may be left to finish then
    assert ray_left_alone() == []


@pytest.mark.slow
def test_a_cuda_device_is_refused_before_any_actor_starts_on_a_cluster_without_gpus(
        ray_env: RayCluster, clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    cfg = replace(tiny_cfg, device="cuda")
    with pytest.raises(ModelUnavailableError) as failed:  # exit 5, as the local engine without a GPU
        index_folder(clips_dir, tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=cfg, window_cfg=WINDOW,
                     stages=ray_stages(RayOptions(batch_size=4, actors=1)))
    assert str(failed.value) == (
        f"device 'cuda' was requested, but the embedding actors on the Ray cluster at {ray_env.address} get no GPU"
        " (it has none): use --device cpu or --device auto")
    assert committed_count(tmp_path / "ix") == 0
