"""Which video encoder a ``--video-model`` names, and how its frames are sampled: CLIP's image tower (a hub id
or a model directory) or CAVP (``cavp``, or a CAVP checkpoint file). Light module: loaders import lazily."""

from __future__ import annotations

from typing import Any

from diffgap_search.config import VideoConfig
from diffgap_search.encoders.cavp.encoder import is_cavp_reference

CAVP_BATCH = 8  # 4 s clips of 16 x 224 x 224 frames per forward pass (~80 MB of pixels)


def video_config(model: str, revision: str | None = None, frames: bool = True) -> VideoConfig:
    """The ``VideoConfig`` for ``model``: CAVP squashes whole frames to 224 x 224 at 4 fps (Diff-Foley's
    ``Resize((224, 224))``), CLIP centre-crops them."""
    if is_cavp_reference(model):
        return VideoConfig(model=model, revision=revision, frames=frames, fps=4.0, size=224, fit="squash",
                           batch_size=CAVP_BATCH)
    return VideoConfig(model=model, revision=revision, frames=frames)


def load_video_model(cfg: VideoConfig, device: str) -> Any:
    """The encoder ``cfg.model`` names, on ``device`` (``indexing.run``'s video loader)."""
    if is_cavp_reference(cfg.model):
        from diffgap_search.encoders.cavp.encoder import load_cavp_encoder

        return load_cavp_encoder(cfg.model, device, cfg.batch_size, revision=cfg.revision)
    from diffgap_search.encoders.clip.encoder import load_video_encoder

    return load_video_encoder(cfg.model, device, cfg.batch_size, revision=cfg.revision, fps=cfg.fps)


def load_query_video_model(model: str, device: str, revision: str | None) -> Any:
    """The index's video encoder for a query (``search.Searcher``'s video loader)."""
    return load_video_model(video_config(model, revision), device)
