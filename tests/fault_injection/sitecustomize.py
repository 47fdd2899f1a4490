"""Fault injection for subprocess tests: put this folder first on ``PYTHONPATH`` and set ``DGS_FAULT``.

Test-only: nothing in ``diffgap_search`` knows about it. Python imports ``sitecustomize`` at start-up, so a
``dgsearch`` subprocess started with this folder on its path gets these wrappers:

- ``DGS_FAULT_LOG``: a file that gets one line per event: ``embed N`` (N windows embedded by one encoder
  call), ``commit`` (a SQLite COMMIT that returned), ``faiss_write``, ``replace``.
- ``DGS_FAULT=POINT:N``: at the N-th occurrence (1-based) of POINT, create ``DGS_FAULT_DIR/paused`` and
  sleep until ``DGS_FAULT_DIR/continue`` exists (the test usually sends SIGKILL instead). Points:

  ``commit``       just before the N-th ``COMMIT`` statement runs (the transaction is still open);
  ``committed``    just after the N-th ``COMMIT`` returned;
  ``embed``        inside the N-th encoder call, its windows embedded but not yet stored;
  ``faiss_write``  inside ``faiss.write_index``: half of the index's bytes are in the temporary file (a
                   torn write);
  ``replace``      just before ``os.replace`` moves a ``.faiss`` file into place;
  ``replaced``     just after that ``os.replace`` returned (before the catalog moves the generation);
  ``unlink``       just before a ``.faiss`` file is deleted (after the catalog moved the generation).

- ``DGS_FAIL=WHAT``: make a write fail the way a full disk does: ``faiss_write`` (``write_index`` into
  ``/dev/full``, a real ENOSPC), ``replace`` (``os.replace`` raises ENOSPC), ``commit`` (``COMMIT`` raises
  SQLite's "database or disk is full").
"""

from __future__ import annotations

import errno
import importlib.abc
import os
import sqlite3
import sys
import time

_FAULT = os.environ.get("DGS_FAULT", "")
_FAIL = os.environ.get("DGS_FAIL", "")
_DIR = os.environ.get("DGS_FAULT_DIR", "")
_LOG = os.environ.get("DGS_FAULT_LOG", "")
_POINT, _, _NTH = _FAULT.partition(":")
_COUNTS: dict[str, int] = {}


def _log(line: str) -> None:
    if _LOG:
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def _maybe_pause(point: str) -> None:
    _COUNTS[point] = _COUNTS.get(point, 0) + 1
    if point != _POINT or _COUNTS[point] != int(_NTH or 1):
        return
    with open(os.path.join(_DIR, "paused"), "w") as fh:
        fh.write(f"{point}:{_COUNTS[point]} pid {os.getpid()}\n")
    while not os.path.exists(os.path.join(_DIR, "continue")):
        time.sleep(0.02)


# -- SQLite: every connection gets a subclass whose execute() sees COMMIT ------------------------------
class _Connection(sqlite3.Connection):
    def execute(self, sql: str, *args):  # type: ignore[no-untyped-def, override]
        if sql.strip().upper().rstrip(";") == "COMMIT":
            _maybe_pause("commit")
            if _FAIL == "commit":
                raise sqlite3.OperationalError("database or disk is full")
            cur = super().execute(sql, *args)
            _log("commit")
            _maybe_pause("committed")
            return cur
        return super().execute(sql, *args)


_connect = sqlite3.connect


def _patched_connect(*args, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("factory", _Connection)
    return _connect(*args, **kwargs)


sqlite3.connect = _patched_connect  # type: ignore[assignment]

# -- os.replace and Path.unlink of .faiss files -------------------------------------------------------
_replace = os.replace


def _patched_replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
    if os.fspath(dst).endswith(".faiss"):
        _maybe_pause("replace")
        if _FAIL == "replace":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
        _replace(src, dst, *args, **kwargs)
        _log("replace")
        _maybe_pause("replaced")
        return
    _replace(src, dst, *args, **kwargs)


os.replace = _patched_replace

import pathlib  # noqa: E402

_unlink = pathlib.Path.unlink


def _patched_unlink(self, missing_ok=False):  # type: ignore[no-untyped-def]
    if self.name.endswith(".faiss") and not self.name.startswith("."):
        _maybe_pause("unlink")
    return _unlink(self, missing_ok=missing_ok)


pathlib.Path.unlink = _patched_unlink  # type: ignore[method-assign]


# -- lazily imported modules (faiss, the CLAP encoder) are patched right after they load ---------------
def _open_tmp_fd():  # type: ignore[no-untyped-def]
    """The descriptor of the temporary FAISS file this process has open, if any."""
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.endswith(".tmp") and ".faiss." in target:
            return int(name)
    return None


def _patch_faiss(mod) -> None:  # type: ignore[no-untyped-def]
    original = mod.write_index

    def write_index(index, target, *args):  # type: ignore[no-untyped-def]
        if _FAIL == "faiss_write":  # a real ENOSPC from the kernel
            with open("/dev/full", "wb") as full:
                writer = mod.PyCallbackIOWriter(full.write) if not isinstance(target, str) else "/dev/full"
                return original(index, writer, *args)
        if _POINT == "faiss_write" and _COUNTS.get("faiss_write", 0) + 1 == int(_NTH or 1):
            # a torn write: only the first half of the bytes reaches the file before the pause (and kill)
            buf = mod.VectorIOWriter()
            original(index, buf)
            data = mod.vector_to_array(buf.data).tobytes()
            if isinstance(target, str):
                with open(target, "wb") as fh:
                    fh.write(data[: len(data) // 2])
            else:  # a writer object over a Python file: write through that file's descriptor
                fd = _open_tmp_fd()
                if fd is not None:
                    os.write(fd, data[: len(data) // 2])
                    os.fsync(fd)
            _log("faiss_write")
            _maybe_pause("faiss_write")
            return original(index, target, *args)
        original(index, target, *args)
        _log("faiss_write")
        _maybe_pause("faiss_write")

    mod.write_index = write_index


def _patch_clap(mod) -> None:  # type: ignore[no-untyped-def]
    original = mod.ClapEncoder.embed_audio

    def embed_audio(self, windows):  # type: ignore[no-untyped-def]
        out = original(self, windows)
        _log(f"embed {len(windows)}")
        _maybe_pause("embed")
        return out

    mod.ClapEncoder.embed_audio = embed_audio


_HOOKS = {"faiss": _patch_faiss, "diffgap_search.encoders.clap_hf": _patch_clap}


class _AfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name not in _HOOKS:
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):  # type: ignore[no-untyped-def]
            exec_module(module)
            _HOOKS[name](module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


if _FAULT or _FAIL or _LOG:
    sys.meta_path.insert(0, _AfterImport())
else:  # no fault asked for: leave the process untouched
    sqlite3.connect = _connect  # type: ignore[assignment]
    os.replace = _replace
    pathlib.Path.unlink = _unlink  # type: ignore[method-assign]
