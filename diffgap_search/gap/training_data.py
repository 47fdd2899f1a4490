"""Training pairs of a DiffGAP bridge: checked, split by group, and cut into batches that never repeat a pair.

``pairs`` maps modality name -> ``(N, D) float32``; row i of every array is pair i; a NaN row marks a
modality missing from that pair. ``groups (N,)`` names each pair's clip (``groups.as_groups``). Each pair
set (audio-text, audio-video) uses the rows where both sides are finite; rows are L2-normalised here.

The fusion-validation pairs are whole groups, chosen by a salted hash of the group id
(``groups.validation_mask``): no caption or window of a validation clip is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from .baselines import l2n
from .diffusion import to_diffusion_space
from .directions import PAIR_SETS, Direction, Modality, directions_of_pair
from .groups import validation_mask
from .protocol import group_codes

MIN_PAIRS = 16


@dataclass(frozen=True)
class PairSet:
    """One pair set's rows: ``train_*`` / ``val_*`` ``(n, D) float32`` unit rows and their group ids ``(n,)``."""

    a: Modality
    b: Modality
    train_a: np.ndarray
    train_b: np.ndarray
    train_groups: np.ndarray
    val_a: np.ndarray
    val_b: np.ndarray
    val_groups: np.ndarray

    @property
    def name(self) -> str:
        """The pair set's name, ``"audio-text"``."""
        return f"{self.a.value}-{self.b.value}"


def check_pairs(pairs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate the modality names and shapes -> ``float32`` arrays. UsageError / ValueError when wrong."""
    if Modality.AUDIO.value not in pairs:
        raise UsageError("training a DiffGAP bridge needs audio embeddings ('audio' in pairs)")
    unknown = set(pairs) - {m.value for m in Modality}
    if unknown:
        raise ValueError(f"unknown modalities in pairs: {sorted(unknown)}")
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in pairs.items()}
    shapes = {v.shape for v in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"all pair arrays must be (N, D) of one shape, got { {k: v.shape for k, v in arrays.items()} }")
    return arrays


def split_pairs(pairs: dict[str, np.ndarray], groups: np.ndarray, val_fraction: float) -> list[PairSet]:
    """Cut each available pair set into training and fusion-validation rows, by group (see the module doc)."""
    arrays = check_pairs(pairs)
    val = validation_mask(groups, val_fraction)
    out = []
    for a, b in PAIR_SETS:
        if b.value not in arrays:
            continue
        xa, xb = arrays[a.value], arrays[b.value]
        ok = np.isfinite(xa).all(1) & np.isfinite(xb).all(1)
        tr, va = np.flatnonzero(ok & ~val), np.flatnonzero(ok & val)
        if len(tr) < MIN_PAIRS:
            raise UsageError(
                f"need at least {MIN_PAIRS} {a.value}-{b.value} pairs to train a bridge, got {len(tr)}"
                f" (plus {len(va)} held out to tune the fusion weights)"
            )
        out.append(PairSet(a, b, l2n(xa[tr]), l2n(xb[tr]), groups[tr], l2n(xa[va]), l2n(xb[va]), groups[va]))
    if not out:
        raise UsageError("training a DiffGAP bridge needs 'text' or 'video' embeddings paired with 'audio'")
    return out


def confirmation_split(sets: list[PairSet], val_fraction: float) -> tuple[list[PairSet], list[PairSet]]:
    """Cut each pair set's validation clips in two halves by the same salted hash -> ``(choice, confirm)``:
    the choice half rates checkpoints and picks the sampler, the residual scale and the fusion weights; the
    confirmation half takes part in no choice and only confirms that the residual chosen beats the anchor
    (``selection.choose_residual``). Training rows are kept in both; a half may hold no validation rows."""
    choice, confirm = [], []
    for s in sets:
        half = validation_mask(s.val_groups, val_fraction / 2)
        for out, keep in ((choice, ~half), (confirm, half)):
            out.append(PairSet(s.a, s.b, s.train_a, s.train_b, s.train_groups, s.val_a[keep], s.val_b[keep],
                               s.val_groups[keep]))
    return choice, confirm


@dataclass(frozen=True)
class Batch:
    """One BST batch: ``x0, cond (B, D)`` in the scaled space, ``direction (B,) int64``, ``codes (B,) int64``
    (group codes, for InfoNCE), ``halves``: the row slice of each (pair set, direction) half."""

    x0: torch.Tensor
    cond: torch.Tensor
    direction: torch.Tensor
    codes: torch.Tensor
    halves: list[slice]

    def to(self, device: torch.device) -> Batch:
        """This batch with its tensors on ``device`` (itself where they are there already)."""
        if self.x0.device == device:
            return self
        move = [t.to(device, non_blocking=True) for t in (self.x0, self.cond, self.direction, self.codes)]
        return Batch(*move, self.halves)


class Batcher:
    """Draws batches from the pair sets: each epoch a fresh seeded permutation of every pair set.

    A pair set contributes ``min(batch_size, n)`` distinct pairs per step (its batch shrinks when it has
    fewer pairs than the batch size: a pair never appears twice in a batch, where it would be its own
    InfoNCE negative), taken in permutation order and wrapping within the epoch. Half of them denoise
    side A given B, the other half B given A (Bidirectional Split Training). With ``only`` (a direction:
    the "no BST" ablation) every row of a pair set serving it denoises that direction, and pair sets that
    do not serve it are left out.
    """

    def __init__(
        self, sets: list[PairSet], batch_size: int, rng: np.random.Generator, only: Direction | None = None
    ) -> None:
        if only is not None:
            sets = [s for s in sets if only in directions_of_pair(s.a, s.b)]
        self.only = only
        self.sets = sets
        self.sizes = [min(batch_size, len(s.train_a)) for s in sets]
        self.codes = [group_codes(s.train_groups) for s in sets]
        self.rng = rng
        self.steps_per_epoch = max(1, max(-(-len(s.train_a) // batch_size) for s in sets))
        self._perms: list[np.ndarray] = []

    def new_epoch(self) -> None:
        """Draw this epoch's permutations."""
        self._perms = [self.rng.permutation(len(s.train_a)) for s in self.sets]

    def rows(self, set_index: int, step: int) -> np.ndarray:
        """Distinct training rows of pair set ``set_index`` at ``step`` of the epoch: ``(b,) int64``."""
        perm, b = self._perms[set_index], self.sizes[set_index]
        return perm[(step * b + np.arange(b)) % len(perm)]

    def batch(self, step: int) -> Batch:
        """The batch of ``step`` (within the current epoch)."""
        x0s, conds, dirs, codes, halves, start = [], [], [], [], [], 0
        for k, ps in enumerate(self.sets):
            idx = self.rows(k, step)
            d_ab, d_ba = directions_of_pair(ps.a, ps.b)
            half = len(idx) // 2 if self.only is None else (len(idx) if self.only == d_ab else 0)
            for tgt, cnd, rows, d in ((ps.train_a, ps.train_b, idx[:half], d_ab),
                                      (ps.train_b, ps.train_a, idx[half:], d_ba)):
                if len(rows) == 0:
                    continue
                x0s.append(tgt[rows])
                conds.append(cnd[rows])
                dirs.append(np.full(len(rows), d.index))
                codes.append(self.codes[k][rows])
                halves.append(slice(start, start + len(rows)))
                start += len(rows)

        def cat(xs: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.concatenate(xs))

        return Batch(to_diffusion_space(cat(x0s)), to_diffusion_space(cat(conds)), cat(dirs).long(),
                     cat(codes).long(), halves)


__all__ = ["MIN_PAIRS", "Batch", "Batcher", "PairSet", "check_pairs", "split_pairs"]
