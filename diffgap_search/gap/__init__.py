"""DiffGAP: a small conditional diffusion model inside the contrastive embedding space.

It generates, for an embedding of one modality, the embedding of its counterpart in another
(``audio|text``, ``text|audio``, ``audio|video``, ``video|audio``), which narrows the modality gap at
retrieval time. Modules, one job each:

- ``directions``  modality names and the ``Direction`` enum (target | condition);
- ``schedule``    released, versioned noise schedules (never changed once released);
- ``denoiser``    the network (a residual MLP predicting x0);
- ``diffusion``   q(x_t | x0), the losses, DDIM sampling and inversion;
- ``training``    ``train_bridge`` (Contrastive Diffusion Module + Bidirectional Split Training);
- ``training_data`` pair sets split by group, batches that never repeat a pair;
- ``validation``  fusion weights tuned, and R@1 reported, on the validation groups;
- ``selection``   what validation chooses: the checkpoint kept, the residual scale, the fair counterparts;
- ``bridge``      the public ``Bridge`` (``apply``, ``save``) and ``load_bridge``;
- ``served_bridge`` the bridge as a search serves it: the anchor map in numpy where alpha = 0, torch on demand;
- ``serving``     what both serve alike: roles, residual scales, fusion keys, the checks on rows (no torch);
- ``checkpoint``  safetensors + JSON header, format version, encoder fingerprints;
- ``record``      what a bridge keeps of its training: the groups it saw, the fitted baselines;
- ``baselines``   mean shift and linear maps (ridge, orthogonal Procrustes);
- ``groups``      clip ids, their hashes, and every split made by group;
- ``protocol``    the standard protocol's queries and gallery (unique clips, captions, windows by max);
- ``metrics``     R@k, median rank, mAP@10 (ties against the truth, several relevant items);
- ``fusion``      the served fused score and its tuning on validation groups;
- ``evaluation``  every method side by side on test pairs.

This file stays import-light (no torch): the public names below are resolved lazily on first access.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY: dict[str, str] = {
    "Bridge": "bridge",
    "load_bridge": "bridge",
    "SampleConfig": "bridge",
    "TrainConfig": "training",
    "TrainReport": "training",
    "train_bridge": "training",
    "evaluate_methods": "evaluation",
    "format_table": "evaluation",
    "FusionConfig": "fusion",
    "Direction": "directions",
    "Modality": "directions",
    "retrieval_metrics": "metrics",
    "FORMAT_VERSION": "checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use (keeps ``import diffgap_search.gap`` cheap)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
