"""The encoders of one indexing run (audio, video, the index's bridge), each loaded on first use.

An unchanged folder loads none; the first model load binds the model (and its sample rate, the windows')
to the catalog, so a mismatch with the index fails before any decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.bridge.index_bridge import bridge_vectors, load_index_bridge
from diffgap_search.config import EncoderConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.base import Encoder, identity_of
from diffgap_search.errors import ModelUnavailableError
from diffgap_search.indexing.decode import SegmentData
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import bind_encoder, bind_window

EncoderLoader = Callable[[EncoderConfig], Encoder]
VideoEncoderLoader = Callable[[VideoConfig, str], Any]  # (config, device) -> encoder with embed_video

_UNSET: Any = object()


class RunEncoders:
    """The audio and video encoders, each loaded on first use only (an unchanged folder loads none)."""

    def __init__(self, loader: EncoderLoader, cfg: EncoderConfig, video_loader: VideoEncoderLoader | None,
                 video_cfg: VideoConfig, catalog: Catalog, where: str, window: WindowConfig) -> None:
        self._loader, self.cfg, self._catalog, self._where = loader, cfg, catalog, where
        self.window = window  # its sample rate becomes the audio encoder's when that is loaded
        self._video_loader, self.video_cfg = video_loader, video_cfg
        self._audio: Encoder | None = None
        self._video: Any = None
        self._bridge: Any = _UNSET

    @property
    def batch_size(self) -> int:
        return self.cfg.batch_size

    def audio(self) -> Encoder:
        if self._audio is None:
            self._audio = self._loader(self.cfg)
            bind_encoder(self._catalog, identity_of(self._audio), self._where)
            rate = int(self._audio.sample_rate)
            self.window = bind_window(self._catalog, replace(self.window, sample_rate=rate), self._where)
        return self._audio

    def video(self) -> Any:
        if self._video is None:
            if self._video_loader is None:
                raise ModelUnavailableError("no video encoder is configured: pass --video-model or --no-frames")
            self._video = self._video_loader(self.video_cfg, self.cfg.device)
            bind_encoder(self._catalog, identity_of(self._video), self._where, role="video_encoder")
        return self._video

    def bridge(self) -> Any:
        """The index's DiffGAP bridge, loaded once (None without one): new windows get bridged vectors too."""
        if self._bridge is _UNSET:
            self._bridge = load_index_bridge(Path(self._where), self._catalog)
        return self._bridge

    @property
    def is_cavp(self) -> bool:
        """Whether the video model is CAVP, which embeds every window's sound too (``indexing/cavp_run.py``)."""
        from diffgap_search.encoders.cavp.encoder import is_cavp_reference

        return self.video_cfg.frames and is_cavp_reference(self.video_cfg.model)

    def load_for(self, kinds: set[str]) -> None:
        """Load what these file kinds need now, so a missing model fails before any decoding."""
        self.audio()
        self.bridge()
        if ("video" in kinds and self.video_cfg.frames) or self.is_cavp:
            self.video()

    def embed(self, segments: list[SegmentData]) -> list[dict[str, np.ndarray]]:
        """Each segment's vectors by space: ``"audio"`` when it has samples, ``"video"`` when it has frames."""
        out: list[dict[str, np.ndarray]] = [{} for _ in segments]
        with_audio = [i for i, s in enumerate(segments) if s.audio is not None]
        if with_audio:
            vecs = self.audio().embed_audio(np.stack([segments[i].audio for i in with_audio]))  # type: ignore[misc]
            for i, v in zip(with_audio, vecs):
                out[i]["audio"] = v
        cavp = None
        if with_audio and self.is_cavp:
            from diffgap_search.indexing.cavp_run import cavp_audio_vectors

            cavp = cavp_audio_vectors(self.video(), [segments[i] for i in with_audio], self.window.sample_rate)
            for i, v in zip(with_audio, cavp):
                out[i]["cavp_audio"] = v
        bridge = self.bridge()
        if with_audio and bridge is not None:
            audio = np.stack([out[i]["audio"] for i in with_audio])
            for space, vecs in bridge_vectors(bridge, audio, video_side=cavp).items():
                for i, v in zip(with_audio, vecs):
                    out[i][space] = v
        with_frames = [i for i, s in enumerate(segments) if s.frames is not None]
        if with_frames:
            vecs = self.video().embed_video([segments[i].frames for i in with_frames])
            for i, v in zip(with_frames, vecs):
                out[i]["video"] = v
        return out

    def dim_of(self, space: str) -> int | None:
        role = "video_encoder" if space in ("video", "cavp_audio") else "encoder"
        stored = self._catalog.get_meta(role)
        return None if stored is None else int(stored["dim"])
