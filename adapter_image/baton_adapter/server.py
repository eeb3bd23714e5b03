"""The client side of the HTTP data plane: an asyncio protocol on httptools' request parser.

One ``HttpProxyProtocol`` serves one client connection: it parses requests (enforcing the header-size and
body-size limits with 431 and 413), hands each to an ``Exchange`` and relays flow control both ways. Requests
are answered in order; a pipelined request waits until the one before it is answered.
After a successful ``Upgrade`` (WebSocket) the connection becomes a raw tunnel to the backend.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

import httptools

from .exchange import Exchange, simple_response
from .listener import serve_node

if TYPE_CHECKING:
    from .interfaces import DataNode
    from .upstream import UpstreamConnection

__all__ = ["HttpHandler", "HttpProxyProtocol"]

# pipelined requests parsed ahead of the one being answered; reading pauses beyond this. Reading otherwise
# continues while a response is relayed, so a client that disconnects is noticed at once (and its upstream
# request aborted) even when the backend is silent.
MAX_PIPELINE = 8
# how long a refused request's remaining input is drained before the connection closes
LINGER_S = 5.0


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; the status is on the protocol."""


class HttpProxyProtocol(asyncio.Protocol):
    """One client connection on a node's data port (``exchange_type``: what each request becomes; a subclass
    names its own, as ``soap_proxy`` does)."""

    exchange_type = Exchange
    PAUSE_PIPELINE = 1
    PAUSE_BUFFER = 2
    PAUSE_UPSTREAM = 4
    PAUSE_UPGRADE = 8

    __slots__ = (
        "node", "max_header", "max_body", "transport", "parser", "peer_ip", "exchange", "active", "queue",
        "paused", "url", "headers", "header_bytes", "error_status", "tunnel", "upgrading", "upgrade_buffer",
        "closed", "closing", "paused_upstream", "last_active", "lingering", "linger_timer",
        "in_head", "raw_head_bytes", "completed", "head_started", "scheme",
    )

    def __init__(self, node: DataNode) -> None:
        self.node = node
        self.max_header = node.limits.max_header_bytes
        self.max_body = node.limits.max_body_bytes
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.peer_ip = b""
        self.exchange: Exchange | None = None  # the request whose head/body is being parsed
        self.active: Exchange | None = None  # the request being answered
        self.queue: deque[Exchange] = deque()
        self.paused = 0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.error_status = 0
        self.tunnel: asyncio.Transport | None = None
        self.upgrading = False
        self.upgrade_buffer: list[bytes] = []
        self.closed = False
        self.closing = False
        self.paused_upstream: asyncio.Transport | None = None
        self.last_active = 0.0
        self.lingering = False
        self.linger_timer: asyncio.TimerHandle | None = None
        self.in_head = True  # between messages or inside a request head
        self.raw_head_bytes = 0
        self.completed = 0
        self.head_started = 0.0  # loop time of the first byte of a head still incomplete after a read
        self.scheme = b"http" if node.tls is None else b"https"  # X-Forwarded-Proto unless a proxy set it

    # -- asyncio.Protocol -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0].encode() if peer else b""
        node = self.node
        node.connections.add(self)
        node.telemetry.active_connections += 1
        self.last_active = node.loop.time()
        if node.closing:
            self.closing = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.linger_timer is not None:
            self.linger_timer.cancel()
            self.linger_timer = None
        node = self.node
        node.connections.discard(self)
        node.telemetry.active_connections -= 1
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        active = self.active
        self.queue.clear()
        if active is not None and not active.finished:
            active.client_gone()
        self.active = None

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # discarding the rest of a refused request before closing
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.upgrading:
            self.upgrade_buffer.append(data)
            return
        completed = self.completed
        try:
            self.parser.feed_data(data)
            if self.in_head:
                # httptools buffers a header line until it ends, so a head that never ends must be bounded
                # here, on raw bytes (after a message completed in this read, counting restarts next read)
                if completed != self.completed:
                    self.raw_head_bytes = 0
                else:
                    if not self.raw_head_bytes:
                        self.head_started = self.node.loop.time()  # a head spans reads: its deadline runs
                    self.raw_head_bytes += len(data)
                    if self.raw_head_bytes > self.max_header:
                        self.error_status = 431
                        self._reject(431)
        except httptools.HttpParserUpgrade as exc:
            self.upgrading = True
            rest = data[exc.args[0]:]
            if rest:
                self.upgrade_buffer.append(rest)
            self.pause(self.PAUSE_UPGRADE)
        except httptools.HttpParserError as exc:
            status = self.error_status
            if not status:
                if isinstance(exc, httptools.HttpParserCallbackError) and not isinstance(exc.__context__, ValueError):
                    self.node.log.error("node %s: request handling failed", self.node.name, exc_info=exc.__context__)
                    status = 500
                else:
                    status = 400
            self._reject(status)

    def pause_writing(self) -> None:
        active = self.active
        conn = active.conn if active is not None else None
        transport = conn.transport if conn is not None else self.tunnel
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
            self.paused_upstream = transport

    def resume_writing(self) -> None:
        transport = self.paused_upstream
        self.paused_upstream = None
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- httptools callbacks --------------------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.max_header:
            self.error_status = 431
            raise _Reject

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.max_header:
            self.error_status = 431
            raise _Reject
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        ex = self.exchange_type(self, parser.get_method(), self.url, self.headers, parser.should_keep_alive(),
                                parser.get_http_version() == "1.1")
        # reset for the next message here rather than in an on_message_begin callback (one call fewer)
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.in_head = False
        self.raw_head_bytes = 0
        if self.max_body and ex.content_length is not None and ex.content_length > self.max_body:
            self.error_status = 413
            raise _Reject
        self.exchange = ex
        if self.active is None:
            self.active = ex
            ex.start()
        else:
            self.queue.append(ex)
            if len(self.queue) >= MAX_PIPELINE:
                self.pause(self.PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is None:
            return
        if self.max_body and ex.body_size + len(body) > self.max_body:
            self.error_status = 413
            raise _Reject
        ex.request_body(body)

    def on_message_complete(self) -> None:
        self.in_head = True
        self.completed += 1
        ex = self.exchange
        self.exchange = None
        if ex is None:
            return
        ex.request_complete()

    # -- coordination with exchanges ------------------------------------------------------------------------

    def pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def exchange_finished(self, ex: Exchange, keep_open: bool) -> None:
        """Called once per exchange when its response has been written (or abandoned)."""
        if ex is not self.active:
            return
        self.active = None
        if self.closed or keep_open:
            return
        self.last_active = self.node.loop.time()
        if self.paused & (self.PAUSE_UPSTREAM | self.PAUSE_BUFFER):
            self.resume(self.PAUSE_UPSTREAM | self.PAUSE_BUFFER)
        if not ex.keep_alive:
            self._close(linger=not ex.request_done)
            return
        if self.queue:
            nxt = self.queue.popleft()
            if len(self.queue) < MAX_PIPELINE:
                self.resume(self.PAUSE_PIPELINE)
            self.active = nxt
            nxt.start()
            return
        if self.closing and self.exchange is None:
            self.closed = True
            self.transport.close()
            return
        self.resume(self.PAUSE_PIPELINE)

    def start_tunnel(self, conn: UpstreamConnection) -> None:
        """Splice this client connection and ``conn`` byte for byte (after 101 Switching Protocols)."""
        upstream = conn.transport
        self.tunnel = upstream
        conn.tunnel = self.transport
        for chunk in self.upgrade_buffer:
            upstream.write(chunk)
        self.upgrade_buffer = []
        self.upgrading = False
        self.resume(self.PAUSE_UPGRADE | self.PAUSE_PIPELINE)

    def check_head(self, now: float, limit_s: float) -> None:
        """Housekeeping: answer 408 and close when a request head has been arriving for ``limit_s`` or more.

        Only between responses: a head trickling in behind a response being relayed waits for its turn.
        """
        if (self.in_head and self.raw_head_bytes and self.active is None and not self.closed
                and now - self.head_started >= limit_s):
            self._reject(408)

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the current response."""
        self.closing = True
        if self.active is None and self.exchange is None and self.tunnel is None and not self.closed:
            self.closed = True
            self.transport.close()

    def _reject(self, status: int) -> None:
        """Answer a request the proxy refuses (431, 413, 400) and close the connection."""
        reasons = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
                   431: "Request Header Fields Too Large", 500: "Internal Server Error"}
        messages = {400: "malformed HTTP request",
                    408: f"request head not received within {self.node.limits.header_timeout_s:g} s",
                    413: f"request body exceeds {self.max_body} bytes",
                    431: f"request head exceeds {self.max_header} bytes", 500: "internal adapter error"}
        ex = self.exchange
        if ex is not None and ex is self.active and not ex.finished:
            if ex.response_started:
                self.transport.abort()
                return
            ex.reject(status, reasons[status], messages[status])
            return
        if self.active is not None:
            self.transport.abort()  # a response to an earlier request is still being written
            return
        if self.closed:
            return
        self.node.telemetry.record("-", b"-", self.url[:256], status, 0.0, 0, 0, "")
        self.transport.write(simple_response(status, reasons[status], messages[status], keep_alive=False))
        self._close(linger=True)

    def _close(self, linger: bool) -> None:
        """Close after the response; with ``linger``, first drain what the client is still sending.

        Closing a socket with unread input makes the kernel send a reset, which can destroy the response
        before the client reads it (a 413 for a large upload would arrive as "connection reset"). So the
        write side is shut (FIN after the response) and input is read and discarded for a short while.
        """
        self.closed = True
        transport = self.transport
        if not linger or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        transport.write_eof()
        self.paused = 0
        transport.resume_reading()
        self.linger_timer = self.node.loop.call_later(LINGER_S, transport.close)


class HttpHandler:
    """The protocol handler of ``http`` nodes: serves ``protocol_type`` (``HttpProxyProtocol``; ``soap_proxy``'s
    handler serves its subclass).

    With ``node.tls`` the port serves TLS (``baton_adapter.listener``: the certificate current at accept),
    offering ALPN ``http/1.1`` only (the parser is HTTP/1.1, so no h2); a handshake must complete within
    ``limits.header_timeout_s``.
    """

    tls_alpn = ("http/1.1",)
    protocol_type: type[HttpProxyProtocol] = HttpProxyProtocol

    def __init__(self, name: str = "http") -> None:
        self.name = name

    async def serve(self, node: DataNode, host: str, port: int) -> asyncio.AbstractServer:
        protocol = self.protocol_type
        return await serve_node(lambda: protocol(node), node, host, port)
