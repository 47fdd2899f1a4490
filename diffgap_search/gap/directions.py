"""Modality names and the four bridging directions served by one DiffGAP module.

A ``Direction`` reads ``target|condition``: ``AUDIO_GIVEN_TEXT`` generates an audio-side embedding
from a text embedding. ``Bridge.apply(x, source="text", target="audio")`` uses ``AUDIO_GIVEN_TEXT``.
Each direction has a fixed integer ``index`` (the row of the denoiser's direction embedding); indices
are part of the checkpoint format and are never renumbered.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class Modality(str, Enum):
    """The modalities an embedding can come from; values are the names used in ``pairs`` dicts."""

    AUDIO = "audio"
    TEXT = "text"
    VIDEO = "video"


class Direction(str, Enum):
    """One generation direction, ``target|condition``. Values are stable strings stored in checkpoints."""

    AUDIO_GIVEN_TEXT = "audio|text"
    TEXT_GIVEN_AUDIO = "text|audio"
    AUDIO_GIVEN_VIDEO = "audio|video"
    VIDEO_GIVEN_AUDIO = "video|audio"

    @property
    def target(self) -> Modality:
        """The modality generated."""
        return Modality(self.value.split("|")[0])

    @property
    def condition(self) -> Modality:
        """The modality conditioned on (the query's modality when bridging a query)."""
        return Modality(self.value.split("|")[1])

    @property
    def index(self) -> int:
        """Stable row of this direction in the denoiser's direction embedding (0..3)."""
        return _INDEX[self]

    @classmethod
    def of(cls, source: str | Modality, target: str | Modality) -> Direction:
        """The direction that turns ``source`` embeddings into ``target`` ones; ValueError if none exists."""
        src, tgt = Modality(source), Modality(target)
        try:
            return cls(f"{tgt.value}|{src.value}")
        except ValueError:
            raise ValueError(f"no DiffGAP direction from {src.value} to {tgt.value}") from None


_INDEX: dict[Direction, int] = {
    Direction.AUDIO_GIVEN_TEXT: 0,
    Direction.TEXT_GIVEN_AUDIO: 1,
    Direction.AUDIO_GIVEN_VIDEO: 2,
    Direction.VIDEO_GIVEN_AUDIO: 3,
}

NUM_DIRECTIONS = len(_INDEX)

# The pair sets a bridge can be trained on: audio is always one side.
PAIR_SETS: tuple[tuple[Modality, Modality], ...] = (
    (Modality.AUDIO, Modality.TEXT),
    (Modality.AUDIO, Modality.VIDEO),
)


def directions_of_pair(a: Modality, b: Modality) -> tuple[Direction, Direction]:
    """The two directions trained on an (a, b) pair set: ``a|b`` and ``b|a`` (Bidirectional Split Training)."""
    return Direction.of(b, a), Direction.of(a, b)


def describe_scales(query: Mapping[str, float], items: Mapping[str, float] | None = None) -> str:
    """Residual scales as one line: ``audio|text 0.5 (queries) / 1 (items), text|audio 0`` (one figure where
    both roles agree, as in format-4 bridges); ``-`` when none was chosen. ``items`` defaults to ``query``."""
    items = query if items is None else items
    parts = []
    for d in sorted(set(query) | set(items)):
        q, i = query.get(d), items.get(d)
        parts.append(f"{d} {q:g}" if q == i else f"{d} {'-' if q is None else f'{q:g}'} (queries) / "
                     f"{'-' if i is None else f'{i:g}'} (items)")
    return ", ".join(parts) or "-"
