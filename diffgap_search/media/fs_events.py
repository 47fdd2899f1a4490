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
folders and ``exclude`` (the index folder) are not watched, as the walk does not enter them.
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
from diffgap_search.media.discover import identities

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

    def __init__(self, fd: int, exclude: set[tuple[int, int]]) -> None:
        self.lost = ""  # why the events can no longer be trusted to cover the tree ("" while they can)
        self._fd = fd
        self._exclude = exclude
        self._folders: dict[int, str] = {}  # watch descriptor -> folder
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
        events = cls(fd, identities(exclude))
        why = events._watch_tree(top)
        if why:
            events.close()
            return None, why
        return events, ""

    def _watch_tree(self, top: str) -> str:
        """Watch ``top`` and every folder below it that is not hidden or excluded (folders a ``.dgsearchignore``
        leaves out are watched too: a change there costs a look that finds nothing); "" or why it cannot be
        done."""
        devices: dict[int, int | None] = {}
        pending = [top]
        seen: set[tuple[int, int]] = set()
        while pending:
            folder = pending.pop()
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
            self._folders[wd] = folder
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if not entry.name.startswith(".") and _is_dir(entry):
                            pending.append(entry.path)
            except OSError:
                continue
        return ""

    def changed(self, timeout_s: float = 0.0) -> bool:
        """Whether an event came since the last call, waiting up to ``timeout_s`` for one; folders created or
        moved in are watched from now on. Where that fails, or the kernel's queue overflowed, :attr:`lost` says
        why and the caller should look for itself from then on."""
        poller = select.poll()  # not select(): it cannot wait on a descriptor numbered 1024 or more
        poller.register(self._fd, select.POLLIN)
        if not poller.poll(max(0, int(timeout_s * 1000))):
            return False
        new_folders: list[str] = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                name = data[offset + EVENT.size: offset + EVENT.size + length].rstrip(b"\0")
                offset += EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    self.lost = "more changes came at once than the kernel queues (some folders may be unwatched)"
                elif mask & IN_IGNORED:
                    self._folders.pop(wd, None)
                elif mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO) and wd in self._folders:
                    if not name.startswith(b"."):
                        new_folders.append(os.path.join(self._folders[wd], os.fsdecode(name)))
        for folder in new_folders:
            self.lost = self._watch_tree(folder) or self.lost
        return True

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


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks, as the walk does
    except OSError:
        return False
