"""The bridge as a search serves it: torch is loaded only when a query needs the network.

A query whose task validation chose to serve by the linear anchor alone (residual scale 0: ridge, or
Procrustes where the anchor choice took it) needs the anchor map of its direction — a ``(D, D)`` matrix and two
means — and the fusion weights: numpy, no network. ``ServedBridge.read`` takes them from the checkpoint as numpy
arrays, with the same checks as ``load_bridge`` (format version, encoder fingerprints, and the bridge's own
fingerprint, byte for byte the one ``Bridge.fingerprint`` gives), and loads the full ``Bridge`` (torch and its
network, about 1.1 s to import on a 2-core EPYC) only when a call needs it: a residual scale above 0, a sampler
given per call, a bridge without an anchor (formats 1 and 2), or any attribute serving does not read here.

The anchor's answer is ``Bridge.apply``'s to float32 rounding (1e-6), not bit for bit (numpy's BLAS, not
torch's): every query of a process goes the same way, so scores stay consistent within it
(``tests/test_served_bridge.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptIndexError
from .checkpoint import check_fingerprints, fingerprint_arrays, load_checkpoint_arrays
from .directions import Direction
from .fusion import FusionConfig
from .serving import checked_rows, fusion_key, residual_scales, scale_of, served_direction

if TYPE_CHECKING:
    from .bridge import Bridge

class ServedBridge:
    """A checked bridge checkpoint served without torch where its residual scale is 0; ``full()`` (the torch
    ``Bridge``, built once from the same arrays) for everything else. Attributes it does not hold are the full
    bridge's (``__getattr__``). What both serve alike (roles, residual scales, fusion keys, checks) is
    ``gap/serving.py``'s."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], digest: str) -> None:
        self.path = path
        self._arrays = arrays
        self._meta = meta
        self.fingerprint = digest
        self._full: Bridge | None = None
        self._directions = tuple(Direction(d) for d in meta["directions"])
        self._fusion = {k: FusionConfig(**v) for k, v in meta.get("fusion", {}).items()}
        self.train_info: dict[str, Any] = dict(meta.get("train", {}))
        self._anchored = meta["denoiser"].get("anchor", "none") != "none"
        self._dim = int(meta["denoiser"]["dim"])
        self._alpha = residual_scales(meta.get("selection") or {})
        # (K, D, D), (K, D), (K, D) float32: the anchor map of direction index k (``Denoiser.anchor``)
        self._anchor = ((arrays["anchor_weight"], arrays["anchor_mu_src"], arrays["anchor_mu_tgt"])
                        if self._anchored else None)

    @classmethod
    def read(cls, path: Path, expected_fingerprints: dict[str, str] | None) -> ServedBridge:
        """Read and check ``path`` (``load_bridge``'s errors: BridgeUnavailableError, CorruptIndexError,
        BridgeMismatchError). The whole file is read once: the full bridge, when needed, is built from the
        arrays in memory, so a bridge file replaced in the meantime does not matter."""
        arrays, meta = load_checkpoint_arrays(path)
        check_fingerprints(path, meta.get("encoder_fingerprints", {}), expected_fingerprints)
        try:
            served = cls(path, arrays, meta, "")
        except (KeyError, TypeError, ValueError) as exc:  # as bridge_from_checkpoint says it
            raise CorruptIndexError(f"{path} is not a valid DiffGAP bridge checkpoint: {exc}") from exc
        try:
            served.fingerprint = fingerprint_arrays(arrays, meta)
        except KeyError:  # a dtype numpy does not share with torch: the full bridge says what it is
            served.fingerprint = served.full().fingerprint
        return served

    # ----------------------------------------------------------------- what serving reads
    @property
    def directions(self) -> tuple[Direction, ...]:
        """The directions this bridge can generate (``target|condition``)."""
        return self._directions

    @property
    def shared_spaces(self) -> tuple[str, ...]:
        """As ``Bridge.shared_spaces``."""
        return tuple(self.train_info.get("shared_spaces", ()))

    @property
    def separate_spaces(self) -> tuple[str, ...]:
        """As ``Bridge.separate_spaces``."""
        return tuple(self.train_info.get("separate_spaces", ()))

    @property
    def dim(self) -> int:
        """D, the embedding size."""
        return self._dim

    def residual_scale(self, direction: Direction | str, role: str = "query") -> float:
        """As ``Bridge.residual_scale``: alpha of ``direction`` in ``role``; 1 without an anchor."""
        return scale_of(self._alpha, self._anchored, direction, role)

    def fusion_for(self, source: str, target: str) -> FusionConfig:
        """Fusion weights for queries of ``source`` against items of ``target`` (tuned on validation pairs)."""
        return self._fusion.get(fusion_key(source, target), FusionConfig())

    def apply(self, x: np.ndarray, source: str, target: str, *, sample: Any = None, batch_size: int = 4096,
              role: str = "query") -> np.ndarray:
        """As ``Bridge.apply``: ``(N, D)`` rows of ``source`` -> ``(N, D) float32`` L2-normalised ``target`` rows.
        The anchor map in numpy where this role's residual scale is 0 and no sampler is given; else the full
        bridge's ``apply``."""
        direction = served_direction(self._directions, source, target)
        if sample is not None or self._anchor is None or self.residual_scale(direction, role) != 0.0:
            return self.full().apply(x, source, target, sample=sample, batch_size=batch_size, role=role)
        return anchor_answer(checked_rows(x, self._dim), *(part[direction.index] for part in self._anchor))

    # ----------------------------------------------------------------- the rest: the torch bridge
    def full(self) -> Bridge:
        """The torch ``Bridge`` of the same checkpoint, built on first use from the arrays read."""
        if self._full is None:
            import torch

            from .bridge import bridge_from_checkpoint

            tensors = {name: torch.from_numpy(np.array(a)) for name, a in self._arrays.items()}
            self._full = bridge_from_checkpoint(self.path, tensors, self._meta)
        return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full(), name)


def anchor_answer(x: np.ndarray, weight: np.ndarray, mu_src: np.ndarray, mu_tgt: np.ndarray) -> np.ndarray:
    """The linear anchor's answer as ``Denoiser.anchor`` and ``Bridge`` give it at residual scale 0: ``x (N, D)
    float32`` rows -> ``(N, D) float32`` L2-normalised ``normalize((normalize(x) - mu_src) @ weight + mu_tgt)``;
    ``weight (D, D)``, ``mu_src, mu_tgt (D,)`` float32."""
    def unit(rows: np.ndarray) -> np.ndarray:  # F.normalize's rule: a zero row stays zero
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), np.float32(1e-12))

    # Denoiser.anchor scales its rows by sqrt(D) into the diffusion space and back, and Bridge normalises its
    # answer again: the same map once the scales cancel
    return unit((unit(x) - mu_src) @ weight + mu_tgt).astype(np.float32)


__all__ = ["ServedBridge", "anchor_answer"]
