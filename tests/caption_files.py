"""Helpers of the caption tests: files to caption, and a ``CaptionIndex`` built with its errors collected."""

from __future__ import annotations

from pathlib import Path

from diffgap_search.media.captions import CaptionIndex


def touch(path: Path, data: bytes = b"x") -> Path:
    """Write ``data`` at ``path`` (its folders made): a media file whose bytes the caption reader never opens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def build(root: Path) -> tuple[CaptionIndex, list[tuple[str, str]]]:
    """``CaptionIndex.build(root)`` and the ``(path relative to root, reason)`` it reported."""
    errors: list[tuple[str, str]] = []
    index = CaptionIndex.build(root, on_error=lambda p, r: errors.append((str(p.relative_to(root)), r)))
    return index, errors
