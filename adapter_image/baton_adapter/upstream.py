"""Pooled keep-alive upstream connections: an asyncio protocol around httptools' response parser.

An ``UpstreamConnection`` carries one exchange at a time. It hands parsed events to its *sink* (the
client-side exchange, see ``baton_adapter.exchange``) through a small interface::

    sink.response_head(conn, status, reason, headers, keep_alive)
    sink.response_body(data)
    sink.response_complete(conn)
    sink.upstream_failed(conn, exc, timed_out=False)
    sink.upgraded(conn, rest)                 # 101 Switching Protocols: raw tunnel from here on
    sink.upstream_pause() / sink.upstream_resume()   # our write buffer to the backend is full / drained

Nothing here buffers a body: bytes go to the sink as they arrive. ``UpstreamPool`` keeps idle connections per
backend address (LIFO, bounded, expired after an idle time) and counts busy ones for draining.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import httptools

__all__ = ["UpstreamConnection", "UpstreamPool", "Sink"]

# bounds on what a backend's response head may hold (beyond them the attempt fails with 502)
MAX_RESPONSE_HEADERS = 256
MAX_RESPONSE_HEADER_BYTES = 64 * 1024


class Sink(Protocol):
    def response_head(self, conn: UpstreamConnection, status: int, reason: bytes,
                      headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_complete(self, conn: UpstreamConnection) -> None: ...
    def upstream_failed(self, conn: UpstreamConnection, exc: BaseException | None, timed_out: bool = False) -> None: ...
    def upgraded(self, conn: UpstreamConnection, rest: bytes) -> None: ...
    def upstream_pause(self) -> None: ...
    def upstream_resume(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One kept-alive connection to a backend."""

    __slots__ = (
        "pool", "addr", "transport", "parser", "sink", "headers", "reason", "head_request",
        "close_delimited", "request_sent", "in_message", "skip_message", "reset_parser", "tunnel",
        "idle_since", "closed", "uses",
    )

    def __init__(self, pool: UpstreamPool, addr: tuple[str, int]) -> None:
        self.pool = pool
        self.addr = addr
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Any = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.head_request = False
        self.close_delimited = False
        self.request_sent = False
        self.in_message = False
        self.skip_message = False
        self.reset_parser = False
        self.tunnel: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.closed = False
        self.uses = 0

    # -- exchange lifecycle ---------------------------------------------------------------------------------

    def attach(self, sink: Any, head_request: bool) -> None:
        """Give this connection to ``sink`` for one request/response."""
        self.sink = sink
        self.head_request = head_request
        self.close_delimited = False
        self.request_sent = False
        self.uses += 1

    def detach_and_close(self) -> None:
        """Drop the current exchange and close the connection (it cannot be reused mid-message)."""
        self.sink = None
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- asyncio.Protocol -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        corked = self.sink
        if corked is None:
            # bytes on an idle pooled connection: the backend broke HTTP framing; never reuse it
            if self.transport is not None:
                self.transport.abort()
            return
        corked.cork()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            sink = self.sink
            if sink is not None:
                self.sink = None
                sink.upgraded(self, data[exc.args[0]:])
            return
        except httptools.HttpParserError as exc:
            sink = self.sink
            self.detach_and_close()
            if sink is not None:
                sink.upstream_failed(self, exc)
            return
        finally:
            corked.uncork()
        if self.reset_parser:
            self.reset_parser = False
            self.skip_message = False
            self.parser = httptools.HttpResponseParser(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
            return
        sink = self.sink
        if sink is None:
            return
        self.sink = None
        if self.in_message and self.close_delimited and exc is None:
            sink.response_complete(self)  # a close-delimited body ends with the connection
        else:
            sink.upstream_failed(self, exc or ConnectionResetError("upstream closed the connection"))

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_reading()  # a tunnelled client writes faster than the backend reads
        elif self.sink is not None:
            self.sink.upstream_pause()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            if not self.tunnel.is_closing():
                self.tunnel.resume_reading()
        elif self.sink is not None:
            self.sink.upstream_resume()

    # -- httptools callbacks --------------------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        if len(headers) > MAX_RESPONSE_HEADERS or len(value) > MAX_RESPONSE_HEADER_BYTES:
            raise ValueError("the backend sent an oversized response head")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        headers, reason = self.headers, self.reason
        self.headers = []  # reset for the next message here rather than in on_message_begin (one call fewer)
        self.reason = b""
        if 100 <= status < 200 and status != 101:
            self.skip_message = True  # interim response (100 Continue, 103 Early Hints): not forwarded
            return
        sink = self.sink
        if sink is None:
            return
        self.in_message = True
        sink.response_head(self, status, reason, headers, self.parser.should_keep_alive())
        if status == 101:
            self.skip_message = True  # the parser raises HttpParserUpgrade next; the tunnel takes over
            return
        if self.head_request and status != 101:
            # a response to HEAD has no body whatever its headers say; httptools cannot be told, so the
            # message ends here and the parser is replaced once this feed returns
            self.skip_message = True
            self.reset_parser = True
            self._complete(self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.response_body(body)

    def on_message_complete(self) -> None:
        if self.skip_message:
            self.skip_message = False
            return
        self._complete(self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        self.in_message = False
        sink = self.sink
        self.sink = None
        reusable = keep_alive and self.request_sent and not self.closed
        if sink is not None:
            sink.response_complete(self)
        if reusable:
            self.pool.release(self)
        elif not self.closed and self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections per backend address, plus busy counts for draining."""

    def __init__(self, max_idle: int = 64, idle_s: float = 1.5, connect_timeout_s: float = 10.0) -> None:
        self.max_idle = max_idle
        self.idle_s = idle_s
        self.connect_timeout_s = connect_timeout_s
        self.idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self.busy: dict[tuple[str, int], int] = {}
        self.connects = 0

    def take(self, addr: tuple[str, int]) -> UpstreamConnection | None:
        """A live idle connection to ``addr``, or None."""
        stack = self.idle.get(addr)
        if not stack:
            return None
        cutoff = time.monotonic() - self.idle_s
        while stack:
            conn = stack.pop()
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                continue
            if conn.idle_since < cutoff:
                # idle longer than backends commonly keep connections (gunicorn 2 s, uvicorn and Node 5 s):
                # reusing it would race the backend's close, so open a fresh one instead
                transport.close()
                continue
            return conn
        return None

    async def connect(self, addr: tuple[str, int], timeout_s: float) -> UpstreamConnection:
        """Open a new connection to ``addr`` (raises OSError or TimeoutError)."""
        loop = asyncio.get_running_loop()
        self.connects += 1
        async with asyncio.timeout(min(timeout_s, self.connect_timeout_s)):
            _, conn = await loop.create_connection(lambda: UpstreamConnection(self, addr), addr[0], addr[1])
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose exchange finished cleanly."""
        stack = self.idle.setdefault(conn.addr, [])
        if len(stack) >= self.max_idle or conn.closed:
            if conn.transport is not None:
                conn.transport.close()
            return
        transport = conn.transport
        if transport is not None and not transport.is_reading():
            transport.resume_reading()  # paused for a slow client of the previous exchange
        conn.idle_since = time.monotonic()
        stack.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        stack = self.idle.get(conn.addr)
        if stack and conn in stack:
            stack.remove(conn)

    def mark_busy(self, addr: tuple[str, int], delta: int) -> None:
        count = self.busy.get(addr, 0) + delta
        if count > 0:
            self.busy[addr] = count
        else:
            self.busy.pop(addr, None)

    def sweep(self) -> int:
        """Close idle connections older than ``idle_s``; return how many were closed."""
        cutoff = time.monotonic() - self.idle_s
        closed = 0
        for addr, stack in list(self.idle.items()):
            keep = [c for c in stack if c.idle_since >= cutoff and not c.closed]
            for c in stack:
                if c not in keep and c.transport is not None:
                    c.transport.close()
                    closed += 1
            if keep:
                self.idle[addr] = keep
            else:
                del self.idle[addr]
        return closed

    def close_idle(self, addr: tuple[str, int] | None = None) -> None:
        """Close idle connections (to ``addr`` only, when given)."""
        for key in [addr] if addr is not None else list(self.idle):
            for conn in self.idle.pop(key, []):
                if conn.transport is not None:
                    conn.transport.close()

    def idle_count(self) -> int:
        return sum(len(s) for s in self.idle.values())
