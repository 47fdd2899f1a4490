"""``dgsearch serve``'s library function: check the bind, open the index, warm up, run uvicorn.

The socket is bound and listening before the address is printed (``dgsearch serve: http://HOST:PORT/``
on stderr), so a client may connect as soon as it reads that line; ``--port 0`` takes any free port and
prints the one it got. Any address but loopback is refused without ``--token`` (``UsageError``, exit 2):
the server plays every file of the index to whoever can reach it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import webbrowser

from diffgap_search.encoders.base import EncoderLoader, QueryVideoLoader
from diffgap_search.errors import UsageError
from diffgap_search.serve.state import ServeConfig, SharedSearcher
from diffgap_search.store.catalog import Catalog

__all__ = ["ServeConfig", "check_bind", "is_loopback", "serve_forever"]


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(cfg: ServeConfig) -> None:
    """Refuse a non-loopback address without a token (exit 2)."""
    if not is_loopback(cfg.host) and not cfg.token:
        raise UsageError(
            f"refusing to listen on {cfg.host} without --token: anyone who can reach it could search the index and"
            " play its files; give --token SECRET (every request must then carry it), or listen on 127.0.0.1"
        )


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket for uvicorn. Made with ``IPPROTO_TCP`` named, not the default ``0``:
    asyncio sets ``TCP_NODELAY`` only on accepted sockets whose ``proto`` is ``IPPROTO_TCP``, and they inherit
    the listener's. Without it every keep-alive response (headers and body are two writes) waited on Nagle's
    algorithm for the client's delayed ACK: +40-50 ms per request on loopback (``benchmarks/bench_serve.py``)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


OPENMP_WAIT_ENV = "OMP_WAIT_POLICY"


def passive_openmp() -> bool:
    """Make GNU OpenMP's idle threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``) in this process, unless the
    user set a policy; True when it takes effect (neither torch nor faiss, which each load a libgomp that reads
    the variable once, is imported yet).

    Why: by default an OpenMP team spins for a while after every parallel region, waiting for the next one.
    For one process alone that is free; beside a ``dgsearch index`` writing the same index on the same cores,
    the server's spinning team and the writer's took the CPU from each other's real work. The server has one
    team (one search thread, ``state.py``): with 8 clients and a writer it answered 4.1-8.8 queries/s spinning
    and 19.9 passive, the same as the many-team pool-thread server, whose libgomp had already throttled its
    spinning for having more threads than cores (``benchmarks/bench_serve_load_ab.py``)."""
    os.environ.setdefault(OPENMP_WAIT_ENV, "PASSIVE")
    return "torch" not in sys.modules and "faiss" not in sys.modules


def serve_forever(cfg: ServeConfig, *, load_encoder: EncoderLoader,
                  load_video_encoder: QueryVideoLoader | None = None, open_browser: bool = False) -> None:
    """Serve ``cfg.index_dir`` until interrupted. Raises IndexNotFoundError (exit 4) for a missing index,
    UsageError for a refused or unavailable address."""
    passive_openmp()  # before anything imports torch or faiss
    import uvicorn

    from diffgap_search.serve.app import create_app, wrap

    check_bind(cfg)
    Catalog.open(cfg.index_dir).close()  # a missing or unreadable index fails now, with its exit code
    shared = SharedSearcher(cfg, load_encoder, load_video_encoder)
    shared.warm_up()
    app = wrap(create_app(shared, cfg), cfg)
    sock = _listening_socket(cfg.host, cfg.port)
    port = sock.getsockname()[1]
    shown = f"[{cfg.host.strip('[]')}]" if ":" in cfg.host else cfg.host
    url = f"http://{shown}:{port}/" + (f"?token={cfg.token}" if cfg.token else "")
    print(f"dgsearch serve: {url} (index {cfg.index_dir}; Ctrl-C stops)", file=sys.stderr, flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])
    finally:
        shared.close()
        sock.close()
