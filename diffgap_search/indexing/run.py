"""The entry points of an indexing run: ``index_folder`` (the models given) and ``update_index`` (the models
chosen as ``dgsearch index`` chooses them: an existing index keeps its own). Both run the local engine's
stages (``indexing/stages.py``) with the one runner (``indexing/runner.py``).
"""

from __future__ import annotations

from pathlib import Path

from diffgap_search.config import EncoderConfig, FaissConfig, IndexingConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.base import EncoderLoader, VideoEncoderLoader
from diffgap_search.indexing.models import ModelChoice, run_configs
from diffgap_search.indexing.report import IndexProgress, IndexReport
from diffgap_search.indexing.runner import RunSettings, run_index
from diffgap_search.indexing.stages import Stages, default_stages


def index_folder(
    root: Path,
    index_dir: Path,
    *,
    load_encoder: EncoderLoader,
    encoder_cfg: EncoderConfig,
    load_video_encoder: VideoEncoderLoader | None = None,
    video_cfg: VideoConfig = VideoConfig(),
    window_cfg: WindowConfig = WindowConfig(),
    faiss_cfg: FaissConfig = FaissConfig(),
    indexing_cfg: IndexingConfig = IndexingConfig(),
    progress: IndexProgress | None = None,
    retry_failed: bool = False,
    wait_s: float = 0.0,
    stages: Stages | None = None,
    settle_s: float = 0.0,
    moved_from: Path | None = None,
) -> IndexReport:
    """Index (or update the index of) every audio/video file under ``root`` into ``index_dir``; a file modified
    less than ``settle_s`` seconds ago is left for a later run (``IndexReport.deferred``); ``moved_from``: where
    the library was before it moved (``indexing/moved.py``), its rows followed to their places under ``root``.

    Raises InputNotFoundError (no ``root``), UsageError (a bad ``moved_from``: see ``run_index``), IndexBusyError
    (another writer), IncompatibleIndexError (other window settings or model weights), NothingIndexedError (files
    found, none indexable, with the report attached as ``.report``).
    """
    settings = RunSettings(root, index_dir, load_encoder, encoder_cfg, load_video_encoder, video_cfg, window_cfg,
                           faiss_cfg, indexing_cfg, retry_failed, wait_s, settle_s, moved_from)
    return run_index(settings, stages or default_stages(), progress)


def update_index(
    root: Path,
    index_dir: Path,
    choice: ModelChoice,
    *,
    load_encoder: EncoderLoader,
    load_video_encoder: VideoEncoderLoader | None = None,
    window_cfg: WindowConfig = WindowConfig(),
    indexing_cfg: IndexingConfig = IndexingConfig(),
    progress: IndexProgress | None = None,
    retry_failed: bool = False,
    wait_s: float = 0.0,
    faiss_cfg: FaissConfig = FaissConfig(),
    stages: Stages | None = None,
    settle_s: float = 0.0,
    moved_from: Path | None = None,
) -> IndexReport:
    """``index_folder`` with the models ``choice`` asks for, an existing index keeping its own models at their
    recorded commits where ``choice`` leaves them open (``indexing.models.run_configs``). Raises as
    ``index_folder``."""
    encoder_cfg, video_cfg = run_configs(index_dir, choice)
    return index_folder(root, index_dir, load_encoder=load_encoder, encoder_cfg=encoder_cfg,
                        load_video_encoder=load_video_encoder, video_cfg=video_cfg, window_cfg=window_cfg,
                        indexing_cfg=indexing_cfg, progress=progress, retry_failed=retry_failed, wait_s=wait_s,
                        faiss_cfg=faiss_cfg, stages=stages, settle_s=settle_s, moved_from=moved_from)
