"""Whether a folder tree changed since last asked: Linux inotify on every folder of it, for ``index --watch``.

A look at a library walks every folder and stats every file (about 0.5 s of a core per 10,000 files here), so
polling a 100,000-file archive every 10 s keeps half a core busy for nothing. The kernel can say instead that
something changed: one inotify watch per folder (not per file), for entries created, deleted, moved in or out,
written and closed, or changed in size, time or permissions. A look then happens only when an event came (or
files were still settling, or a backstop interval passed: ``indexing/watch.py``).

Where the kernel cannot tell, nothing is claimed and the watch polls as before (:func:`FolderEvents.start`
returns None): not Linux; a network or FUSE file system anywhere in the tree (NFS, SMB/CIFS, 9p, Ceph, AFS,
sshfs, rclone...: a change made by another machine raises no event here); more folders than the user's
inotify watch limit (``/proc/sys/fs/inotify/max_user_watches``); the root a single file. An overflowing event
queue counts as a change. Folders created or moved in later are watched as their events arrive; hidden
folders, ``exclude`` (the index folder) and folders a ``.dgsearchignore`` leaves out are not watched, as the walk
does not enter them.

Only events a run could act on count: a media file or a caption sidecar (by its extension, as the walk wants
them), a folder, a ``.dgsearchignore``, the watched folder itself; not a hidden name, not a name the walk does not
want (a DAW's project file saved every minute, a render's temporary file), not a path an ignore file leaves out.
A changed ``.dgsearchignore`` reads the rules again, so a folder it no longer leaves out is watched from then on.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
from collections.abc import Sequence
from pathlib import Path

from diffgap_search.libc import libc_function
from diffgap_search.media.captions import is_listed_name
from diffgap_search.media.discover import identities
from diffgap_search.media.ignore import IGNORE_FILE, IgnoreFile, ignored, parent_ignores, read_ignore_file

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR, IN_ONLYDIR = 0x4000, 0x8000, 0x40000000, 0x01000000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
WATCHED = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)

# statfs f_type of file systems whose changes made elsewhere raise no inotify event here (linux/magic.h)
REMOTE_FILE_SYSTEMS = {
    0x6969: "nfs", 0x517B: "smb", 0xFF534D42: "cifs", 0xFE534D42: "smb2", 0x65735546: "fuse",
    0x01021997: "9p", 0x00C36400: "ceph", 0x5346414F: "afs", 0x73757245: "coda", 0x564C: "ncp",
    0x47504653: "gpfs", 0x0BD00BD0: "lustre", 0x013111A8: "ibrix", 0x19830326: "fhgfs",
}


def file_system_type(path: str) -> int | None:
    """The ``statfs`` ``f_type`` of the file system holding ``path`` (None where it cannot be asked)."""
    statfs = libc_function("statfs")
    if statfs is None:
        return None
    buf = ctypes.create_string_buffer(256)  # struct statfs: f_type comes first (a long)
    if statfs(os.fsencode(path), buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


class FolderEvents:
    """inotify watches on the folders of a tree; :meth:`changed` says whether any event came since it was last
    asked. Close it (or use it as a context manager) to release the watches."""

    def __init__(self, fd: int, exclude: set[tuple[int, int]], top: str = "") -> None:
        self.lost = ""  # why the events can no longer be trusted to cover the tree ("" while they can)
        self._fd = fd
        self._exclude = exclude
        self._top = top
        # watch descriptor -> (folder, the ignore files that apply in it: those above, outermost first, then its own)
        self._folders: dict[int, tuple[str, tuple[IgnoreFile, ...]]] = {}
        self._add_watch = libc_function("inotify_add_watch")

    @classmethod
    def start(cls, root: Path, *, exclude: Sequence[Path] = ()) -> tuple[FolderEvents | None, str]:
        """``(events, why)``: the watches on ``root``'s folders, or None and why the watch must poll instead."""
        init = libc_function("inotify_init1")
        if init is None or libc_function("inotify_add_watch") is None:
            return None, "this system has no inotify"
        top = os.path.abspath(os.fspath(root))
        if not os.path.isdir(top):
            return None, "a single file is watched by looking at it"
        fd = init(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return None, f"inotify: {os.strerror(ctypes.get_errno())}"
        events = cls(fd, identities(exclude), top)
        why = events._watch_tree(top, _above(top))
        if why:
            events.close()
            return None, why
        return events, ""

    def _watch_tree(self, top: str, above: tuple[IgnoreFile, ...]) -> str:
        """Watch ``top`` and every folder below it that is not hidden, excluded or left out by an ignore file
        (``above``: the ignore files that apply in ``top``'s parent); "" or why it cannot be done."""
        devices: dict[int, int | None] = {}
        pending = [(top, above)]
        seen: set[tuple[int, int]] = set()
        while pending:
            folder, ignores = pending.pop()
            try:
                st = os.stat(folder)
            except OSError:
                continue  # gone already, or unreadable: the walk reports it
            ident = (st.st_dev, st.st_ino)
            if ident in seen or ident in self._exclude:
                continue
            seen.add(ident)
            if st.st_dev not in devices:
                devices[st.st_dev] = file_system_type(folder)
            remote = REMOTE_FILE_SYSTEMS.get(devices[st.st_dev] or 0)
            if remote:
                return f"{folder} is on a {remote} file system, whose changes made elsewhere raise no event here"
            wd = self._add_watch(self._fd, os.fsencode(folder), WATCHED)
            if wd < 0:
                err = ctypes.get_errno()
                if err == errno.ENOSPC:
                    return ("more folders than inotify may watch (raise /proc/sys/fs/inotify/max_user_watches"
                            " to watch them without looking)")
                if err in (errno.ENOENT, errno.EACCES, errno.ENOTDIR):
                    continue
                return f"inotify cannot watch {folder}: {os.strerror(err)}"
            own = read_ignore_file(folder, _unreported)
            here = ignores + (own,) if own is not None else ignores
            self._folders[wd] = (folder, here)
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if not entry.name.startswith(".") and _is_dir(entry) and not (
                                here and ignored(here, entry.path, True)):
                            pending.append((entry.path, here))
            except OSError:
                continue
        return ""

    def changed(self, timeout_s: float = 0.0) -> bool:
        """Whether an event a run could act on (module docstring) came since the last call, waiting up to
        ``timeout_s`` for the first event of any kind; folders created or moved in are watched from now on, and a
        changed ignore file is read again. Where that fails, or the kernel's queue overflowed, :attr:`lost` says
        why and the caller should look for itself from then on."""
        poller = select.poll()  # not select(): it cannot wait on a descriptor numbered 1024 or more
        poller.register(self._fd, select.POLLIN)
        if not poller.poll(max(0, int(timeout_s * 1000))):
            return False
        relevant, rules_changed = False, False
        new_folders: list[tuple[str, tuple[IgnoreFile, ...]]] = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                name = os.fsdecode(data[offset + EVENT.size: offset + EVENT.size + length].rstrip(b"\0"))
                offset += EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    self.lost = "more changes came at once than the kernel queues (some folders may be unwatched)"
                    relevant = True
                elif mask & IN_IGNORED:
                    self._folders.pop(wd, None)
                elif wd not in self._folders or not name:
                    relevant = True  # the watched folder itself (deleted, moved, its permissions)
                elif name == IGNORE_FILE:
                    relevant = rules_changed = True
                elif not name.startswith("."):
                    folder, ignores = self._folders[wd]
                    path = os.path.join(folder, name)
                    is_dir = bool(mask & IN_ISDIR)
                    if ignores and ignored(ignores, path, is_dir):
                        continue
                    if is_dir:
                        relevant = True
                        if mask & (IN_CREATE | IN_MOVED_TO):
                            new_folders.append((path, ignores))
                    elif is_listed_name(name):
                        relevant = True
        for folder, ignores in new_folders:
            self.lost = self._watch_tree(folder, ignores) or self.lost
        if rules_changed and self._top:  # every folder's rules again: one no longer left out is watched now,
            before = dict(self._folders)  # one left out now is no longer watched
            self._folders.clear()
            self.lost = self._watch_tree(self._top, _above(self._top)) or self.lost
            remove = libc_function("inotify_rm_watch")
            for wd in set(before) - set(self._folders):
                if remove is not None:
                    remove(self._fd, wd)  # its IN_IGNORED event comes next time, for a descriptor no longer held
        return relevant

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FolderEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def folders(self) -> int:
        """How many folders are watched now."""
        return len(self._folders)

    def watched(self) -> list[str]:
        """The folders watched now, sorted."""
        return sorted(folder for folder, _ in self._folders.values())


def _above(top: str) -> tuple[IgnoreFile, ...]:
    """The ignore files that apply in ``top``'s parent (``top`` itself is walked whatever they say)."""
    return parent_ignores(top, _unreported)


def _unreported(_path: Path, _reason: str) -> None:
    """An ignore file that cannot be read: the walk of the next look reports it, not the watch."""


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks, as the walk does
    except OSError:
        return False
