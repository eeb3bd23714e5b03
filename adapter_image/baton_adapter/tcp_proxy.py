"""Byte-level TCP proxy: the handler of ``tcp`` nodes (``grpc`` has its own: ``baton_adapter.grpc_proxy``).

Each client connection is routed once (weights, breakers and connect retries apply; header rules cannot),
then spliced to the chosen backend byte for byte with flow control both ways. A connect that fails sent
nothing: the connection is routed again without the backends that failed it, or held until the routing
changes (``limits.hold_s``, ``baton_adapter.hold``), so a heal loses no connection.

- **Half-close**: a client's ``shutdown(SHUT_WR)`` reaches the backend as EOF while the backend can still
  answer, and a backend's EOF reaches the client while the client can still send.
- **Swap and drain**: a connection keeps the backend it was routed to until it ends; connections accepted
  after a routing change go to the new table. It counts as in flight on its backend for its whole life, so
  ``POST /drain`` waits until the connections to old backends have ended.
- **Idle timeout**: a connection with no byte either way for ``limits.stream_idle_s`` (default 300 s; 0 =
  never) is closed and counted (``idle_timeout``).
- **Shutdown** drains: no new connections; open ones carry on until both sides have ended, bounded by the
  shutdown grace; those still open then are cut and counted (``cut_at_shutdown``).
- **Telemetry**: one signal per connection (method ``TCP``, status 200 once connected, 502/503 when no
  backend could be reached; latency = connection lifetime), one attempt per connect, and per target the
  connection counters of ``baton_adapter.streams`` (opened, active, closed, bytes each way, durations).

A mocked target echoes (``baton_adapter.echo_mock``): the client gets back what it sends. With ``node.tls`` the port
terminates TLS and the backend gets the plain bytes (gRPC: ALPN ``h2`` offered, h2c to the backend). TLS has
no half-close in asyncio: when the backend ends its side, the client connection is closed (after what was
relayed), and a client's ``close_notify`` ends both sides.

Subclasses (``baton_adapter.protobuf_proxy``) relay through the hooks ``from_client`` and ``from_backend``
and end through ``finish``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Callable

from .echo_mock import EchoTransport
from .hold import MAX_HELD, MAX_REROUTES, RoutingWaiter, hold_delay
from .listener import serve_node

if TYPE_CHECKING:
    from .interfaces import DataNode
    from .routing import Target
    from .streams import StreamStats

__all__ = ["TcpHandler", "TcpProxyProtocol"]


class _Upstream(asyncio.Protocol):
    """The backend side of one spliced connection. Until the client side takes it (``attach``), what the backend
    does is kept and then replayed in order: a backend that speaks first (a greeting, as SMTP's or MySQL's) can
    send before the connecting coroutine has resumed."""

    __slots__ = ("client", "transport", "early")

    def __init__(self, client: TcpProxyProtocol) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes | None | Exception] | None = []  # data, None for EOF, or how it was lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def attach(self) -> None:
        """The client side has taken this connection: replay what came before."""
        early, self.early = self.early, None
        for event in early or ():
            if isinstance(event, bytes):
                self.data_received(event)
            elif event is None:
                if not self.eof_received() and self.transport is not None:
                    self.transport.close()
            else:
                self.connection_lost(event)

    def data_received(self, data: bytes) -> None:
        if self.early is not None:
            self.early.append(bytes(data))
            return
        client = self.client
        client.last_io = client.node.loop.time()
        client.from_backend(data)

    def eof_received(self) -> bool:
        if self.early is not None:
            self.early.append(None)
            return True  # kept open until replayed
        return self.client.backend_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.early is not None:
            self.early.append(exc or ConnectionResetError("the backend closed the connection"))
            return
        self.client.upstream_lost()

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.resume_client()


class TcpProxyProtocol(asyncio.Protocol):
    """One client connection on a raw TCP node."""

    signal_method = b"TCP"  # the method of this connection's signals

    # attributes the node's housekeeping and shutdown read on every client connection
    active = None
    exchange = None

    def __init__(self, node: DataNode) -> None:
        self.node = node
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.upstream: asyncio.Transport | None = None
        self.tunnel = self  # never expired by the node's housekeeping: idle streams are timed here
        self.target: Target | None = None
        self.stats: StreamStats | None = None  # the target's stream counters, once connected
        self.started = time.perf_counter()
        self.last_active = 0.0
        self.last_io = 0.0  # loop time of the last byte either way
        self.idle_timer: asyncio.TimerHandle | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.status = 0
        self.closed = False
        self.closing = False  # the node is shutting down
        self.pending: list[bytes] = []
        self.eof_pending = False  # the client sent EOF
        self.upstream_eof = False  # the backend sent EOF
        self.hold_until = 0.0  # when holding for a backend ends (0: it never held)
        self.holds = 0

    # -- client side ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        node = self.node
        node.connections.add(self)
        node.telemetry.active_connections += 1
        node.telemetry.streams.open += 1
        self.closing = node.closing
        self.transport.pause_reading()
        idle = node.limits.stream_idle_s
        if idle:
            self.last_io = node.loop.time()
            self.idle_timer = node.loop.call_later(idle, self._idle_check)
        node.spawn(self._connect())

    def data_received(self, data: bytes) -> None:
        self.last_io = self.node.loop.time()
        if self.upstream is not None:
            self.from_client(data)
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

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        node = self.node
        node.connections.discard(self)
        node.telemetry.active_connections -= 1
        node.telemetry.streams.open -= 1
        if self.upstream is not None:
            self.upstream.close()
            if self.target is not None:
                node.pool.mark_busy(self.target.addr, -1)
        lifetime = time.perf_counter() - self.started
        stats = self.stats
        if stats is not None:
            self.finish()
            if self.closing and not self.ended_well():
                stats.error("cut_at_shutdown")
            node.telemetry.streams.closed(stats, lifetime)
        self.record_connection(lifetime)

    # -- relaying (the hooks a frame-aware subclass overrides) ----------------------------------------------

    def from_client(self, data: bytes) -> None:
        """Relay bytes the client sent (called once connected)."""
        n = len(data)
        self.bytes_in += n
        self.stats.bytes_in += n  # type: ignore[union-attr]
        self.upstream.write(data)  # type: ignore[union-attr]

    def from_backend(self, data: bytes) -> None:
        """Relay bytes the backend sent."""
        n = len(data)
        self.bytes_out += n
        self.stats.bytes_out += n  # type: ignore[union-attr]
        self.transport.write(data)

    def backend_eof(self) -> bool:
        """The backend ended its side: pass the EOF on; True keeps the upstream open for the client's bytes."""
        self.upstream_eof = True
        if not self.transport.can_write_eof():  # TLS: no half-close; close once the relayed bytes are sent
            self.transport.close()
            return False
        self.transport.write_eof()
        return not self.eof_pending  # both directions ended: close (False) rather than linger half-open

    def upstream_lost(self) -> None:
        if not self.closed:
            self.transport.close()

    def resume_client(self) -> None:
        """The backend takes bytes again: read the client again."""
        if not self.closed and not self.transport.is_closing():
            self.transport.resume_reading()

    def ended_well(self) -> bool:
        """Both directions ended with an EOF (with TLS: the backend's EOF was relayed and the client closed)."""
        return self.upstream_eof and (self.eof_pending or self.node.tls is not None)

    def finish(self) -> None:
        """The connection is over (after it was connected): count what its end cut."""

    def record_connection(self, lifetime: float) -> None:
        """The connection's signal: one per connection."""
        target = self.target
        self.node.telemetry.record(target.name if target else "-", self.signal_method, b"-", self.status or 499,
                                   lifetime, self.bytes_in, self.bytes_out, "")

    def shutdown(self) -> None:
        """Graceful stop: a raw stream has no boundary to stop at, so it runs until it ends or the grace does."""
        self.closing = True

    def check_head(self, now: float, limit_s: float) -> None:
        """A raw stream has no request head."""

    # -- connecting -----------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        """Pick a backend and connect. A connect that fails sent nothing, so the connection is routed again
        without the backends that failed it (at most ``MAX_REROUTES`` times; ``policy.retries`` may also try a
        failed one again after a back-off); when no backend is left it holds for a routing change
        (``limits.hold_s``, as HTTP requests and gRPC calls do), and only then is it closed."""
        node = self.node
        loop = asyncio.get_running_loop()
        failed: set[str] = set()
        attempts = reroutes = 0
        while not self.closed:
            table = node.routing
            excluded = node.unavailable_targets()
            target = table.choose((), excluded | failed)
            if target is None and failed and attempts <= node.policy.retries and node.budget.withdraw():
                await asyncio.sleep(node.backoff_s * attempts)
                target = node.routing.choose((), node.unavailable_targets())
            if target is None or reroutes > MAX_REROUTES:
                if not self.closed and await self._hold():
                    failed.clear()
                    reroutes = 0
                    continue
                self._give_up(502 if attempts else 503)
                return
            if target.mock:  # the raw modes' mock echoes (baton_adapter.echo_mock)
                node.pool.mark_busy(target.addr, 1)
                node.telemetry.attempt(target.name, 200)
                self._connected(target, EchoTransport(self, loop))
                return
            breaker = node.breaker(target.name)
            if not breaker.acquire():
                failed.add(target.name)
                continue
            attempts += 1
            node.pool.mark_busy(target.addr, 1)  # counted from the pick: a drain waits for the connect too
            try:
                async with asyncio.timeout(node.timeout_s):
                    transport, upstream = await loop.create_connection(lambda: _Upstream(self), target.host,
                                                                       target.port)
            except asyncio.CancelledError:
                node.pool.mark_busy(target.addr, -1)
                raise
            except (OSError, TimeoutError) as exc:
                node.pool.mark_busy(target.addr, -1)
                breaker.failure()
                node.telemetry.attempt_failed(target.name, isinstance(exc, TimeoutError))
                failed.add(target.name)
                reroutes += 1
                continue
            breaker.success()
            node.telemetry.attempt(target.name, 200)
            if self.closed or self.transport.is_closing():
                node.pool.mark_busy(target.addr, -1)
                transport.close()
                return
            self._connected(target, transport)  # type: ignore[arg-type]
            upstream.attach()
            return

    async def _hold(self) -> bool:
        """Wait for the node's routing to change (or a while, to try the same table again), within
        ``limits.hold_s`` of the first hold; False when not holding (no hold, shutting down, or its time is up)."""
        node = self.node
        hold_s = node.limits.hold_s
        if hold_s <= 0 or node.closing or len(node.held) >= MAX_HELD:
            return False
        now = node.loop.time()
        if not self.hold_until:
            self.hold_until = now + hold_s
        if now >= self.hold_until:
            return False
        self.holds += 1
        waiter = RoutingWaiter()
        node.held.add(waiter)
        try:
            await waiter.wait(hold_delay(self.holds, self.hold_until - now))
        finally:
            node.held.discard(waiter)
        return not self.closed

    def _connected(self, target: Target, transport: asyncio.Transport) -> None:
        self.target = target
        self.status = 200
        self.upstream = transport
        stats = self.stats = self.node.telemetry.streams.stats(target.name)
        stats.opened += 1
        pending, self.pending = self.pending, []
        for chunk in pending:
            self.from_client(chunk)
        if self.eof_pending and transport.can_write_eof():
            transport.write_eof()
        self.resume_client()

    def _give_up(self, status: int) -> None:
        self.status = status
        if not self.closed:
            self.transport.close()

    # -- idle timeout ---------------------------------------------------------------------------------------

    def _idle_check(self) -> None:
        self.idle_timer = None
        if self.closed:
            return
        node = self.node
        limit = node.limits.stream_idle_s
        idle = node.loop.time() - self.last_io
        if idle < limit:
            self.idle_timer = node.loop.call_later(limit - idle, self._idle_check)
            return
        (self.stats or node.telemetry.streams.stats("-")).error("idle_timeout")
        node.log.info("node %s: closing a stream idle for %.0f s", node.name, idle)
        self.end()

    def end(self) -> None:
        """Close both sides now: gracefully when nothing waits to be written, else at once."""
        for transport in (self.upstream, self.transport):
            if transport is not None and not transport.is_closing():
                if transport.get_write_buffer_size():
                    transport.abort()
                else:
                    transport.close()


class TcpHandler:
    """Raw TCP pass-through (registered for tcp).

    With ``node.tls`` it terminates TLS, offering ALPN ``h2`` for gRPC (whose clients require it) and none
    for other modes.
    """

    protocol: Callable[[DataNode], asyncio.Protocol] = TcpProxyProtocol

    def __init__(self, name: str = "tcp") -> None:
        self.name = name
        self.tls_alpn: tuple[str, ...] = ()  # raw bytes: no application protocol to offer

    async def serve(self, node: DataNode, host: str, port: int) -> asyncio.AbstractServer:
        protocol = type(self).protocol
        return await serve_node(lambda: protocol(node), node, host, port)
