"""Load an original LAION-CLAP ``.pt`` checkpoint (``630k-audioset-best.pt``, ``music_audioset_epoch_15_esc_90.14.pt``,
...) into transformers' ``ClapModel`` without the laion-clap package.

``read_laion_checkpoint(path)`` opens the file with PyTorch's restricted unpickler only
(``torch.load(..., weights_only=True)``: tensors and plain data, never an arbitrary Python object), takes
the state dict out of the trainer's ``{"epoch", "name", "state_dict", "optimizer", ...}`` dict or a bare
state dict (``module.`` prefixes stripped, as LAION's ``factory.load_state_dict`` does), reads the
architecture from the tensors' shapes (``encoders/clap/laion_shapes.py``), renames the tensors (``encoders/clap/laion_keys.py``)
and checks that they fill a ``ClapModel`` of that config exactly. ``build_clap_model`` makes the model.

NumPy scalars: LAION's trainer sets each optimizer group's learning rate from ``np.cos``
(``training/scheduler.py``, ``cosine_lr``), so every checkpoint saved with its optimizer pickles
``numpy.core.multiarray.scalar`` (and ``numpy.dtype``), which the restricted unpickler refuses. These
few names, and nothing else, are allow-listed as *inert stand-ins* (``_InertNumpyStandIn``): an object
of our own that ignores its arguments, so no NumPy (or any other) code runs and the learning rate is
simply not read. A stand-in found where a weight should be is refused like any non-tensor.

Every failure is a one-line ``ModelUnavailableError`` saying what was found and what is supported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from diffgap_search.encoders.clap import laion_shapes as shapes
from diffgap_search.encoders.clap.laion_keys import map_laion_keys
from diffgap_search.encoders.weights.convert import load_restricted
from diffgap_search.errors import ModelUnavailableError

if TYPE_CHECKING:
    from transformers import ClapConfig, ClapModel

# ClapModel buffers the model computes itself from its config (and ``read`` does not provide).
RECOMPUTED_BUFFERS = (
    "attention.self.relative_position_index",  # ClapAudioSelfAttention.create_relative_position_index
    "embeddings.position_ids",  # arange(max_position_embeddings)
    "embeddings.token_type_ids",  # zeros
)
SUPPORTED = "LAION-CLAP HTSAT audio + RoBERTa text checkpoints (630k-*, music_*), with or without aff_2d fusion"


@dataclass(frozen=True)
class LaionCheckpoint:
    """A LAION-CLAP checkpoint renamed for transformers.

    Attributes:
        config: ``ClapConfig`` read from the tensors' shapes.
        state_dict: transformers name -> tensor; float32 weights (``qkv`` split into query/key/value) and the
            int64 ``num_batches_tracked`` counters; every ``ClapModel`` entry but ``RECOMPUTED_BUFFERS``.
        fusion: whether the audio branch has LAION's ``aff_2d`` feature fusion (``mel_conv2d`` + AFF).
        variant: ``HTSAT-tiny``, ``HTSAT-base``, ``HTSAT-large`` or ``HTSAT(embed_dim=…, depths=…)``,
            ``+fusion`` appended when fused; read from shapes, never from the file name.
        dropped_keys: LAION keys deliberately not mapped (``laion_mapping.DROPPED_GROUPS`` says why), sorted.
        feature_extractor_kwargs: ``ClapFeatureExtractor(**kwargs)`` computing LAION-CLAP's features.
    """

    config: ClapConfig
    state_dict: dict[str, torch.Tensor]
    fusion: bool
    variant: str
    dropped_keys: tuple[str, ...]
    feature_extractor_kwargs: dict[str, Any]


def read_laion_checkpoint(path: Path) -> LaionCheckpoint:
    """Read ``path`` (a LAION-CLAP ``.pt``) into a ``LaionCheckpoint``; raises ``ModelUnavailableError``."""
    path = Path(path)
    raw = load_weights_only(path)
    try:
        return convert_laion_state_dict(extract_state_dict(raw))
    except ModelUnavailableError as error:
        raise ModelUnavailableError(f"cannot use '{path}': {error}") from error


def convert_laion_state_dict(sd: Mapping[str, torch.Tensor]) -> LaionCheckpoint:
    """A LAION-CLAP state dict (no ``module.`` prefix) -> ``LaionCheckpoint`` (config, renamed tensors, checks)."""
    _check_branches(sd)
    fusion = shapes.fusion_type(sd)
    if fusion not in (None, "aff_2d"):
        raise ModelUnavailableError(
            f"its audio branch uses LAION's '{fusion}' feature fusion; transformers implements only 'aff_2d'"
        )
    config = _clap_config(sd, fusion)
    mapped = map_laion_keys(sd)
    if mapped.unmapped:
        raise ModelUnavailableError(
            f"{len(mapped.unmapped)} of its tensors have no place in transformers' ClapModel "
            f"(first: {mapped.unmapped[0]}); supported: {SUPPORTED}"
        )
    _check_fits(mapped.state_dict, config)
    audio = config.audio_config
    kwargs = shapes.feature_extractor_kwargs(sd, int(audio.num_mel_bins), fusion is not None)
    return LaionCheckpoint(
        config=config,
        state_dict=mapped.state_dict,
        fusion=fusion is not None,
        variant=shapes.variant_name(audio.to_dict(), int(kwargs["fft_window_size"])),
        dropped_keys=mapped.dropped,
        feature_extractor_kwargs=kwargs,
    )


def build_clap_model(ckpt: LaionCheckpoint) -> ClapModel:
    """A float32 ``ClapModel`` in eval mode holding exactly ``ckpt``'s tensors (``load_state_dict(strict=True)``).

    Only ``RECOMPUTED_BUFFERS`` come from the model itself; random initialisation is skipped, since every
    weight is overwritten (those buffers are set in the modules' constructors, not by the initialiser).
    """
    from transformers import ClapModel

    with _no_weight_init():
        model = ClapModel(ckpt.config)
    own = model.state_dict()
    full = dict(ckpt.state_dict)
    for name, tensor in own.items():
        if name not in full and name.endswith(RECOMPUTED_BUFFERS):
            full[name] = tensor
    model.load_state_dict(full, strict=True)
    return model.float().eval()


def load_weights_only(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` (``weights.load_restricted``) with the inert NumPy stand-ins
    allowed for this one load."""
    return load_restricted(path, allow=_numpy_stand_ins)


def extract_state_dict(raw: Any) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: ``raw["state_dict"]`` (LAION's trainer) or ``raw`` itself,
    with a ``module.`` prefix (DistributedDataParallel) stripped when every key carries it."""
    if isinstance(raw, Mapping) and "state_dict" in raw:
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not raw:
        raise ModelUnavailableError(
            f"it holds a {type(raw).__name__}, not a LAION-CLAP state dict; supported: {SUPPORTED}"
        )
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelUnavailableError(
                f"it is not a state dict: entry {key!r} holds a {type(value).__name__}, not a tensor; "
                f"supported: {SUPPORTED}"
            )
    if all(key.startswith("module.") for key in raw):
        return {key[len("module."):]: value for key, value in raw.items()}
    return dict(raw)


def _check_branches(sd: Mapping[str, torch.Tensor]) -> None:
    """Refuse anything but an HTSAT audio branch with a RoBERTa text branch, naming what was found."""
    audio, text = shapes.audio_branch_kind(sd), shapes.text_branch_kind(sd)
    if audio == "none" and text == "none":
        prefixes = sorted({key.split(".", 1)[0] for key in sd})
        found = ", ".join(prefixes[:5]) + (", ..." if len(prefixes) > 5 else "")
        raise ModelUnavailableError(
            f"it is not a LAION-CLAP checkpoint: none of its {len(sd)} tensors is under audio_branch. or "
            f"text_branch. (found {found}); supported: {SUPPORTED}"
        )
    if audio != "htsat":
        names = {"pann": "a PANN (CNN) audio branch", "none": "no audio branch"}
        found = names.get(audio, "an unrecognised audio branch")
        raise ModelUnavailableError(f"it has {found}; supported: {SUPPORTED}")
    if text != "roberta":
        found = {
            "bert": "a BERT text branch (2 token types; RoBERTa has 1)",
            "bart": "a BART text branch",
            "transformer": "a CLIP-style 'transformer' text branch",
            "none": "no text branch",
        }.get(text, "an unrecognised text branch")
        raise ModelUnavailableError(f"it has {found}; supported: {SUPPORTED}")


def _clap_config(sd: Mapping[str, torch.Tensor], fusion: str | None) -> ClapConfig:
    from transformers import ClapConfig

    try:
        return ClapConfig(
            text_config=shapes.infer_text_config(sd),
            audio_config=shapes.infer_audio_config(sd, fusion),
            projection_dim=shapes.projection_dim(sd),
        )
    except ModelUnavailableError:
        raise
    except Exception as error:  # noqa: BLE001 - transformers' config validation raises several kinds
        raise ModelUnavailableError(f"its tensors describe no valid CLAP architecture ({error})") from error


def _check_fits(state_dict: Mapping[str, torch.Tensor], config: ClapConfig) -> None:
    """Every ``ClapModel(config)`` entry but ``RECOMPUTED_BUFFERS`` present with its shape, nothing extra.
    The model is built on the meta device: no memory, a few milliseconds."""
    from transformers import ClapModel

    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in ClapModel(config).state_dict().items()}
    missing = sorted(n for n in expected if n not in state_dict and not n.endswith(RECOMPUTED_BUFFERS))
    extra = sorted(n for n in state_dict if n not in expected)
    wrong = sorted(n for n in state_dict if n in expected and tuple(state_dict[n].shape) != expected[n])
    if missing:
        raise ModelUnavailableError(
            f"it lacks {len(missing)} tensor(s) that ClapModel needs (first: {missing[0]}); supported: {SUPPORTED}"
        )
    if extra or wrong:
        name = (extra or wrong)[0]
        found = tuple(state_dict[name].shape)
        raise ModelUnavailableError(
            f"its tensors do not fit the architecture read from their shapes ({name}: {found}, "
            f"expected {expected.get(name, 'no such tensor')})"
        )


class _InertNumpyStandIn:
    """Takes the place of a pickled NumPy scalar, dtype or array: accepts any arguments and state, keeps
    nothing, runs nothing. Only ever found in a checkpoint's metadata (optimizer learning rates)."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> _InertNumpyStandIn:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "<numpy object, not loaded>"


_NUMPY_NAMES = (
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
)


@contextlib.contextmanager
def _numpy_stand_ins() -> Iterator[None]:
    """Allow-list ``_NUMPY_NAMES`` as ``_InertNumpyStandIn`` for one ``torch.load`` (torch >= 2.5)."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        yield
        return
    with safe_globals([(_InertNumpyStandIn, name) for name in _NUMPY_NAMES]):
        yield


@contextlib.contextmanager
def _no_weight_init() -> Iterator[None]:
    """transformers' ``no_init_weights`` (5.x: ``transformers.initialization``; 4.x: ``modeling_utils``)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights  # type: ignore[no-redef]
        except ImportError:
            yield
            return
    with no_init_weights():
        yield
