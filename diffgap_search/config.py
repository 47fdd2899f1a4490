"""Configuration: one frozen dataclass per stage, with defaults; CLI flags map to fields one to one.

The resolved configuration of an index (windowing, encoder, FAISS rule) is written into the catalog's
``meta`` table when the index is created, so a later run can refuse settings that would mix vectors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from diffgap_search.errors import UsageError

DEFAULT_MODEL = "laion/clap-htsat-unfused"
DEFAULT_INDEX = "indexes/default"
INDEX_ENV = "DGSEARCH_INDEX"


C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """An option with fixed choices: each member is the string the CLI takes (``str(member)`` and JSON give
    that string), so a member and its string compare equal."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def parse(cls: type[C], value: str, error: str) -> C:
        """The member whose string is ``value`` (a member passes through); UsageError with ``error``
        (``str.format``-ted with ``value``) when there is none."""
        try:
            return cls(value)
        except ValueError:
            raise UsageError(error.format(value)) from None


class Device(Choice):
    """Where models run (``--device``): ``auto`` is CUDA when torch sees a GPU, else the CPU. ``cuda:N`` (one
    GPU by number) is accepted beside the members; ``encoders/runtime.resolve_device`` parses the value."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def device_name(name: str) -> str:
    """``name`` as a device (``auto``, ``cpu``, ``cuda`` or ``cuda:N``, case and spaces ignored), checked without
    torch (whether CUDA is there is the encoder's to say). Raises UsageError for anything else."""
    norm = name.strip().lower()
    index = norm.removeprefix(f"{Device.CUDA.value}:")
    if norm in {d.value for d in Device} or (index != norm and index.isdigit()):
        return norm
    raise UsageError(f"unknown device '{name}': use one of {', '.join(d.value for d in Device)} (or cuda:N)")


class FrameFit(Choice):
    """How a video frame becomes a square of ``VideoConfig.size`` pixels: ``crop`` scales the short side and
    centre-crops (CLIP), ``squash`` scales the whole frame, aspect not kept (CAVP: Diff-Foley's ``Resize``)."""

    CROP = "crop"
    SQUASH = "squash"


def choices_text(choices: type[Choice]) -> str:
    """``"auto, cpu or cuda"``: an enum's values for a help text."""
    values = [str(member) for member in choices]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


class EncoderRole(Choice):
    """Which of an index's two encoders a record is about; the value is its key in the catalog's ``meta``.

    ``AUDIO``: the audio (and text) encoder, CLAP or aisfx. ``VIDEO``: the video encoder, CLIP frames or CAVP.
    ``TEXT``: a text encoder of its own beside an audio-only one (``--text-model wordllama`` with aisfx), whose
    words reach the audio only through a DiffGAP bridge.
    """

    AUDIO = "encoder"
    VIDEO = "video_encoder"
    TEXT = "text_encoder"


VIDEO_SPACE = "video"  # video windows, embedded by the video encoder (CLIP frames or CAVP)
CAVP_SPACE = "cavp_audio"  # audio windows in CAVP's space, embedded by CAVP, the video encoder
_VIDEO_ENCODER_SPACES = frozenset({VIDEO_SPACE, CAVP_SPACE})


def encoder_role(space: str) -> EncoderRole:
    """The encoder whose vectors (and dimension) a vector space holds: ``video`` and ``cavp_audio`` the video
    encoder's; ``audio`` and the bridged spaces (``audio_as_text``, ``audio_as_video``) the audio encoder's."""
    return EncoderRole.VIDEO if space in _VIDEO_ENCODER_SPACES else EncoderRole.AUDIO


@dataclass(frozen=True)
class EncoderIdentity:
    """What an index records of an encoder that made its vectors, and checks on every later load.

    ``fingerprint`` is the weights' sha256 hex digest, ``dim`` D of its ``(N, D) float32`` vectors,
    ``sample_rate`` the audio rate it reads (None for a frames-only encoder), ``modalities`` what it embeds;
    ``provenance`` where the weights came from (``source``, ``repo_id``, ``revision``, ``commit`` ...);
    ``preprocessing`` the version of the pipeline behind each space's vectors, ``{space: version}`` (a space
    not named is at version 1, as every index recorded before versions were is).
    """

    model: str
    fingerprint: str
    dim: int
    sample_rate: int | None = None
    modalities: tuple[str, ...] = ("audio", "text")
    provenance: Mapping[str, Any] = field(default_factory=dict)
    preprocessing: Mapping[str, int] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON-able ``meta`` record: model, fingerprint, dim, sample_rate, modalities, the preprocessing
        version of every space it embeds, then the provenance."""
        out: dict[str, Any] = {"model": self.model, "fingerprint": self.fingerprint, "dim": self.dim,
                               "sample_rate": self.sample_rate, "modalities": list(self.modalities),
                               "preprocessing": {m: int(self.preprocessing.get(m, 1)) for m in self.modalities}}
        out.update(self.provenance)
        return out


MIN_WINDOW_S = 0.05  # shortest --window / --hop: 50 ms (a drum hit's attack); below, a window is a few samples
MAX_WINDOW_S = 60.0  # longest --window: one window is decoded, padded and held whole (60 s at 48 kHz = 11.5 MB)


@dataclass(frozen=True)
class WindowConfig:
    """How audio is cut into fixed windows before encoding.

    ``window_s`` is the length of a window's seconds (10 s by default: what CLAP hears at once); ``hop_s`` <
    ``window_s`` gives overlapping windows. A clip shorter than a window, and the last window of a longer clip,
    are repeat-padded the way LAION-CLAP's ``repeatpad`` does (never cropped at random). ``sample_rate`` is
    the encoder's. ``model_samples`` is what the audio model hears at once (480 000 for CLAP, 0 for a model
    that takes any length, such as aisfx): a window shorter than that is repeat-padded to it, as a short clip
    is (``embed_samples``), keeping its own start and end; it is the encoder's, never recorded in the index.
    """

    window_s: float = 10.0
    hop_s: float = 10.0
    sample_rate: int = 48_000
    model_samples: int = 0

    def __post_init__(self) -> None:
        if not MIN_WINDOW_S <= self.window_s <= MAX_WINDOW_S:  # also False for NaN
            raise ValueError(
                f"window must be between {MIN_WINDOW_S:g} and {MAX_WINDOW_S:g} seconds, got {self.window_s:g}")
        if not MIN_WINDOW_S <= self.hop_s <= self.window_s:
            raise ValueError(f"hop must be between {MIN_WINDOW_S:g} s and the window ({self.window_s:g} s), "
                             f"got {self.hop_s:g}")
        if self.model_samples < 0:
            raise ValueError(f"model_samples must be >= 0, got {self.model_samples}")

    @property
    def window_samples(self) -> int:
        """W: the samples a window covers."""
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.sample_rate))

    @property
    def embed_samples(self) -> int:
        """The samples of each window handed to the encoder: ``max(W, model_samples)`` (repeat-padded)."""
        return max(self.window_samples, self.model_samples)


@dataclass(frozen=True)
class EncoderConfig:
    """Which model embeds audio and text, and where it runs.

    ``model`` is a Hugging Face hub id, a local directory in the same layout (config.json, the weights,
    tokenizer and preprocessor files), an original LAION-CLAP checkpoint file (``*.pt``) or ``aisfx``;
    ``revision`` pins a hub model to a branch, tag or commit. ``device`` is a ``Device`` (``auto``: CUDA when
    present, ``cpu``, ``cuda``) or ``cuda:N``. ``text_model``: a separate text encoder for an audio-only
    ``model`` (``wordllama``), None for none (CLAP embeds text itself). ``precision``: the path CLAP's towers
    run on (``auto``, ``fp32``, ``bf16``, ``int8``, ``onnx``, ``onnx-int8``), aisfx's network (``auto``, ``fp32``,
    ``bf16``); every path gives vectors within cosine 0.999 of float32's, so it is a property of this run, not of
    the index. ``preprocessing``: the
    versions the index's vectors were made with, by space (``EncoderIdentity.preprocessing``; a space it does not
    name is at 1), None for a new index (this dgsearch's own); a model that can still make an older version makes
    the index's (aisfx's ``audio`` 1), so an old index keeps answering and growing without mixing two.
    """

    model: str = DEFAULT_MODEL
    device: str = Device.AUTO
    batch_size: int = 16
    revision: str | None = None
    text_model: str | None = None
    precision: str = "auto"  # the audio model's precision path (encoders/precision.Precision); not part of the index
    defer_model: bool = False  # the process records the encoder, embeds nothing: a CLAP folder's is read without torch
    preprocessing: dict[str, int] | None = None

    def preprocessing_of(self, space: str, current: int) -> int:
        """The version of ``space``'s preprocessing to make: the index's (1 where it names none), ``current``
        (this dgsearch's) for a new index."""
        return current if self.preprocessing is None else int(self.preprocessing.get(space, 1))


DEFAULT_VIDEO_MODEL = "openai/clip-vit-base-patch32"


@dataclass(frozen=True)
class VideoConfig:
    """How video frames are sampled and embedded (CLIP's image tower, frames mean-pooled per window).

    ``revision`` pins a hub model. ``frames`` off indexes only videos' soundtracks (no video model needed). ``fps`` 4 as CAVP does;
    ``size`` is the square side frames are resized and centre-cropped to.
    """

    model: str = DEFAULT_VIDEO_MODEL
    revision: str | None = None
    frames: bool = True
    fps: float = 4.0
    size: int = 224
    batch_size: int = 32
    fit: str = FrameFit.CROP  # SQUASH for CAVP: the whole frame to size x size (Diff-Foley's Resize((224, 224)))


@dataclass(frozen=True)
class FaissConfig:
    """How the index type follows the number of vectors (autofaiss's rule, measured in benchmarks/).

    Exact inner-product search (``IndexFlatIP``) up to ``flat_max`` vectors; above it, an inverted-file
    index with ``nlist ≈ ivf_lists_per_sqrt · √N`` lists, trained on at most ``ivf_train_per_list``
    samples per list, searched with ``nprobe`` lists. Vectors are L2-normalised, so inner product is
    cosine similarity. Search runs on the CPU: faiss-gpu, where installed, is not used yet.

    Above ``memory_budget_mb`` (MB of RAM per space's index; None: the budget recorded with the space, else
    an eighth of the machine's RAM: ``store/index_budget.py``) a compressed OPQ/IVF-PQ index with
    ``pq_bytes``-byte codes (its OPQ rotation trained in ``opq_iterations`` rounds); its searches take ``rescore_factor`` times as many candidates and re-score
    them exactly from the float32 vectors. It is built in shards of ``shard_vectors`` vectors (``m + 8`` bytes
    each in memory while filled) merged into on-disk lists that queries memory-map (``store/ondisk_index.py``).
    """

    flat_max: int = 50_000
    ivf_lists_per_sqrt: float = 4.0
    ivf_train_per_list: int = 64
    nprobe: int = 32
    memory_budget_mb: float | None = None
    pq_bytes: int = 64
    opq_iterations: int = 10
    rescore_factor: int = 4
    shard_vectors: int = 1_000_000


class SearchMode(Choice):
    """How a text query is ranked: ``semantic`` (embeddings), ``keyword`` (file names, folders, captions and
    tags; no model) or ``hybrid`` (both, fused by reciprocal rank: ``search/keyword.py``). One default,
    :data:`DEFAULT_MODE`, for the library, the CLI and the web API alike."""

    HYBRID = "hybrid"
    SEMANTIC = "semantic"
    KEYWORD = "keyword"

    @classmethod
    def of(cls, value: str) -> SearchMode:
        """``"hybrid"`` -> ``SearchMode.HYBRID``; UsageError naming the choices otherwise."""
        return cls.parse(value, "--mode must be one of " + ", ".join(m.value for m in cls) + ", got {!r}")


DEFAULT_MODE = SearchMode.HYBRID  # what a person typing words expects: names and tags beside the embedding


@dataclass(frozen=True)
class SearchConfig:
    """Query-time options: how many hits, thresholds, filters, grouping, ranking mode, the bridge on or off."""

    top_k: int = 10
    min_score: float | None = None
    kind: str | None = None
    path_glob: str | None = None
    group_by_file: bool = True
    mode: SearchMode = DEFAULT_MODE
    use_bridge: bool = True  # False: plain cosine search without the index's DiffGAP bridge (--no-bridge)
    all_copies: bool = False  # True: copies (same content hash) shown apart, not as one hit (--all-copies)
    # file filters, applied before top-k (see search/filters.py): seconds, Hz, channel count, a folder
    duration_min: float | None = None
    duration_max: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    folder: str | None = None
    tag: str | None = None  # an embedded tag's value contains this (``KEY=TEXT``: tag KEY's value), any case
    label: str | None = None  # the file carries this label of the user's (``dgsearch label``), any case
    pinpoint: bool = False  # narrow each hit's seconds to the span of its window that matches best (search/pinpoint.py)


@dataclass(frozen=True)
class IndexingConfig:
    """Options of an indexing run beyond windowing and the encoder."""

    files_per_batch: int = 32
    decode_workers: int = field(default_factory=lambda: max(1, min(4, (os.cpu_count() or 2) - 1)))


class PairSet(Choice):
    """``dgsearch train --pairs``: which pairs train the bridge (captions, video windows, or both)."""

    TEXT = "text"
    VIDEO = "video"
    ALL = "all"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The pair kinds (modalities paired with audio) it stands for: ``("text",)``, ``("video",)`` or both."""
        return ("text", "video") if self is PairSet.ALL else (self.value,)


class Captions(Choice):
    """``dgsearch train --captions``: the text pairs' captions. ``per-file``: each file's sidecar captions where
    it has any, its weak captions (name, tags) where it has none; ``auto`` resolves to ``sidecars`` where at
    least half the indexed files have sidecar captions, ``per-file`` where fewer do, ``names`` where none does
    (``bridge/train.py``)."""

    AUTO = "auto"
    SIDECARS = "sidecars"
    NAMES = "names"
    ALL = "all"
    PER_FILE = "per-file"


class ExportFormat(Choice):
    """``dgsearch export --format``: ``.npy`` with a JSON sidecar, or one ``.parquet`` (needs pyarrow)."""

    NPY = "npy"
    PARQUET = "parquet"


class ExportWindows(Choice):
    """``dgsearch export --windows``: every stored window bridged to the text side or to the video side."""

    TEXT = "text"
    VIDEO = "video"


DEFAULT_PAIRS = PairSet.ALL
DEFAULT_CAPTIONS = Captions.AUTO
DEFAULT_EXPORT_FORMAT = ExportFormat.NPY


def resolve_index_dir(index: str | os.PathLike[str] | None) -> Path:
    """The index folder for ``--index NAME|PATH``: a bare name means ``indexes/NAME``; env ``DGSEARCH_INDEX``."""
    value = str(index) if index else os.environ.get(INDEX_ENV) or DEFAULT_INDEX
    path = Path(value)
    if len(path.parts) == 1 and not value.startswith(".") and not path.is_absolute():
        path = Path("indexes") / value
    return path


def index_option(index_dir: Path) -> str:
    """What to pass as ``--index`` to name the folder ``index_dir`` again (``resolve_index_dir``'s inverse): a
    one-part relative folder is written ``./NAME``, since a bare ``NAME`` means ``indexes/NAME``."""
    text = str(index_dir)
    return f"./{text}" if len(index_dir.parts) == 1 and not index_dir.is_absolute() and text != "." else text


def env_seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds from the environment variable ``name``; ``default`` when it is unset
    or blank. Raises UsageError (exit 2) for any other value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value
