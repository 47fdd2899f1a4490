"""One walk of a library folder for an indexing run: its media files, every file a caption may come from, and
the paths that could not be read.

An indexing run needs the walk twice (the media files to plan, every regular file to find caption sidecars
beside them) and walked the tree twice; on Wesnoth's data (16,219 files) each walk took about 0.2 s. A path
the walk cannot read (a folder without permission, a stale network mount, a broken symlink) is kept in
``unreadable``: the plan leaves what was indexed at or below it as it was, instead of deleting it as gone. So is
a library folder with nothing in it at all (the mount point of a drive that is not mounted).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from diffgap_search.media.captions import is_listed_name
from diffgap_search.media.discover import (
    UNREAD_FORMATS,
    DiscoveredFile,
    file_media_kind,
    is_media_name,
    name_extension,
    path_key,
    walk_files,
)


@dataclass
class Listing:
    """What one walk of ``root`` found: ``files`` every non-hidden regular file that is media or may hold
    captions (absolute paths, in path-byte order), ``media`` the audio and video files among them, ``unreadable``
    ``(path, reason)`` for every path the walk skipped because it could not read it."""

    files: list[Path] = field(default_factory=list)
    media: list[DiscoveredFile] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # media files and folders a .dgsearchignore left out
    unread: dict[str, int] = field(default_factory=dict)  # extension of UNREAD_FORMATS -> files of it passed over

    def unreadable_keys(self) -> list[bytes]:
        """The catalog keys (``path_key``) of the unreadable paths: a row at or below one is not known gone."""
        return [path_key(p) for p, _reason in self.unreadable]


def list_library(root: Path, *, exclude: Sequence[Path] = ()) -> Listing:
    """Walk ``root`` once (``discover``'s rules: hidden entries and ``exclude`` left out, symlinks followed,
    loops cut). Raises ``InputNotFoundError`` when ``root`` does not exist."""
    listing = Listing()

    def wanted(name: str) -> bool:
        if is_listed_name(name):
            return True
        extension = name_extension(name)
        if extension in UNREAD_FORMATS:
            listing.unread[extension] = listing.unread.get(extension, 0) + 1
        return False

    for path, st in walk_files(root, exclude=exclude, on_error=lambda p, r: listing.unreadable.append((p, r)),
                               wanted=wanted, on_ignored=lambda p, is_dir: _left_out(listing, p, is_dir)):
        listing.files.append(path)
        kind = file_media_kind(path)
        if kind is not None:
            listing.media.append(DiscoveredFile(path=path, kind=kind, size=st.st_size, mtime_ns=st.st_mtime_ns))
    listing.ignored.sort(key=os.fsencode)  # met folder by folder, in listing order: now in path-byte order
    if not listing.files and not listing.unreadable and _empty_folder(root):
        listing.unreadable.append((Path(os.path.abspath(os.fspath(root))), EMPTY_ROOT))
    return listing


def _left_out(listing: Listing, path: Path, is_dir: bool) -> None:
    if is_dir or is_media_name(path.name):  # a sidecar left out with its recording is not counted apart
        listing.ignored.append(path)


EMPTY_ROOT = "the folder is empty (a drive or share not mounted?)"


def split_settled(media: Sequence[DiscoveredFile], settle_s: float,
                  now_ns: int | None = None) -> tuple[list[DiscoveredFile], list[DiscoveredFile]]:
    """``(settled, deferred)``: a file modified less than ``settle_s`` seconds ago may still be being written
    (a copy, a recorder) and is deferred to a later run; a modification time in the future (a share's clock
    ahead of this one) is not waited for. ``settle_s`` 0 defers nothing."""
    if settle_s <= 0:
        return list(media), []
    now = time.time_ns() if now_ns is None else now_ns
    limit = int(settle_s * 1e9)
    settled, deferred = [], []
    for f in media:
        (deferred if 0 <= now - f.mtime_ns < limit else settled).append(f)
    return settled, deferred


def _empty_folder(root: Path) -> bool:
    """Whether ``root`` is a folder with no entry at all, hidden ones included: the mount point of a drive or
    share that is not mounted. Its indexed files are kept, as under a folder that cannot be read; an emptied
    subfolder is an ordinary change (its files moved or deleted)."""
    try:
        with os.scandir(root) as it:
            return next(it, None) is None
    except OSError:
        return False


def is_at_or_below(key: bytes, tops: Sequence[bytes]) -> bool:
    """Whether the path key ``key`` is one of ``tops`` or lies below one of them (``tops`` are keys of
    paths, without a trailing ``/``)."""
    return any(key == top or key.startswith(top.rstrip(b"/") + b"/") for top in tops)
