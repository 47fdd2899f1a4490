"""The hits of a search cut out into a folder, one WAV per hit (``dgsearch query --save DIR``).

For collecting what a search found: a sound designer's picks, or the windows of a class for a dataset. Each
hit's window is cut from its file (``media/cut.py``: the file's own rate, channels and resolution) into
``DIR/RANK NAME START-ENDs.wav`` — the rank first, zero-padded, so the folder lists them in the order found
and two files with one name never collide. A hit that cannot be cut (its file gone, no sound, longer than
``MAX_WINDOW_S``: a keyword hit spans its whole file) is skipped with its reason; the others are saved.

With ``--timeline`` (the hits of each window of a query file: spotting a video) each query window's hits go
into a folder of their own, ``DIR/NN A-Bs/RANK NAME START-ENDs.wav`` (``NN`` the window's number, zero-padded,
``A-Bs`` its seconds in the query), so the cuts for each scene lie together, in the video's order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from diffgap_search.errors import MediaDecodeError, StorageError
from diffgap_search.media.cut import MAX_WINDOW_S, cut_window, span_seconds, window_name
from diffgap_search.media.discover import display_path
from diffgap_search.search.types import Hit

if TYPE_CHECKING:
    from diffgap_search.search.timeline import Timeline


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
    made(folder)
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
        target = folder / window_name(source, hit.start_s, hit.end_s, prefix=f"{rank:0{width}d} ")
        try:
            out.saved[hit.segment_id] = cut_window(source, hit.start_s, hit.end_s, target)
        except MediaDecodeError as exc:
            out.skipped.append((hit.path, str(exc).removeprefix(f"{display_path(source)}: ")))
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return out


def save_timeline(timeline: Timeline, folder: Path) -> list[SavedWindows]:
    """Each query window's hits of ``timeline`` cut into ``folder/NN A-Bs/`` (module docstring), one
    :class:`SavedWindows` per window in its order (a window without hits gets no folder); StorageError where
    ``folder`` cannot be written."""
    folder = Path(os.path.abspath(folder))
    made(folder)
    width = max(2, len(str(len(timeline.windows))))
    out: list[SavedWindows] = []
    for number, window in enumerate(timeline.windows, 1):
        sub = folder / f"{number:0{width}d} {span_seconds(window.start_s, window.end_s)}"
        out.append(save_windows(window.hits, sub) if window.hits else SavedWindows(sub))
    return out


def made(folder: Path) -> None:
    """``folder`` created with its parents where missing; StorageError where it cannot be (a file there)."""
    if folder.exists() and not folder.is_dir():
        raise StorageError(f"cannot save into {folder}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot write to {folder}: {exc.strerror or exc}") from None
