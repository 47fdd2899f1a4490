"""Turn a configuration into a loaded encoder: the audio encoder an ``EncoderConfig`` names, the video
encoder a ``VideoConfig`` (``--video-model``) names, and how that video model's frames are sampled.

Audio: ``cfg.model`` is ``aisfx`` (the sound-effects network inside the ``aisfx`` package, audio only:
``encoders/aisfx/``) or a CLAP model (a hub id, a model directory or an original LAION-CLAP checkpoint:
``encoders/clap/load.py``). Video: ``cavp`` or a CAVP checkpoint file (``encoders/cavp/``), else CLIP's image
tower (a hub id or a model directory: ``encoders/clip/``).

Text beside an audio-only model: ``cfg.text_model`` ``wordllama`` (``encoders/wordllama/``) joins aisfx as
its text side (``encoders/paired.py``); its words reach the sounds only through the index's bridge.

Every way a load can fail ends as one ``ModelUnavailableError`` whose message says what is wrong and what
to do (``UsageError`` for an unknown device). Importing this module is cheap: torch and transformers are
imported only when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffgap_search.config import Device, EncoderConfig, FrameFit, VideoConfig
from diffgap_search.encoders.cavp.encoder import is_cavp_reference
from diffgap_search.errors import UsageError

if TYPE_CHECKING:
    from diffgap_search.encoders.base import Encoder, FrameEncoder, TextEncoder

AISFX = "aisfx"
TEXT_MODELS = ("wordllama",)  # what --text-model takes
CAVP_BATCH = 8  # 4 s clips of 16 x 224 x 224 frames per forward pass (~80 MB of pixels)


def load_encoder(cfg: EncoderConfig, *, progress: bool = True, audio_on_demand: bool = False) -> Encoder:
    """Load the audio encoder ``cfg`` names, downloading it into the Hugging Face cache on first use.

    ``progress`` shows download progress on stderr. ``audio_on_demand`` (queries): aisfx (alone or paired with
    WordLlama) is loaded at its first audio window, not now, so words are searched without torch, and an audio
    window runs through this machine's checked ONNX export where there is one (``encoders/aisfx/on_demand.py``;
    CPU and auto devices: a named one loads now); a CLAP folder model is a record whose words run through this
    machine's checked ONNX export of its text tower, where there is one (``encoders/clap/text_onnx.py``).
    Raises ``ModelUnavailableError`` (any reason the weights cannot be had) or ``UsageError`` (an unknown
    ``cfg.device``).
    """
    check_text_model(cfg)
    if cfg.model == AISFX:
        from diffgap_search.encoders.aisfx.package import PREPROCESSING, checked_precision, supported_version

        version = supported_version(cfg.preprocessing_of("audio", PREPROCESSING["audio"]))  # the index's
        checked_precision(cfg.precision)  # before anything loads (a word query may never load the network)
        if audio_on_demand and str(cfg.device) in (Device.AUTO, Device.CPU):
            from diffgap_search.encoders.aisfx.on_demand import OnDemandAisfx

            def load_now() -> Encoder:
                from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder

                return load_aisfx_encoder(cfg.device, cfg.batch_size, version=version, precision=cfg.precision)

            audio = OnDemandAisfx(load_now, version, cfg.precision)  # type: ignore[arg-type]
            if cfg.text_model is None:
                return audio  # type: ignore[return-value]
            from diffgap_search.encoders.paired import PairedEncoder

            return PairedEncoder(audio, load_text_encoder(cfg.text_model, audio.dim))  # type: ignore[arg-type, return-value]
        from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder

        encoder = load_aisfx_encoder(cfg.device, cfg.batch_size, version=version, precision=cfg.precision)
        encoder.provenance = {"source": "package"}
        if cfg.text_model is not None:
            from diffgap_search.encoders.paired import PairedEncoder

            return PairedEncoder(encoder, load_text_encoder(cfg.text_model, encoder.dim))  # type: ignore[return-value]
        return encoder
    from diffgap_search.encoders.clap.load import load_clap
    from diffgap_search.encoders.weights.progress import stderr_download_progress

    return load_clap(cfg, stderr_download_progress(progress), query=audio_on_demand)


def check_text_model(cfg: EncoderConfig) -> None:
    """Refuse a ``--text-model`` that is unknown, or given to a model that embeds text itself (``UsageError``)."""
    if cfg.text_model is None:
        return
    if cfg.text_model not in TEXT_MODELS:
        raise UsageError(f"--text-model must be {' or '.join(TEXT_MODELS)}, got {cfg.text_model!r}")
    if cfg.model != AISFX:
        raise UsageError(f"--text-model is for an audio-only --model ({AISFX}); {cfg.model!r} embeds text itself")


def load_text_encoder(name: str, dim: int) -> TextEncoder:
    """The text encoder ``name`` (``TEXT_MODELS``), its vectors zero-padded to ``dim`` (the audio encoder's D).
    Raises ``ModelUnavailableError`` when its package is missing."""
    from diffgap_search.encoders.wordllama.encoder import load_wordllama_encoder

    return load_wordllama_encoder(dim)


def video_config(model: str, revision: str | None = None, frames: bool = True) -> VideoConfig:
    """The ``VideoConfig`` for ``model``: CAVP squashes whole frames to 224 x 224 at 4 fps (Diff-Foley's
    ``Resize((224, 224))``), CLIP centre-crops them."""
    if is_cavp_reference(model):
        return VideoConfig(model=model, revision=revision, frames=frames, fps=4.0, size=224, fit=FrameFit.SQUASH,
                           batch_size=CAVP_BATCH)
    return VideoConfig(model=model, revision=revision, frames=frames)


def load_video_model(cfg: VideoConfig, device: str) -> FrameEncoder:
    """The encoder ``cfg.model`` names, on ``device`` (an indexing run's video loader)."""
    if is_cavp_reference(cfg.model):
        from diffgap_search.encoders.cavp.encoder import load_cavp_encoder

        return load_cavp_encoder(cfg.model, device, cfg.batch_size, revision=cfg.revision)
    from diffgap_search.encoders.clip.encoder import load_clip_encoder

    return load_clip_encoder(cfg.model, device, cfg.batch_size, revision=cfg.revision, fps=cfg.fps)


def load_query_video_model(model: str, device: str, revision: str | None) -> FrameEncoder:
    """The index's video encoder for a query (``search.Searcher``'s video loader)."""
    return load_video_model(video_config(model, revision), device)


def ask_for_lanes(audio: object) -> None:
    """Make ``audio`` an indexing run's encoder, in either engine: a CLAP encoder runs its long bf16 calls in two
    lanes (``encoders/clap/lanes.py``); other encoders are left as they are (and torch is not imported for them)."""
    if hasattr(audio, "lanes_wanted"):
        from diffgap_search.encoders.clap.lanes import index_in_lanes

        index_in_lanes(audio)
