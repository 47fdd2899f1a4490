"""Joining a Ray cluster for one run, with the errors a user can act on (``EngineUnavailableError``, exit 16)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from diffgap_search.errors import EngineUnavailableError
from diffgap_search.indexing.ray_engine.options import ADDRESS_ENV

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
def ray_session(address: str | None) -> Iterator[ModuleType]:
    """Ray connected to ``address`` (None: ``RAY_ADDRESS``, else a local runtime started for the run), quiet on
    stderr; disconnected (a local runtime stopped) on exit. Raises EngineUnavailableError when Ray is missing
    or the cluster cannot be reached."""
    ray = import_ray()
    chosen = address or os.environ.get(ADDRESS_ENV, "").strip() or None
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # an ignored crashed task: recorded as a failure
    _check_reachable(chosen, where(address))
    try:
        # no address: "local" starts a runtime for this run (a bare init() would join whatever cluster
        # /tmp/ray/ray_current_cluster last named, and wait forever for one that is gone)
        ray.init(address=chosen or "local", log_to_driver=False, logging_level=logging.ERROR, configure_logging=False,
                 include_dashboard=False if chosen is None else None)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise EngineUnavailableError(
            f"cannot join {where(address)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            " (is it running, and is RAY_AUTH_TOKEN set where it asks for a token?)") from None
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        yield ray
    finally:
        ray.shutdown()


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
