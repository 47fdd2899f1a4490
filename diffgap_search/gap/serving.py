"""What ``Bridge`` and ``ServedBridge`` serve alike, without torch: the roles a direction is bridged in, the
residual scales validation chose for them, the fusion key of a query and item modality, and the checks on a
direction asked for and on the rows to bridge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import BridgeUnavailableError
from .directions import Direction, Modality

ROLES: tuple[str, ...] = ("query", "items")  # a query bridged at search time; indexed items bridged at index time
Scales = dict[str, dict[Direction, float]]  # role -> direction -> alpha in [0, 1]


def residual_scales(selection: Mapping[str, Any]) -> Scales:
    """The alphas of ``selection`` (what validation chose) by role: ``residual_scale`` for queries,
    ``residual_scale_items`` for indexed items (format 5; format 4 has one alpha per direction for both roles).
    Raises ValueError for an alpha outside [0, 1]."""
    query = selection.get("residual_scale", {})
    items = selection.get("residual_scale_items", query)
    scales = {role: {Direction(k): float(v) for k, v in alphas.items()}
              for role, alphas in (("query", query), ("items", items))}
    if any(not 0.0 <= a <= 1.0 for alphas in scales.values() for a in alphas.values()):
        raise ValueError(f"residual scales must be in [0, 1], got {query} (queries), {items} (items)")
    return scales


def scale_of(scales: Scales, anchored: bool, direction: Direction | str, role: str) -> float:
    """The alpha of ``direction`` in ``role``: the one chosen, 1 where none was (bridges before format 4) and
    always 1 without a linear anchor. Raises ValueError for an unknown role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return scales[role].get(Direction(direction), 1.0) if anchored else 1.0


def fusion_key(source: str | Modality, target: str | Modality) -> str:
    """``"text->audio"``: the key of a query modality's fusion weights against an item modality."""
    return f"{Modality(source).value}->{Modality(target).value}"


def served_direction(directions: tuple[Direction, ...], source: str, target: str) -> Direction:
    """The direction turning ``source`` rows into ``target`` ones, if the bridge serves it; else
    ``BridgeUnavailableError`` naming what it serves."""
    direction = Direction.of(source, target)
    if direction not in directions:
        raise BridgeUnavailableError(
            f"this DiffGAP bridge serves {[d.value for d in directions]}, not {source} -> {target}: "
            "train it on the missing pairs with `dgsearch train`"
        )
    return direction


def checked_rows(x: np.ndarray, dim: int) -> np.ndarray:
    """``x`` as a writable ``(N, dim) float32`` copy (catalog vectors come from read-only buffers); ValueError for
    another shape or NaN/inf."""
    rows = np.array(x, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"expected (N, {dim}) embeddings, got {rows.shape}")
    if not np.isfinite(rows).all():
        raise ValueError("embeddings to bridge contain NaN or inf")
    return rows


__all__ = ["ROLES", "Scales", "checked_rows", "fusion_key", "residual_scales", "scale_of", "served_direction"]
