"""The hits of a search cut out into a folder, one WAV per hit (``dgsearch query --save DIR``).

For collecting what a search found: a sound designer's picks, or the windows of a class for a dataset. Each
hit's window is cut from its file (``media/cut.py``: the file's own rate, channels and resolution) into
``DIR/RANK NAME START-ENDs.wav`` — the rank first, zero-padded, so the folder lists them in the order found
and two files with one name never collide. A hit that cannot be cut (its file gone, no sound, longer than
``MAX_WINDOW_S``: a keyword hit spans its whole file) is skipped with its reason; the others are saved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from diffgap_search.errors import MediaDecodeError, StorageError
from diffgap_search.media.cut import MAX_WINDOW_S, cut_window, window_name
from diffgap_search.media.discover import display_path
from diffgap_search.search.types import Hit


@dataclass
class SavedWindows:
    """``saved``: segment id -> the WAV written; ``skipped``: ``(hit's path, why)`` for the hits not saved."""

    folder: Path
    saved: dict[int, Path] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def save_windows(hits: Sequence[Hit], folder: Path) -> SavedWindows:
    """Cut each of ``hits``' windows into ``folder`` (created; the paths returned are absolute); StorageError
    where it cannot be written."""
    folder = Path(os.path.abspath(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    out = SavedWindows(folder)
    width = max(2, len(str(len(hits))))
    for rank, hit in enumerate(hits, 1):
        source = Path(hit.fs_path)
        if hit.end_s - hit.start_s > MAX_WINDOW_S:
            out.skipped.append((hit.path, f"spans {hit.end_s - hit.start_s:.0f} s, more than {MAX_WINDOW_S:g} s:"
                                          " copy the file itself"))
            continue
        if not os.path.isfile(source):
            out.skipped.append((hit.path, "no longer there (moved or deleted since it was indexed)"))
            continue
        target = folder / f"{rank:0{width}d} {window_name(source, hit.start_s, hit.end_s)}"
        try:
            out.saved[hit.segment_id] = cut_window(source, hit.start_s, hit.end_s, target)
        except MediaDecodeError as exc:
            out.skipped.append((hit.path, str(exc).removeprefix(f"{display_path(source)}: ")))
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return out
