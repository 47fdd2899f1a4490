"""Joining a Ray cluster for one run, with the errors a user can act on (``EngineUnavailableError``, exit 16)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from diffgap_search.errors import EngineUnavailableError
from diffgap_search.indexing.ray_engine.options import ADDRESS_ENV
from diffgap_search.indexing.ray_engine.watch import ClusterWatch, lost_after_s

INSTALL_HINT = "pip install 'diffgap-search[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module with Ray Data, or EngineUnavailableError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EngineUnavailableError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
    return ray


def where(address: str | None) -> str:
    """The cluster a run joins, in words: ``address``, else ``RAY_ADDRESS``, else a local runtime."""
    chosen = address or os.environ.get(ADDRESS_ENV, "").strip()
    return f"the Ray cluster at {chosen}" if chosen else "a local Ray runtime"


@contextmanager
def ray_session(address: str | None) -> Iterator[tuple[ModuleType, ClusterWatch]]:
    """Ray connected to ``address`` (None: ``RAY_ADDRESS``, else a local runtime started for the run), quiet on
    stderr, with a ``ClusterWatch`` on its GCS; disconnected (a local runtime stopped) on exit. Raises
    EngineUnavailableError when Ray is missing or the cluster cannot be reached."""
    ray = import_ray()
    chosen = address or os.environ.get(ADDRESS_ENV, "").strip() or None
    lost_s = lost_after_s()  # a bad DGSEARCH_RAY_LOST_S is refused before joining
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # an ignored crashed task: recorded as a failure
    _check_reachable(chosen, where(address))
    try:
        with _quiet_core_worker():
            # no address: "local" starts a runtime for this run (a bare init() would join whatever cluster
            # /tmp/ray/ray_current_cluster last named, and wait forever for one that is gone)
            ray.init(address=chosen or "local", log_to_driver=False, logging_level=logging.ERROR,
                     configure_logging=False, include_dashboard=False if chosen is None else None)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise EngineUnavailableError(
            f"cannot join {where(address)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            " (is it running, and is RAY_AUTH_TOKEN set where it asks for a token?)") from None
    watch = ClusterWatch(_gcs_address(ray), where(address), lost_s).start()
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
