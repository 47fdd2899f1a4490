"""A driver process lets go of Ray whole when a ``--engine ray`` run ends, however it ends (issue 22), on the
session's real loopback Ray runtime (``fixtures_ray.py``). Seen in CI: Ray Data's threads of a run that had
failed called Ray after ``ray.shutdown``, Ray then joined ``RAY_ADDRESS`` by itself, and the next run in the
process failed "cannot join the Ray cluster ...: Maybe you called ray.init twice by accident?"."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_index import CountingLoader
from fixtures_ray import RayCluster
from ray_helpers import committed_count, ray_left_alone
from reliability_helpers import build_corpus

from diffgap_search.config import EncoderConfig, IndexingConfig, WindowConfig
from diffgap_search.indexing import index_folder
from diffgap_search.indexing.ray_engine import RayOptions, ray_stages
from diffgap_search.indexing.report import NoProgress

WINDOW = WindowConfig(window_s=2.0, hop_s=2.0)


class ScreenGoneAfterOneFile(NoProgress):
    """A caller that fails while the run is under way (as a terminal that went away): after the first file."""

    def advance(self, files: int, windows: int) -> None:
        raise OSError("the screen went away")


@pytest.mark.slow
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # Ray Data's executor, were it
# still running at ray.shutdown: "SystemExit: 0" in its thread
def test_a_run_its_caller_ends_mid_way_leaves_nothing_of_ray_running_in_the_process(
        ray_env: RayCluster, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    build_corpus(tmp_path / "clips", 40)  # decode tasks of one file, batches of one window: mid-way at the first
    with pytest.raises(OSError, match="^the screen went away$") as failed:
        index_folder(tmp_path / "clips", tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                     window_cfg=WINDOW, progress=ScreenGoneAfterOneFile(),
                     indexing_cfg=IndexingConfig(files_per_batch=1),
                     stages=ray_stages(RayOptions(batch_size=1, actors=1)))
    assert ray_left_alone() == []  # while the caller holds the exception, and the run's frames with it
    del failed
    assert ray_left_alone() == []  # once they are collected
    assert committed_count(tmp_path / "ix") == 1  # the file it had been told of, committed before the advance


@pytest.mark.slow
def test_after_a_run_a_late_ray_call_in_the_process_cannot_join_a_cluster_by_itself(
        ray_env: RayCluster, clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    import ray  # as Ray Data's threads call it, once the run let go: RAY_ADDRESS names the cluster still

    index_folder(clips_dir, tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, window_cfg=WINDOW,
                 stages=ray_stages(RayOptions(batch_size=4, actors=1)))
    with pytest.raises(ray.exceptions.RaySystemError, match="Ray has not been started yet"):
        ray.put(1)
    assert ray_left_alone() == []
