"""The server's listening socket: connections asyncio accepts from it send without Nagle's delay.

uvicorn serves on the socket ``serve.run._listening_socket`` makes, through asyncio's ``create_server(sock=)``;
asyncio turns ``TCP_NODELAY`` on for an accepted connection only when its ``proto`` is ``IPPROTO_TCP``, and
an accepted socket inherits the listener's. A listener made with the default ``proto`` 0 left Nagle on, and
every keep-alive response (headers and body are two writes) waited ~40 ms for the client's delayed ACK
(``benchmarks/bench_serve.py``: 53 ms of a 60 ms "more like this" request). Checked here on a real asyncio
server, as uvicorn runs it, without timing anything.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from diffgap_search.serve.run import _listening_socket


def _accepted_nodelay(host: str) -> int:
    """``TCP_NODELAY`` of the connection an asyncio server on ``_listening_socket(host, 0)`` accepts."""
    seen: list[int] = []

    async def main() -> None:
        sock = _listening_socket(host, 0)
        accepted = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            accepted.set()
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            port = sock.getsockname()[1]
            _, writer = await asyncio.open_connection(host.strip("[]"), port)
            await asyncio.wait_for(accepted.wait(), timeout=10)
            writer.close()

    asyncio.run(main())
    return seen[0]


def test_the_listener_is_a_tcp_socket_by_protocol() -> None:
    sock = _listening_socket("127.0.0.1", 0)
    try:
        assert (sock.family, sock.type, sock.proto) == (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    finally:
        sock.close()


def test_accepted_connections_have_nagle_off() -> None:
    assert _accepted_nodelay("127.0.0.1") != 0


def test_accepted_ipv6_connections_have_nagle_off() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    assert _accepted_nodelay("[::1]") != 0
