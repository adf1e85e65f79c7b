"""An httpx transport whose every connection is checked by a :class:`HostGuard`.

Why here: httpx opens each connection (the step's request and every redirect hop) through
httpcore's network backend, given the URL's host name. The backend below resolves that
name once, checks every address it resolves to, and connects to a checked address, never
to the name: a DNS answer that changes between the check and the connect (DNS rebinding)
cannot slip past. TLS still verifies the certificate for the host name, which httpcore
hands to the handshake after the connection is open. A pooled connection is reused only
for its own origin, which was checked when it was opened.

A transport given to httpx turns off proxies from the environment (``HTTP_PROXY``...):
through a proxy the connection would go to the proxy, and the check would say nothing
about where the request ends up.

Imported when a request is sent (it imports httpx), like :mod:`.http`'s sending half.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx

from .http_guard import Address, HostGuard


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, connecting only to addresses the guard accepted."""

    def __init__(self, guard: HostGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port)
        self._guard.check(host, addresses)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # check() refuses a host without addresses
        raise failure

    async def connect_unix_socket(
            self, path: str, timeout: float | None = None,
            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("HTTP steps do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (its request and response handling, its error mapping) over a
    connection pool that opens connections through :class:`GuardedBackend`."""

    def __init__(self, guard: HostGuard) -> None:
        super().__init__()
        # httpx's transport takes no network backend: its pool is replaced by an equal one
        # that has ours (the guard tests fail, loudly, if httpx stops using this attribute).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=GuardedBackend(guard))


async def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, in the resolver's order, each once."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve host '{host}': {exc}") from None
    addresses: list[Address] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    return addresses
