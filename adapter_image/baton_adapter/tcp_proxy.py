"""Byte-level TCP pass-through: the stopgap handler for ``tcp``, ``grpc`` and ``protobuf`` nodes.

Each client connection is routed once (weights, breakers and connect retries apply; header rules cannot),
then spliced to the chosen backend byte for byte with flow control and half-close both ways. gRPC over h2c
and length-prefixed protobuf pass through unchanged. A mocked node has no mock for raw protocols yet: its
connections are closed at once. Dedicated handlers for these modes can replace this one through
``baton_adapter.protocols.register(..., replace=True)``.

With ``node.tls`` the port terminates TLS and the backend gets the plain bytes (gRPC: ALPN ``h2`` offered,
h2c to the backend). TLS has no half-close in asyncio: when the backend ends its side, the client connection
is closed (after what was relayed), and a client's ``close_notify`` ends both sides.

Telemetry: one signal per connection (method ``TCP``, status 200 once connected, 502/503 when no backend
could be reached; latency = connection lifetime) and one attempt per connect.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .listener import serve_tls

if TYPE_CHECKING:
    from .interfaces import DataNode
    from .routing import Target

__all__ = ["TcpHandler", "TcpProxyProtocol"]


class _Upstream(asyncio.Protocol):
    """The backend side of one spliced connection."""

    __slots__ = ("client", "transport")

    def __init__(self, client: TcpProxyProtocol) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client.bytes_out += len(data)
        self.client.transport.write(data)

    def eof_received(self) -> bool:
        client = self.client
        client.upstream_eof = True
        if not client.transport.can_write_eof():  # TLS: no half-close; close once the relayed bytes are sent
            client.transport.close()
            return False
        client.transport.write_eof()
        return not client.eof_pending  # both directions ended: close (False) rather than linger half-open

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_lost()

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class TcpProxyProtocol(asyncio.Protocol):
    """One client connection on a raw TCP node."""

    # attributes the node's housekeeping and shutdown read on every client connection
    active = None
    exchange = None

    def __init__(self, node: DataNode) -> None:
        self.node = node
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.upstream: asyncio.Transport | None = None
        self.tunnel = self  # never idle-expired by housekeeping: a TCP stream may be quiet for long
        self.target: Target | None = None
        self.started = time.perf_counter()
        self.last_active = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.status = 0
        self.closed = False
        self.closing = False
        self.pending: list[bytes] = []
        self.eof_pending = False  # the client sent EOF
        self.upstream_eof = False  # the backend sent EOF

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        node = self.node
        node.connections.add(self)
        node.telemetry.active_connections += 1
        self.transport.pause_reading()
        node.spawn(self._connect())

    async def _connect(self) -> None:
        node = self.node
        loop = asyncio.get_running_loop()
        failed: set[str] = set()
        attempts = 0
        while not self.closed:
            table = node.routing
            excluded = node.unavailable_targets()
            target = table.choose((), excluded | failed) or table.choose((), excluded)
            if target is None or target.mock:
                self._give_up(503)
                return
            breaker = node.breaker(target.name)
            if not breaker.acquire():
                failed.add(target.name)
                if failed >= {t.name for t in table.targets}:
                    self._give_up(503)
                    return
                continue
            attempts += 1
            node.pool.mark_busy(target.addr, 1)  # counted from the pick: a drain waits for the connect too
            try:
                async with asyncio.timeout(node.timeout_s):
                    transport, _ = await loop.create_connection(lambda: _Upstream(self), target.host, target.port)
            except asyncio.CancelledError:
                node.pool.mark_busy(target.addr, -1)
                raise
            except (OSError, TimeoutError) as exc:
                node.pool.mark_busy(target.addr, -1)
                breaker.failure()
                node.telemetry.attempt_failed(target.name, isinstance(exc, TimeoutError))
                failed.add(target.name)
                if attempts <= node.policy.retries and node.budget.withdraw():
                    await asyncio.sleep(node.backoff_s * attempts)
                    continue
                self._give_up(502)
                return
            breaker.success()
            node.telemetry.attempt(target.name, 200)
            if self.closed:
                node.pool.mark_busy(target.addr, -1)
                transport.close()
                return
            self.target = target
            self.status = 200
            self.upstream = transport  # type: ignore[assignment]
            for chunk in self.pending:
                transport.write(chunk)
            self.pending = []
            if self.eof_pending and transport.can_write_eof():
                transport.write_eof()
            self.transport.resume_reading()
            return

    def _give_up(self, status: int) -> None:
        self.status = status
        if not self.closed:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending.append(data)  # reading is paused until connected: at most one read's worth

    def eof_received(self) -> bool:
        self.eof_pending = True
        if self.upstream is not None and self.upstream.can_write_eof():
            self.upstream.write_eof()
        # both directions ended, or TLS (which cannot stay half-open): close (False) rather than linger
        return not self.upstream_eof and self.node.tls is None

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def upstream_lost(self) -> None:
        if not self.closed:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        node = self.node
        node.connections.discard(self)
        node.telemetry.active_connections -= 1
        if self.upstream is not None:
            self.upstream.close()
            if self.target is not None:
                node.pool.mark_busy(self.target.addr, -1)
        node.telemetry.record(self.target.name if self.target else "-", b"TCP", b"-", self.status or 499,
                              time.perf_counter() - self.started, self.bytes_in, self.bytes_out, "")

    def check_head(self, now: float, limit_s: float) -> None:
        """A raw stream has no request head."""

    def shutdown(self) -> None:
        """Graceful stop: a raw stream has no request boundary, so it runs until the grace period ends."""
        self.closing = True


class TcpHandler:
    """Raw TCP pass-through (registered for tcp, grpc and protobuf until dedicated handlers exist).

    With ``node.tls`` it terminates TLS, offering ALPN ``h2`` for gRPC (whose clients require it) and none
    for other modes.
    """

    def __init__(self, name: str = "tcp") -> None:
        self.name = name
        self.tls_alpn = ("h2",) if name == "grpc" else ()

    async def serve(self, node: DataNode, host: str, port: int) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        tls = node.tls
        if tls is None:
            return await loop.create_server(lambda: TcpProxyProtocol(node), host, port, backlog=1024,
                                            reuse_address=True)
        return await serve_tls(lambda: TcpProxyProtocol(node), host, port, tls, node.limits.header_timeout_s)
