"""Groups: the clip each pair comes from, and every split made by group, never by row.

A pair's group is its clip's id (a pairs file's ``group`` array, an index file's content hash). Without
one, rows with identical audio vectors form a group (``audio_groups``): a clip's audio repeated once per
caption stays together. All pairs of a group fall on one side of every split, so no caption or window of
a validation or test clip is ever trained on.

Splits are by a hash of the group id, salted per split, so they are deterministic, independent of the
rest of the data (adding clips never moves one across) and independent of each other. A bridge keeps
``group_keys`` of the groups it trained and validated on (64-bit prefixes of the ids' sha256: collisions
are negligible at 1e9 groups), so an evaluation can refuse pairs it has seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

VALIDATION_SALT = "diffgap-fusion-validation"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def group_key(group: str) -> int:
    """The signed 64-bit key of a group id: the first 8 bytes of its sha256, little-endian."""
    return int.from_bytes(_digest(group)[:8], "little", signed=True)


def group_keys(groups: Iterable[str]) -> np.ndarray:
    """``(G,) int64`` sorted unique keys of the given group ids."""
    return np.unique(np.array([group_key(str(g)) for g in groups], dtype=np.int64))


def in_fraction(group: str, salt: str, fraction: float) -> bool:
    """Whether ``group`` falls in the ``fraction`` of groups that ``salt`` selects (hash below the cut)."""
    value = int.from_bytes(_digest(f"{salt}\0{group}")[:8], "big") / 2.0**64
    return value < fraction


def validation_mask(groups: np.ndarray, fraction: float) -> np.ndarray:
    """``(N,) bool``: the pairs whose group is in the fusion-validation ``fraction`` of groups."""
    memo: dict[str, bool] = {}
    out = np.zeros(len(groups), dtype=bool)
    for i, g in enumerate(groups):
        s = str(g)
        if s not in memo:
            memo[s] = in_fraction(s, VALIDATION_SALT, fraction)
        out[i] = memo[s]
    return out


def audio_groups(audio: np.ndarray) -> np.ndarray:
    """Default groups: ``(N, D)`` audio rows -> ``(N,)`` object array of ids, one per distinct audio vector."""
    x = np.ascontiguousarray(audio, dtype="<f4")
    return np.array(["audio:" + hashlib.sha256(row.tobytes()).hexdigest()[:32] for row in x], dtype=object)


def as_groups(groups: np.ndarray | Iterable[object] | None, audio: np.ndarray) -> np.ndarray:
    """``(N,)`` object array of group ids as strings: ``groups`` (ints or strings) or ``audio_groups``."""
    if groups is None:
        return audio_groups(audio)
    out = np.array([str(g) for g in groups], dtype=object)
    if len(out) != len(audio):
        raise ValueError(f"groups has {len(out)} entries for {len(audio)} pairs")
    return out


__all__ = ["as_groups", "audio_groups", "group_key", "group_keys", "in_fraction", "validation_mask"]
