"""The models of one indexing run: which ones (an existing index keeps its own), and each loaded on first use.

An unchanged folder loads none; the first model load binds the model (and its sample rate, the windows')
to the catalog, so a mismatch with the index fails before anything is embedded.
"""

from __future__ import annotations

import threading

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffgap_search.bridge.index_bridge import load_index_bridge
from diffgap_search.config import EncoderConfig, EncoderRole, VideoConfig, WindowConfig
from diffgap_search.encoders.base import (
    Encoder,
    EncoderLoader,
    FrameEncoder,
    VideoEncoderLoader,
    fit_window,
    identity_of,
)
from diffgap_search.encoders.loading import ask_for_lanes, check_text_model, load_text_encoder, video_config
from diffgap_search.encoders.paired import text_identity_of
from diffgap_search.errors import ModelUnavailableError, UsageError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import bind_encoder, bind_window, recorded_frames, space_dim, stored_encoder
from diffgap_search.store.settings import stored_encoder_config, stored_window

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge

_UNSET: Any = object()


@dataclass(frozen=True)
class ModelChoice:
    """The models an indexing run is asked for (``dgsearch index`` flags, one to one).

    ``None`` means "the index's own, at the commit it was built from" for an existing index, else the
    default (``config.DEFAULT_MODEL``, ``config.DEFAULT_VIDEO_MODEL``). ``frames`` off indexes videos'
    soundtracks only; None: the index's own choice (``store.settings.recorded_frames``) unless a ``video_model``
    is named, else on. ``device`` and ``batch_size`` apply to the audio encoder (the video encoder runs on the
    same device). ``text_model``: a text encoder beside an audio-only model (``wordllama``); None: the index's.
    """

    model: str | None = None
    text_model: str | None = None
    revision: str | None = None
    video_model: str | None = None
    video_revision: str | None = None
    frames: bool | None = None
    device: str = EncoderConfig.device
    batch_size: int = EncoderConfig.batch_size
    precision: str = EncoderConfig.precision


def run_configs(index_dir: Path, choice: ModelChoice) -> tuple[EncoderConfig, VideoConfig]:
    """The audio and video encoder configurations of a run into ``index_dir``: an existing index keeps its
    models at their recorded commits unless ``choice`` names others (a ``revision`` picks another commit of
    the model, a ``model`` another copy, still checked against the recorded weights when loaded) and its
    ``--frames``/``--no-frames`` unless ``choice`` says."""
    encoder_cfg = EncoderConfig(model=choice.model or EncoderConfig().model, revision=choice.revision)
    frames, stored_video = choice.frames, None
    if (index_dir / "catalog.sqlite").exists():  # an existing index keeps its models, at their recorded commits
        with Catalog.open(index_dir) as cat:
            if choice.revision is None and stored_encoder(cat) is not None:
                encoder_cfg = stored_encoder_config(cat, model=choice.model)
            if frames is None and choice.video_model is None:  # a video model named: its frames wanted
                frames = recorded_frames(cat)
            stored_video = stored_encoder(cat, EncoderRole.VIDEO)
    frames = VideoConfig().frames if frames is None else frames
    if choice.video_model is None and choice.video_revision is None and stored_video is not None:
        video_cfg = video_config(stored_video["model"], stored_video.get("commit") or stored_video.get("revision"), frames)
    else:
        video_cfg = video_config(choice.video_model or VideoConfig().model, choice.video_revision, frames)
    text_model = choice.text_model or encoder_cfg.text_model
    return replace(encoder_cfg, device=choice.device, batch_size=choice.batch_size, text_model=text_model,
                   precision=choice.precision), video_cfg


def run_window(index_dir: Path, window_s: float | None, hop_s: float | None) -> WindowConfig:
    """The windowing of a run into ``index_dir``: the asked window, its hop the asked one or the window; where no
    window is asked, an existing index's own (its hop too, unless asked), else the default (10 s, hop 10 s). A
    window or hop that differs from the index's is refused later, when the run opens it (exit 6). UsageError for a
    window or hop out of range."""
    if window_s is None:
        stored = None
        if (index_dir / "catalog.sqlite").exists():
            with Catalog.open(index_dir) as cat:
                stored = stored_window(cat)
        window_s = WindowConfig().window_s if stored is None else stored.window_s
        if hop_s is None and stored is not None:
            hop_s = stored.hop_s
    try:
        return WindowConfig(window_s=window_s, hop_s=hop_s if hop_s is not None else window_s)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class RunModels:
    """The audio and video encoders and the index's bridge, each loaded on first use only (an unchanged
    folder loads none). Loading an encoder records it in a new index, or checks it against the recorded one.

    ``window``: the run's windowing; its sample rate becomes the audio encoder's once that is loaded.
    """

    def __init__(self, loader: EncoderLoader, cfg: EncoderConfig, video_loader: VideoEncoderLoader | None,
                 video_cfg: VideoConfig, catalog: Catalog, where: str, window: WindowConfig) -> None:
        self._loader, self.cfg, self._catalog, self._where = loader, cfg, catalog, where
        self.window = window
        self._video_loader, self.video_cfg = video_loader, video_cfg
        self._audio: Encoder | None = None
        self._video: FrameEncoder | None = None
        self._bridge: Any = _UNSET

    @property
    def loaders(self) -> tuple[EncoderLoader, VideoEncoderLoader | None]:
        """The audio and video encoder loaders (another engine loads the same models on its workers)."""
        return self._loader, self._video_loader

    @property
    def batch_size(self) -> int:
        """Windows per encoder call (and per committed batch of short files)."""
        return self.cfg.batch_size

    def audio(self, *, defer: bool = False) -> Encoder:
        """The audio encoder, loaded and bound to the index (with the windows' sample rate) on first use.
        ``defer``: this process embeds nothing, so a CLAP folder's encoder is read without torch and its model
        built only if asked to embed after all (``EncoderConfig.defer_model``, ``encoders/clap/record.py``)."""
        if self._audio is None:
            audio = self._loader(replace(self.cfg, defer_model=True) if defer else self.cfg)
            # the window at the encoder's rate, refused (before anything is recorded) if the model hears less
            window = fit_window(replace(self.window, sample_rate=int(audio.sample_rate)), audio)
            bind_encoder(self._catalog, identity_of(audio), self._where)
            text = text_identity_of(audio)
            if text is not None:
                bind_encoder(self._catalog, text, self._where, role=EncoderRole.TEXT)
            self.window = bind_window(self._catalog, window, self._where)
            if not defer:
                ask_for_lanes(audio)
            self._audio = audio
        return self._audio

    def bind_text(self) -> None:
        """Record (or check) the asked text model when no audio encoder is loaded (nothing to embed): an index
        gains its text side without re-embedding; its words are embedded only when a bridge is trained."""
        if self.cfg.text_model is None or self._audio is not None:
            return
        check_text_model(self.cfg)
        stored = stored_encoder(self._catalog)
        dim = int(stored["dim"]) if stored else None
        if dim is None:
            return  # a new index records its text side with its audio encoder
        text = load_text_encoder(self.cfg.text_model, dim)
        bind_encoder(self._catalog, identity_of(text), self._where, role=EncoderRole.TEXT)

    def video(self) -> FrameEncoder:
        """The video encoder (CLIP frames, or CAVP: an ``AudioVisualEncoder``), loaded and bound on first use."""
        if self._video is None:
            if self._video_loader is None:
                raise ModelUnavailableError("no video encoder is configured: pass --video-model or --no-frames")
            self._video = self._video_loader(self.video_cfg, self.cfg.device)
            bind_encoder(self._catalog, identity_of(self._video), self._where, role=EncoderRole.VIDEO)
        return self._video

    def bridge(self) -> Bridge | None:
        """The index's DiffGAP bridge, loaded once (None without one): new windows get bridged vectors too."""
        if self._bridge is _UNSET:
            self._bridge = load_index_bridge(Path(self._where), self._catalog)
        return self._bridge

    @property
    def is_cavp(self) -> bool:
        """Whether the video model is CAVP, which embeds every window's sound too (``indexing/embed.py``,
        ``indexing/cavp_run.py``)."""
        from diffgap_search.encoders.cavp.encoder import is_cavp_reference

        return self.video_cfg.frames and is_cavp_reference(self.video_cfg.model)

    def load_for(self, kinds: set[str], *, embeds: bool = True) -> None:
        """Load what these file kinds need now, so a missing model fails before anything is embedded.
        ``embeds`` False: another engine embeds (Ray's actors), so the audio encoder is bound without its model,
        or torch, where it can be (``audio(defer=True)``)."""
        self.audio(defer=not embeds)
        self.bridge()
        if ("video" in kinds and self.video_cfg.frames) or self.is_cavp:
            self.video()

    def dim_of(self, space: str) -> int | None:
        """D of ``space``'s vectors, as its encoder was recorded (None: not recorded yet)."""
        return space_dim(self._catalog, space)


class Loading:
    """``models.load_for(kinds)`` on a thread of its own, so the decode workers start on the first files while
    the encoders load (``runner._Run.embed_all``); :meth:`wait` joins it and raises what the load raised."""

    def __init__(self, models: RunModels, kinds: set[str]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(models, kinds), name="dgsearch-load", daemon=True)
        self._thread.start()

    def _load(self, models: RunModels, kinds: set[str]) -> None:
        try:
            models.load_for(kinds)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the models are loaded; raise the load's exception, if it failed."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
