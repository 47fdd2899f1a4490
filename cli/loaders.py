"""The model loaders the commands hand to the library (imported from ``encoders`` only when called, so
``dgsearch --help`` imports no model code)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffgap_search.config import VideoConfig
    from diffgap_search.encoders.base import EncoderLoader, FrameEncoder


def encoder_loader() -> EncoderLoader:
    from diffgap_search.encoders.loading import load_encoder

    return load_encoder


def video_encoder_loader(cfg: VideoConfig, device: str) -> FrameEncoder:
    from diffgap_search.encoders.loading import load_video_model

    return load_video_model(cfg, device)


def query_video_loader(model: str, device: str, revision: str | None) -> FrameEncoder:
    from diffgap_search.encoders.loading import load_query_video_model

    return load_query_video_model(model, device, revision)
