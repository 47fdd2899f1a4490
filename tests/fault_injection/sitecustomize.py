"""Fault injection for subprocess tests: put this folder first on ``PYTHONPATH`` and set ``DGS_FAULT``.

Test-only: nothing in ``diffgap_search`` knows about it. Python imports ``sitecustomize`` at start-up, so a
``dgsearch`` subprocess started with this folder on its path gets these wrappers:

- ``DGS_FAULT_LOG``: a file that gets one line per event: ``embed N`` (N windows embedded by one encoder
  call), ``commit`` (a SQLite COMMIT that returned), ``faiss_write``, ``replace``, ``faiss_read NAME`` (a
  published FAISS file about to be opened by ``vector_index.read_checked``), ``faiss_train CLASS`` (a FAISS
  index's ``train`` called from Python: k-means of an IVF index, for instance).
- ``DGS_FAULT=POINT:N``: at the N-th occurrence (1-based) of POINT, create ``DGS_FAULT_DIR/paused`` and
  sleep until ``DGS_FAULT_DIR/continue`` exists (the test usually sends SIGKILL instead). Points:

  ``commit``       just before the N-th ``COMMIT`` statement runs (the transaction is still open);
  ``committed``    just after the N-th ``COMMIT`` returned;
  ``embed``        inside the N-th encoder call, its windows embedded but not yet stored;
  ``faiss_write``  inside ``faiss.write_index``: half of the index's bytes are in the temporary file (a
                   torn write);
  ``replace``      just before ``os.replace`` moves a ``.faiss`` file into place;
  ``replaced``     just after that ``os.replace`` returned (before the catalog moves the generation);
  ``unlink``       just before a ``.faiss`` file is deleted (after the catalog moved the generation);
  ``faiss_read``   just before a published ``.faiss`` file is opened for reading: a reader between the
                   catalog record it read and the file it names (holding the readers' lock).

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


def _announce_pause(line: str) -> None:
    """``DGS_FAULT_DIR/paused`` holding ``line``, whole the moment it exists: written under another name, then
    renamed (a test that saw an empty ``paused`` being written read no pid: seen once in CI)."""
    tmp = os.path.join(_DIR, f".paused.{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(line)
    os.replace(tmp, os.path.join(_DIR, "paused"))


def _maybe_pause(point: str) -> None:
    _COUNTS[point] = _COUNTS.get(point, 0) + 1
    if point != _POINT or _COUNTS[point] != int(_NTH or 1):
        return
    _announce_pause(f"{point}:{_COUNTS[point]} pid {os.getpid()}\n")
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


def _patch_faiss_train(mod) -> None:  # type: ignore[no-untyped-def]
    """Log every ``train`` call made from Python on any FAISS index class."""
    for name in dir(mod):
        cls = getattr(mod, name)
        if not (isinstance(cls, type) and issubclass(cls, mod.Index) and "train" in cls.__dict__):
            continue

        def make(original):  # type: ignore[no-untyped-def]
            def train(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                _log(f"faiss_train {type(self).__name__}")
                return original(self, *args, **kwargs)

            return train

        cls.train = make(cls.__dict__["train"])


def _patch_vector_index(mod) -> None:  # type: ignore[no-untyped-def]
    original = mod.read_checked

    def read_checked(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        _log(f"faiss_read {os.path.basename(path)}")
        _maybe_pause("faiss_read")
        return original(path, *args, **kwargs)

    mod.read_checked = read_checked


def _patch_faiss_all(mod) -> None:  # type: ignore[no-untyped-def]
    _patch_faiss(mod)
    _patch_faiss_train(mod)


_HOOKS = {"faiss": _patch_faiss_all, "diffgap_search.encoders.clap.encoder": _patch_clap,
          "diffgap_search.store.vector_index": _patch_vector_index}


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


# == decode faults (issue 14: a crashing or hanging decoder costs one file) ===========================
# ``DGS_DECODE_FAULT="segv:a.wav,hang:b.wav"``: the decode task (``indexing.decode.decode_file``, in a
# worker process or inline) of a file with that name, instead of decoding it:
#   ``segv``   kills its own process with SIGSEGV (a segfault in a native decoder);
#   ``abort``  calls ``os.abort()`` (SIGABRT, a failed assertion in C);
#   ``exit``   calls ``os._exit(3)`` (a library that exits the process);
#   ``hang``   blocks forever in native code *holding the GIL* (``sleep`` through ``ctypes.PyDLL``), so no
#              Python thread of that process runs again: only a kill from outside ends it;
#   ``raise``  raises ``AssertionError`` (a bug in the decoding code, not bad media: the run aborts), once
#              every ``hang`` asked beside it has begun (up to 60 s), so the run aborts while they hang
#              whatever order a busy machine's workers reach their files in.
# ``stream-ACTION`` does the same in the worker that streams a long file (``indexing.decode.stream_task``)
# instead, once it has produced its first window. Each logs ``decode_fault ACTION NAME PID`` to
# ``DGS_FAULT_LOG`` first.
_DECODE_FAULTS = {  # file name -> action
    name: action
    for action, _, name in (part.partition(":") for part in os.environ.get("DGS_DECODE_FAULT", "").split(","))
    if name
}


def _decode_fault(action: str, path) -> None:  # type: ignore[no-untyped-def]
    name = os.path.basename(os.fspath(path))
    _log(f"decode_fault {action} {name} {os.getpid()}")
    if action == "segv":
        os.kill(os.getpid(), 11)
    elif action == "abort":
        os.abort()
    elif action == "exit":
        os._exit(3)
    elif action == "hang":
        import ctypes

        while True:
            ctypes.PyDLL(None).sleep(3600)
    elif action == "raise":
        _await_hangs()
        raise AssertionError(f"injected decoder bug on {name}")


def _await_hangs(timeout_s: float = 60.0) -> None:
    """Until the fault log shows every ``hang`` of ``DGS_DECODE_FAULT`` begun (or ``timeout_s`` passed)."""
    import time

    wanted = {f"decode_fault hang {name} " for name, action in _DECODE_FAULTS.items() if action == "hang"}
    deadline = time.monotonic() + timeout_s
    while wanted and _LOG and time.monotonic() < deadline:
        try:
            with open(_LOG) as f:
                seen = f.read()
        except OSError:
            seen = ""
        wanted = {w for w in wanted if w not in seen}
        time.sleep(0.05)


def _patch_decode(mod) -> None:  # type: ignore[no-untyped-def]
    original, original_stream = mod.decode_file, mod.stream_task

    def decode_file(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        action = _DECODE_FAULTS.get(os.path.basename(os.fspath(path)), "")
        if action and not action.startswith("stream-"):
            _decode_fault(action, path)
        return original(path, *args, **kwargs)

    def stream_task(args):  # type: ignore[no-untyped-def]
        action = _DECODE_FAULTS.get(os.path.basename(os.fspath(args[0])), "")
        for n, x in enumerate(original_stream(args)):
            yield x
            if n == 1 and action.startswith("stream-"):
                _decode_fault(action[len("stream-"):], args[0])

    stream_task.__module__, stream_task.__qualname__ = mod.__name__, "stream_task"  # picklable by name
    mod.decode_file, mod.stream_task = decode_file, stream_task


if _DECODE_FAULTS:
    _HOOKS["diffgap_search.indexing.decode"] = _patch_decode
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


# == decode worker faults (issue 26: a worker killed while it starts) ==================================
# ``DGS_WORKER_FAULT="start:N"`` (or ``task:N``, ``idle:N``): the N-th decode worker process of the run
# (workers are numbered across processes by the files ``worker.K`` they create in ``DGS_FAULT_DIR``) pauses
#   ``start``  before it tells the run it is ready (while a real one would still import its libraries);
#   ``task``   holding its first task, before it runs it;
#   ``idle``   after it sent its first result, before it reads its next task;
#   ``doom``   (every worker from the N-th on) kills itself with SIGKILL before it is ready;
# the first three writing ``DGS_FAULT_DIR/paused`` ("worker_start:N pid P"), until ``DGS_FAULT_DIR/continue`` exists: the test
# sends it SIGKILL instead. Each worker logs ``worker N PID`` to ``DGS_FAULT_LOG`` when it starts.
_WORKER_POINT, _, _WORKER_NTH = os.environ.get("DGS_WORKER_FAULT", "").partition(":")
_WORKER_ORDINAL: list[int] = []


def _claim_worker_ordinal() -> int:
    k = 1
    while True:
        try:
            os.close(os.open(os.path.join(_DIR, f"worker.{k}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return k
        except FileExistsError:
            k += 1


def _worker_pause(point: str) -> None:
    if point != _WORKER_POINT or not _WORKER_ORDINAL or _WORKER_ORDINAL[0] != int(_WORKER_NTH or 1):
        return
    _WORKER_ORDINAL[0] = -1  # once
    _announce_pause(f"worker_{point}:{_WORKER_NTH} pid {os.getpid()}\n")
    while not os.path.exists(os.path.join(_DIR, "continue")):
        time.sleep(0.02)


def _patch_pool(mod) -> None:  # type: ignore[no-untyped-def]
    start, next_task, send = mod._start_worker, mod._next_task, mod._send

    def _start_worker(conn, parent_pid):  # type: ignore[no-untyped-def]
        _WORKER_ORDINAL.append(_claim_worker_ordinal())
        _log(f"worker {_WORKER_ORDINAL[0]} {os.getpid()}")
        if _WORKER_POINT == "doom" and _WORKER_ORDINAL[0] >= int(_WORKER_NTH or 1):
            os.kill(os.getpid(), 9)
        _worker_pause("start")
        return start(conn, parent_pid)

    def _next_task(conn):  # type: ignore[no-untyped-def]
        task = next_task(conn)
        if task is not None:
            _worker_pause("task")
        return task

    def _send(conn, msg):  # type: ignore[no-untyped-def]
        send(conn, msg)
        _worker_pause("idle")

    mod._start_worker, mod._next_task, mod._send = _start_worker, _next_task, _send


if _WORKER_POINT:
    _HOOKS["diffgap_search.indexing.pool"] = _patch_pool
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
