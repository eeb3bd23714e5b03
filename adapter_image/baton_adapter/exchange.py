"""One client request through the proxy: routing, attempts, retries, breaker verdicts, response relay.

An ``Exchange`` is driven by callbacks, not by a coroutine: the client protocol feeds it request events, the
upstream connection feeds it response events, and it writes bytes straight through. A task is spawned only
to open a new upstream connection; retry backoff is a timer. The fast path (an idle pooled connection, a
small request) therefore allocates two small objects (this and the scanned request head), the two heads
and a timer per request. Response bytes of one upstream read are corked into a single client write.
A retry goes to a target this request has not failed on when there is one; backoff is linear.
With taint scanning on (``node.taint``), an ``ExchangeScan`` sees both heads and both bodies as they pass.

Retry rule: an attempt that failed before any byte reached the backend is retried whatever the method; one
that failed after bytes were sent is retried only for idempotent methods without a request body. Every retry
spends from the node's retry budget. Statuses: 502 when attempts fail, 504 when the last one timed out, 503
when no target is available (none configured, or every breaker open).

Swaps lose nothing: a request counts against its backend (``pool.busy``, what ``POST /drain`` waits on) from
the moment it picks it until it is done, connecting included, so a drained backend has nothing in flight and
nothing about to connect. An attempt that failed before any byte reached the backend (connect refused, reset
or timed out) is *re-routed*: the request picks again from the routing table as it is now. A re-route is not a
retry of the edge policy (no backoff, no budget); it happens at most ``MAX_REROUTES`` times per request and
only when the table changed since the pick or offers a target the request has not failed on. A request the
backend took but died without answering is sent again the same way, once, when that is safe (RFC 9110 9.2.2:
an idempotent method, no body, and a failure rather than a timeout).

Heals lose nothing either: with ``limits.hold_s`` > 0 (Baton sets 15 s), a request that no target took (every
one refused, or died without answering a safe request) is *held*: it waits for the routing table to change
(the custodian's heal, a swap) and tries the same table again every 0.1-1 s meanwhile; once ``hold_s`` has
passed since it first held, it fails as it would have at once. A held request counts against no backend.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .downstream import Downstream, simple_response
from .mock_answer import NO_BODY_STATUS, answer_from_mock
from .headers import build_request_head, scan_request_headers, scan_response_headers, status_line
from .hold import MAX_HELD, MAX_REROUTES, hold_delay  # re-picks and holds: one rule for every mode
from .resilience import IDEMPOTENT_METHODS, BreakerState
from .routing import RoutingTable, Target, parse_cookie_value
from .taint.scan import ExchangeScan

if TYPE_CHECKING:
    from .interfaces import DataNode
    from .upstream import UpstreamConnection

__all__ = ["Downstream", "Exchange", "simple_response"]  # the first and last from .downstream

_BUFFER_PAUSE_BYTES = 256 * 1024
_NO_BODY_STATUS = NO_BODY_STATUS
_perf = time.perf_counter


def _unbusy(busy: dict[tuple[str, int], int], addr: tuple[str, int]) -> None:
    """One request fewer in flight to ``addr`` (the pool's drain bookkeeping)."""
    count = busy[addr] - 1
    if count:
        busy[addr] = count
    else:
        del busy[addr]


class Exchange:
    """State of one client request from its head to the end of its response."""

    __slots__ = (
        "down", "node", "method", "url", "headers", "info", "keep_alive", "http11", "content_length", "chunked",
        "expect_continue", "upgrade", "body", "buffered", "body_size", "request_done", "conn", "target",
        "attempts", "sent", "head", "trace_id", "timer", "timed_out", "status", "response_started",
        "finished", "resp_chunked", "bytes_out", "started", "mock_waiting", "probe", "failed", "out", "idle_mark", "idle_ticks",
        "busy_addr", "table", "reroutes", "hold_until", "holds", "resent", "scan", "span_id",
    )

    def __init__(
        self,
        down: Downstream,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        http11: bool,
    ) -> None:
        self.down = down
        self.node: DataNode = down.node
        self.method = method
        self.url = url
        self.headers = headers
        self.keep_alive = keep_alive
        self.http11 = http11
        info = scan_request_headers(headers)
        self.info = info
        self.content_length = info.content_length
        self.chunked = info.chunked
        self.expect_continue = info.expect_continue
        self.upgrade = info.upgrade
        self.body: list[bytes] = []
        self.buffered = 0
        self.body_size = 0
        self.request_done = False
        self.conn: UpstreamConnection | None = None
        self.target: Target | None = None
        self.attempts = 0
        self.sent = False
        self.head: bytes | None = None
        self.trace_id = ""
        self.span_id = ""  # the span id sent upstream in traceparent (the adapter's span; empty until sent)
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out = False
        self.status = 0
        self.response_started = False
        self.finished = False
        self.resp_chunked = False
        self.bytes_out = 0
        self.started = _perf()
        self.mock_waiting = False
        self.probe = False
        self.failed: frozenset[str] = frozenset()
        self.out: list[bytes] | None = None
        self.idle_mark = -1
        self.idle_ticks = 0
        self.busy_addr: tuple[str, int] | None = None  # the backend this request counts against (drain)
        self.table: RoutingTable | None = None  # the routing table of the current pick
        self.reroutes = 0
        self.hold_until = 0.0  # when holding for another backend ends (0: it never held)
        self.holds = 0
        self.resent = False  # an idempotent request was sent again after its backend died without answering
        taint = self.node.taint  # None unless PUT /taint switched scanning on
        self.scan = None if taint is None else ExchangeScan(taint, method, url, headers, info.traceparent)

    # -- request side (called by the client protocol) -------------------------------------------------------

    def start(self) -> None:
        """Begin the exchange: it is now the connection's active request."""
        node = self.node
        node.telemetry.active_requests += 1
        node.budget.deposit()
        if self.expect_continue and self.http11 and not self.request_done:
            self.down.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.attempt()

    def request_body(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.scan is not None:
            self.scan.request_body(data)
        conn = self.conn
        if conn is not None:
            if self.chunked:
                conn.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            else:
                conn.transport.write(data)
            return
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > _BUFFER_PAUSE_BYTES and not (self.target is not None and self.target.mock):
            self.down.pause(self.down.PAUSE_BUFFER)

    def request_complete(self) -> None:
        self.request_done = True
        conn = self.conn
        if conn is not None:
            if self.chunked:
                conn.transport.write(b"0\r\n\r\n")
            conn.request_sent = True
        elif self.mock_waiting:
            self.mock_waiting = False
            self.serve_mock()

    def client_gone(self) -> None:
        """The client connection closed before the exchange finished."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.detach_and_close()
        self._cancel_timer()
        if self.probe and self.target is not None:
            self.node.breaker(self.target.name).release()
        self.finish(self.status if self.response_started else 499)

    # -- attempts -------------------------------------------------------------------------------------------

    def attempt(self) -> None:
        """Route and send one attempt (on a pooled connection when one is idle)."""
        self.timer = None
        if self.finished:
            return
        node = self.node
        table = node.routing
        if node.breakers_on or self.failed:
            target = self._choose_guarded(table)
        else:
            target = table.choose(self.headers if table.needs_headers else ())
        if target is None:
            self._fail(503, "Service Unavailable", "no backend available for this node")
            return
        self.target = target
        self.table = table
        self.attempts += 1
        if target.mock:
            self.serve_mock()
            return
        # counted against the backend from the pick, not from the connection: a drain must wait for it
        addr = target.addr
        pool = node.pool
        busy = pool.busy
        busy[addr] = busy.get(addr, 0) + 1
        self.busy_addr = addr
        conn = pool.take(addr)
        if conn is not None:
            self._send_on(conn)
        else:
            node.spawn(self._connect(target))

    def _choose_guarded(self, table: RoutingTable) -> Target | None:
        """Choose skipping open breakers (claiming a half-open probe) and, for a retry, failed targets."""
        node = self.node
        headers = self.headers if table.needs_headers else ()
        excluded = node.unavailable_targets()
        target = None
        if self.failed:
            # a retry prefers a target this request has not failed on yet
            target = table.choose(headers, excluded | self.failed)
        if target is None:
            target = table.choose(headers, excluded)
        while target is not None and not node.breaker(target.name).acquire():
            excluded = excluded | {target.name}
            target = table.choose(headers, excluded)
        self.probe = target is not None and node.breaker(target.name).state is not BreakerState.CLOSED
        return target

    async def _connect(self, target: Target) -> None:
        node = self.node
        try:
            conn = await node.pool.connect(target.addr, node.timeout_s)
        except (OSError, TimeoutError) as exc:
            if not self.finished:
                self.upstream_failed(None, exc, timed_out=isinstance(exc, TimeoutError))
            return
        if self.finished or self.target is not target:
            node.pool.release(conn)  # fresh and unused: keep it for the next request
            return
        self._send_on(conn)

    def _send_on(self, conn: UpstreamConnection) -> None:
        node = self.node
        self.conn = conn
        conn.attach(self, self.method == b"HEAD")
        head = self.head
        if head is None:
            down = self.down
            head, self.trace_id, self.span_id = build_request_head(self.method, self.url, self.info, down.peer_ip, down.scheme,
                                                     self.upgrade)
            self.head = head
        transport = conn.transport
        if self.body:
            body = self.body
            if self.chunked:
                parts = [head]
                for chunk in body:
                    parts += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
                transport.writelines(parts)
            else:
                transport.writelines([head, *body])
            self.body = []
            self.buffered = 0
            self.down.resume(self.down.PAUSE_BUFFER)
        else:
            transport.write(head)
        self.sent = True
        if self.request_done:
            if self.chunked:
                transport.write(b"0\r\n\r\n")
            conn.request_sent = True
        self.timer = node.loop.call_later(node.timeout_s, self._on_timeout)

    def _on_timeout(self) -> None:
        self.timer = None
        conn = self.conn
        if conn is not None and not self.response_started:
            self.timed_out = True
            conn.detach_and_close()
            self.upstream_failed(conn, TimeoutError("upstream timed out"), timed_out=True)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- response side (called by the upstream connection) -------------------------------------------------

    def response_head(self, conn: UpstreamConnection, status: int, reason: bytes,
                      headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self._cancel_timer()
        node = self.node
        target = self.target
        name = target.name if target is not None else "-"
        node.telemetry.attempt(name, status)
        if node.breakers_on:
            breaker = node.breaker(name)
            if status >= 500:
                breaker.failure()
            else:
                breaker.success()
        self.status = status
        parts, content_length, upstream_chunked = scan_response_headers(headers)
        extra = b""
        if status == 101:
            framing = b""
            extra = b"Connection: upgrade\r\nUpgrade: %s\r\n" % (self.upgrade or b"websocket")
        elif self.method == b"HEAD" or status in _NO_BODY_STATUS:
            framing = b"Content-Length: %s\r\n" % content_length if content_length is not None else b""
        elif content_length is not None and not upstream_chunked:
            framing = b"Content-Length: %s\r\n" % content_length
        else:
            conn.close_delimited = not upstream_chunked
            if self.http11:
                framing = b"Transfer-Encoding: chunked\r\n"
                self.resp_chunked = True
            else:
                framing = b""
                self.keep_alive = False
        if self.upgrade is not None and status != 101:
            self.keep_alive = False
        sticky = node.routing.sticky_cookie
        if sticky and target is not None and not self._has_sticky(sticky, target.name):
            extra += b"Set-Cookie: %s=%s; Path=/; HttpOnly\r\n" % (sticky.encode(), target.name.encode())
        if self.down.closing:
            self.keep_alive = False
        parts.insert(0, status_line(status, reason))
        parts.append(framing)
        if extra:
            parts.append(extra)
        parts.append(b"\r\n" if self.keep_alive else b"Connection: close\r\n\r\n")
        head = b"".join(parts)
        out = self.out
        if out is not None:
            out.append(head)  # corked: sent with the body bytes of this same read, in one write
        else:
            self.down.transport.write(head)
        self.response_started = True
        if self.scan is not None:
            self.scan.response_head(status, headers, name, self.trace_id)

    def response_body(self, data: bytes) -> None:
        self.bytes_out += len(data)
        if self.scan is not None:
            self.scan.response_body(data)
        out = self.out
        if out is not None:
            if self.resp_chunked:
                out += (b"%x\r\n" % len(data), data, b"\r\n")
            else:
                out.append(data)
        elif self.resp_chunked:
            self.down.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.down.transport.write(data)

    def response_complete(self, conn: UpstreamConnection) -> None:
        if self.conn is conn:
            self.conn = None
        if self.resp_chunked:
            if self.out is not None:
                self.out.append(b"0\r\n\r\n")
            else:
                self.down.transport.write(b"0\r\n\r\n")
        if not self.request_done:
            self.keep_alive = False  # the backend answered before the request body ended
        self.finish(self.status)

    def upstream_failed(self, conn: UpstreamConnection | None, exc: BaseException | None,
                        timed_out: bool = False) -> None:
        self._cancel_timer()
        node = self.node
        if conn is not None and self.conn is conn:
            self.conn = None
        self._release_backend()
        target = self.target
        name = target.name if target is not None else "-"
        node.telemetry.attempt_failed(name, timed_out)
        table = node.routing
        if target is None or table.target(name) == target:
            node.breaker(name).failure()
        elif self.probe:
            node.breaker(name).release()  # the target left the table: its failure says nothing of its successor
        self.failed = self.failed | {name}
        if self.response_started:
            self.keep_alive = False
            self.uncork()
            self.down.transport.abort()  # the response cannot be completed: the client must see a cut
            self.finish(self.status)
            return
        resend = not self.sent or self._safe_to_resend(timed_out)
        if resend and self.reroutes < MAX_REROUTES and (
            table is not self.table or any(t.name not in self.failed for t in table.targets)
        ):
            # nothing reached the backend (or a safe request got no answer): pick again from the current table
            self.reroutes += 1
            self.attempts -= 1
            self._again()
            return
        replayable = not self.sent or (
            self.method in IDEMPOTENT_METHODS and not self.chunked and not self.content_length
        )
        if replayable and self.attempts <= node.policy.retries and node.budget.withdraw():
            self.sent = False
            self.timed_out = False
            self.timer = node.loop.call_later(node.backoff_s * self.attempts, self.attempt)
            return
        if resend and self._hold():
            return
        waited = f" (no backend took it within {node.limits.hold_s:g} s)" if self.holds else ""
        if timed_out:
            self._fail(504, "Gateway Timeout", f"backend {target.label() if target else '-'} timed out{waited}")
        else:
            self._fail(502, "Bad Gateway", f"backend {target.label() if target else '-'} failed: {exc}{waited}")

    def _safe_to_resend(self, timed_out: bool) -> bool:
        """A request the backend took but never began to answer may go again, once, when repeating it cannot
        change anything (RFC 9110 9.2.2: idempotent, no body) and the backend failed rather than ran slow."""
        return (not timed_out and not self.resent and self.request_done and self.method in IDEMPOTENT_METHODS
                and not self.chunked and not self.content_length and not self.upgrade)

    def _again(self) -> None:
        """Attempt once more, from the current routing table, as a request nothing was sent for."""
        if self.sent:
            self.resent = True
            self.sent = False
        self.timed_out = False
        self.attempt()

    def _hold(self) -> bool:
        """Wait for the routing to change (a heal or a swap putting a new backend in), trying the same table
        again now and then, until ``limits.hold_s`` after the first hold. False when not holding."""
        node = self.node
        hold_s = node.limits.hold_s
        if hold_s <= 0 or node.closing or self.finished or len(node.held) >= MAX_HELD:
            return False
        now = _perf()
        if not self.hold_until:
            self.hold_until = now + hold_s
        if now >= self.hold_until:
            return False
        self.holds += 1
        node.held.add(self)
        delay = hold_delay(self.holds, self.hold_until - now)
        self.timer = node.loop.call_later(delay, self._held_retry)
        return True

    def _held_retry(self) -> None:
        self.timer = None
        self.node.held.discard(self)
        self.failed = frozenset()
        self.reroutes = 0
        self._again()

    def routing_changed(self) -> None:
        """The node's routing table was replaced while this request held (the node has let it go)."""
        self._cancel_timer()
        if self.finished:
            return
        self.failed = frozenset()
        self.reroutes = 0
        self._again()

    def upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        """The backend switched protocols: splice the two connections."""
        if self.conn is conn:
            self.conn = None
        self.uncork()
        down = self.down
        if rest:
            down.transport.write(rest)
        down.start_tunnel(conn)
        self.finish(101, keep_open=True)

    def check_idle(self, tick_s: float, limit_s: float) -> None:
        """Housekeeping: cut a response whose body made no progress for ``limit_s`` (counted in ticks)."""
        if not self.response_started or self.finished or self.conn is None:
            return
        if self.bytes_out != self.idle_mark or self.down.paused_upstream is not None:
            # progress, or a slow client holding the backend back: not the backend's stall
            self.idle_mark = self.bytes_out
            self.idle_ticks = 0
            return
        self.idle_ticks += 1
        if self.idle_ticks * tick_s >= limit_s:
            conn = self.conn
            conn.detach_and_close()
            self.upstream_failed(conn, TimeoutError(f"response body idle for {limit_s:g}s"), timed_out=True)

    def upstream_pause(self) -> None:
        self.down.pause(self.down.PAUSE_UPSTREAM)

    def upstream_resume(self) -> None:
        self.down.resume(self.down.PAUSE_UPSTREAM)

    # -- endings --------------------------------------------------------------------------------------------

    def serve_mock(self) -> None:
        """Answer from the node's in-process mock once the request body is complete."""
        if not self.request_done:
            self.mock_waiting = True
            return
        answer_from_mock(self)

    def mock_answered(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The mock answered this (written next); a subclass may look at it (a soap node's looks for a Fault)."""

    def reject(self, status: int, reason: str, message: str) -> None:
        """Refuse the request mid-way (e.g. its body passed the limit): drop the attempt, answer, close."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.detach_and_close()
        if self.probe and self.target is not None:
            self.node.breaker(self.target.name).release()
        self.keep_alive = False
        self._fail(status, reason, message)

    def _fail(self, status: int, reason: str, message: str) -> None:
        self.uncork()
        self.status = status
        if not self.request_done:
            self.keep_alive = False  # the rest of the request body will not be read
        if self.down.closing:
            self.keep_alive = False
        self.down.transport.write(simple_response(status, reason, message, self.keep_alive,
                                                  head_only=self.method == b"HEAD"))
        self.response_started = True
        self.finish(status)

    def cork(self) -> None:
        """Collect response writes until ``uncork`` (the upstream connection corks around one read)."""
        self.out = []

    def uncork(self) -> None:
        out = self.out
        self.out = None
        if out:
            transport = self.down.transport
            if len(out) == 1:
                transport.write(out[0])
            else:
                transport.write(b"".join(out))

    def finish(self, status: int, keep_open: bool = False) -> None:
        if self.finished:
            return
        self.uncork()
        self.finished = True
        self._cancel_timer()
        if self.holds:
            self.node.held.discard(self)
        if self.busy_addr is not None:
            self._release_backend()
        node = self.node
        node.telemetry.active_requests -= 1
        target = self.target
        name = target.name if target is not None else "-"
        node.telemetry.record(name, self.method, self.url, status, _perf() - self.started, self.body_size,
                              self.bytes_out, self.trace_id, self.span_id)
        tracer = node.tracer  # None unless the node's config has a tracing section
        if tracer is not None:
            tracer.record(self.method, self.url, status, self.started, self.trace_id, self.span_id,
                          self.info.traceparent, name)
        if self.scan is not None:
            self.scan.finish(status, name, self.trace_id)
        self.down.exchange_finished(self, keep_open)

    def _release_backend(self) -> None:
        """This request no longer counts against its backend (its attempt ended)."""
        addr = self.busy_addr
        if addr is not None:
            self.busy_addr = None
            _unbusy(self.node.pool.busy, addr)

    def _has_sticky(self, cookie: str, target: str) -> bool:
        for name, value in self.headers:
            if len(name) == 6 and name.lower() == b"cookie" and parse_cookie_value(value, cookie) == target:
                return True
        return False
