"""Joining a Ray cluster for one run, with the errors a user can act on (``EngineUnavailableError``, exit 16)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from diffgap_search.errors import EngineUnavailableError
from diffgap_search.indexing.ray_engine.options import ADDRESS_ENV
from diffgap_search.indexing.ray_engine.watch import ClusterWatch, lost_after_s

INSTALL_HINT = "pip install 'diffgap-search[ray]'"
AUTO_CONNECT_ENV = "RAY_ENABLE_AUTO_CONNECT"
RAYLET_LOG = logging.getLogger("ray.raylet_notes")  # what the raylet pushes to this driver (_raylet_notes_logged)


def import_ray() -> ModuleType:
    """The ``ray`` module with Ray Data, or EngineUnavailableError saying how to install it; its automatic
    ``ray.init`` off for this process (``no_auto_connect``)."""
    no_auto_connect()  # before the import, which reads the variable (or after one: the module's flag)
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EngineUnavailableError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
    return ray


def no_auto_connect() -> None:
    """Ray's first API call in a process not joined calls ``ray.init()`` itself (joining ``RAY_ADDRESS``, or
    starting a runtime) unless ``RAY_ENABLE_AUTO_CONNECT`` is 0: off here, unless the user set it. A run joins
    only where ``ray_session`` says; a thread of Ray Data still stopping after ``ray.shutdown`` then fails in
    Ray's own logs instead of joining behind the run's back (seen: the next run in the process refused
    "ray.init twice"). Ray reads the variable once, when imported: where it was imported already, its module's
    flag is set too."""
    if os.environ.setdefault(AUTO_CONNECT_ENV, "0") != "0":
        return
    hook = sys.modules.get("ray._private.auto_init_hook")
    if hook is not None and hasattr(hook, "enable_auto_connect"):
        hook.enable_auto_connect = False


def where(address: str | None) -> str:
    """The cluster a run joins, in words: ``address``, else ``RAY_ADDRESS``, else a local runtime."""
    chosen = address or os.environ.get(ADDRESS_ENV, "").strip()
    return f"the Ray cluster at {chosen}" if chosen else "a local Ray runtime"


@contextmanager
def ray_session(address: str | None, meanwhile: Callable[[], None] = lambda: None,
                ) -> Iterator[tuple[ModuleType, ClusterWatch]]:
    """Ray connected to ``address`` (None: ``RAY_ADDRESS``, else a local runtime started for the run), quiet on
    stderr, with a ``ClusterWatch`` on its GCS; disconnected (a local runtime stopped) on exit. Raises
    EngineUnavailableError when Ray is missing or the cluster cannot be reached.

    ``meanwhile`` runs on this thread while ``ray.init`` joins (or starts) the cluster on another: the driver
    loads its models then, instead of before (measured: the ~5 s of a local runtime's start hidden behind the
    model load; ``docs/ray.md``). Whatever it raises is raised once Ray has let go again, stderr restored."""
    ray = import_ray()
    chosen = address or os.environ.get(ADDRESS_ENV, "").strip() or None
    lost_s = lost_after_s()  # a bad DGSEARCH_RAY_LOST_S is refused before joining
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # an ignored crashed task: recorded as a failure
    _check_reachable(chosen, where(address))
    with _raylet_notes_logged():
        joining = _Joining(ray, chosen, address)
        try:
            meanwhile()
            joining.result()
            watch = ClusterWatch(_gcs_address(ray), where(address), lost_s).start()
        except BaseException:
            joining.undo()
            raise
        try:
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.print_on_execution_start = False
            yield ray, watch
        finally:
            watch.stop()
            try:
                ray.shutdown()  # a lost cluster: Ray waits ~10 s for its GCS, then lets go
            finally:
                watch.close()
                joining.release()


class _Joining:
    """``ray.init`` on a thread of its own (Ray sets no SIGTERM handler from one: a SIGTERM ends the driver as
    the local engine's, by the crash rule); ``result()`` waits and raises its EngineUnavailableError,
    ``undo()`` waits, disconnects whatever it joined (the run failed meanwhile, or joining did) and releases.

    The thread lives until ``release()``: a local runtime's processes are started with ``PR_SET_PDEATHSIG``,
    which Linux fires when the *thread* that started them ends, so a thread that returned after ``ray.init``
    would take the run's GCS and raylet with it (seen: "went away mid-run" at the first task)."""

    def __init__(self, ray: ModuleType, chosen: str | None, address: str | None) -> None:
        self.ray, self.chosen, self.address = ray, chosen, address
        self.error: BaseException | None = None
        self._joined, self._released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="dgsearch-ray-init", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._init()
        finally:
            self._joined.set()
        self._released.wait()  # the runtime's processes are this thread's children until the run lets go

    def _init(self) -> None:
        try:
            with _quiet_core_worker():
                # no address: "local" starts a runtime for this run (a bare init() would join whatever cluster
                # /tmp/ray/ray_current_cluster last named, and wait forever for one that is gone)
                self.ray.init(address=self.chosen or "local", log_to_driver=False, logging_level=logging.ERROR,
                              configure_logging=False, include_dashboard=False if self.chosen is None else None)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.error = EngineUnavailableError(
                f"cannot join {where(self.address)}: {first} (is it running, and is RAY_AUTH_TOKEN set where it"
                " asks for a token?)")
            self.error.__suppress_context__ = True  # as ``raise ... from None``: one line, not Ray's traceback
        except BaseException as exc:  # noqa: BLE001 - raised on the driver's thread by result()
            self.error = exc

    def result(self) -> None:
        self._joined.wait()
        if self.error is not None:
            raise self.error

    def undo(self) -> None:
        self._joined.wait()
        try:
            if self.error is None and self.ray.is_initialized():
                self.ray.shutdown()
        finally:
            self.release()

    def release(self) -> None:
        """Let the thread end (after ``ray.shutdown``: nothing of the runtime is left to outlive it)."""
        self._released.set()
        self.thread.join()


@contextmanager
def _raylet_notes_logged() -> Iterator[None]:
    """What the raylet pushes to a driver (an actor whose constructor raised: its traceback, once per retry) goes
    to the ``ray`` logger instead of stdout, where Ray's driver prints it and ``--json`` writes the report: the
    run says what failed itself, in one line on stderr. ``DGSEARCH_DEBUG=1`` keeps Ray's printing. (Ray prints
    these from a thread of its own through ``ray._private.worker.print_to_stdstream``; where a Ray version has
    no such function, nothing is changed.)"""
    import ray._private.worker as ray_worker

    printing = getattr(ray_worker, "print_to_stdstream", None)
    if printing is None or os.environ.get("DGSEARCH_DEBUG"):
        yield
        return

    def logged(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            printing(data, ignore_prefix)
            return
        for line in data.get("lines") or ():
            RAYLET_LOG.debug("%s", line)

    ray_worker.print_to_stdstream = logged
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = printing


def _gcs_address(ray: ModuleType) -> str | None:
    """The joined cluster's GCS ``host:port`` (None where Ray does not say: a Ray Client connection)."""
    try:
        address = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - Ray Client and other modes without a GCS client here
        return None
    return address if isinstance(address, str) and ":" in address else None


@contextmanager
def _quiet_core_worker() -> Iterator[None]:
    """Ray's C++ core worker in this process logs fatal errors only: it reads ``RAY_BACKEND_LOG_LEVEL`` when
    ``ray.init`` starts it (and says so on stderr, which is therefore muted for that call). Without this a
    normal run prints Ray's notes on stderr, and a lost cluster a line per task it can no longer report. A
    local runtime that ``ray.init`` starts inherits the level (its logs are files in its session folder).
    ``DGSEARCH_DEBUG=1``, or a ``RAY_BACKEND_LOG_LEVEL`` of the user's, keeps Ray's logs."""
    key = "RAY_BACKEND_LOG_LEVEL"
    if os.environ.get("DGSEARCH_DEBUG") or key in os.environ:
        yield
        return
    os.environ[key] = "fatal"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.environ.pop(key, None)


def _check_reachable(address: str | None, what: str, timeout_s: float = 5.0) -> None:
    """Refuse at once a ``host:port`` where nothing listens (Ray itself would retry for minutes)."""
    if not address or "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise EngineUnavailableError(f"cannot join {what}: {exc.strerror or exc}" if isinstance(exc, OSError)
                                     else f"cannot join {what}: not a host:port") from None
