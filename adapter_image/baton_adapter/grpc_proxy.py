"""The ``grpc`` handler: an HTTP/2 (h2c) proxy of gRPC calls, routed one call at a time.

Design:

- **Connections**: one client connection (this module's ``GrpcProxyProtocol``, an HTTP/2 server built on
  hyper-h2's sans-IO state machine) and, per client connection, one upstream HTTP/2 connection per backend
  its calls were routed to (``baton_adapter.h2_upstream``), opened on the first call routed there.
- **Per stream**: each call (a client stream) is routed when its headers arrive, through the node's routing
  table as it is then: weights, canary, header rules and sticky cookies read the call's metadata (HTTP/2
  headers, ``:path`` included). So a 10 % canary gets 10 % of the *calls* of one long-lived channel, and a
  swap sends the next call to the new backend while calls in flight finish on the old one. Each call counts
  against its backend from the pick to its end (``POST /drain`` waits for it).
- **Proxied as is**: request headers (``grpc-timeout`` included, so the backend sees the caller's deadline),
  messages, response headers and trailers (``grpc-status``, ``grpc-message``) are forwarded unchanged;
  the four call kinds (unary, server-, client-streaming, bidirectional) are all just streams.
- **Flow control both ways** (``baton_adapter.grpc_call``): a byte received is acknowledged to its sender only
  once sent on, so a slow reader slows the writer on the far side.
- **Cancellation both ways**: a client's RST_STREAM resets the backend's stream (and counts ``CANCELLED``); a
  backend's reset reaches the client with the same error code.
- **Mock targets**: calls routed to a mock are answered in process from the node's descriptor set
  (``baton_adapter.grpc_mock``) by a ``MockUpstream`` (``baton_adapter.grpc_mock_upstream``), which the proxy
  drives as a backend's connection: the same windows, cancellation, telemetry and shutdown.
- **No call lost to a heal** (``baton_adapter.hold``): a call nothing was sent for (its backend could not
  be reached, or went away first) is routed again without the backends that failed it, or held until the
  routing changes (``limits.hold_s``). A call a backend received is never sent twice: when that backend goes
  away before answering, or no backend takes a call within its hold, it is a trailers-only ``UNAVAILABLE``
  (14) answer; once a response has begun the client's stream is reset instead.
  A mock target without a usable descriptor set answers ``UNAVAILABLE`` too, saying why.
- **Trace context**: each call's backend gets a ``traceparent`` continuing the caller's trace (or a new one)
  with the adapter's span as its parent, as HTTP requests do; with tracing on, one span per call.
- **Telemetry**: one signal per call (method ``GRPC``, path the ``:path``, status the code's HTTP reading,
  e.g. 200, 503; latency from headers in to trailers out), counted per target with its gRPC code
  (``NodeTelemetry.record_call``): every non-OK code is a failed request, so a canary's error rate reads as
  for HTTP.
- **Shutdown**: GOAWAY to the client, then calls in flight finish (within the node's grace).

With ``node.tls`` the port terminates TLS (ALPN ``h2``) and the backend gets h2c.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes

from .grpc_call import (
    CANCELLED,
    HTTP_STATUS,
    UNAVAILABLE,
    UNKNOWN,
    Call,
    FrameGuard,
    code_of_reset,
    grpc_status,
    send_window,
    trailers_only,
    with_traceparent,
)
from .hold import MAX_HELD, MAX_REROUTES, NOWHERE, HeldCall, hold_delay
from .grpc_mock_upstream import MockUpstream
from .h2_upstream import WINDOW, H2Upstream
from .listener import serve_node
from .routing import Target

if TYPE_CHECKING:
    from .interfaces import DataNode

__all__ = ["GrpcHandler", "GrpcProxyProtocol"]

NO_TARGET = Target("-", mock=True)  # the target of a call that failed before any backend took it

# GOAWAY, stream 0, last stream 2^31-1, NO_ERROR: "stop opening streams", before the real one (RFC 9113 6.8)
_GOAWAY_GRACEFUL = (8).to_bytes(3, "big") + b"\x07\x00" + bytes(4) + (2**31 - 1).to_bytes(4, "big") + bytes(4)


class GrpcProxyProtocol(asyncio.Protocol):
    """One client HTTP/2 connection on a ``grpc`` node."""

    # attributes the node's housekeeping and shutdown read on every client connection
    active = None
    exchange = None

    def __init__(self, node: DataNode) -> None:
        self.node = node
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.tunnel = self  # never expired as an idle keep-alive connection: HTTP/2 keeps its own pings
        self.last_active = 0.0
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.frames = FrameGuard(self.h2.max_inbound_frame_size)
        self.calls: dict[int, Call] = {}  # by the client's stream id
        # by backend address (the mock's pseudo address ("", 0) included): where new calls go
        self.upstreams: dict[tuple[str, int], H2Upstream | MockUpstream] = {}
        self.links: set[H2Upstream | MockUpstream] = set()  # every backend connection not closed (gone away included)
        self.closed = False
        self.closing = False

    # -- the client connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        node = self.node
        node.connections.add(self)
        node.telemetry.active_connections += 1
        h2 = self.h2
        h2.initiate_connection()
        h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
        h2.increment_flow_control_window(WINDOW - 65535)
        self.flush()
        if node.closing:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        h2 = self.h2
        if not self.frames.feed(data):  # a frame longer than announced: refused before h2 buffers it whole
            try:
                h2.close_connection(ErrorCodes.FRAME_SIZE_ERROR)
            except H2Error:
                pass
            self.flush()
            self.transport.close()
            return
        try:
            events = h2.receive_data(data)
        except H2Error:
            self.flush()
            self.transport.close()
            return
        calls = self.calls
        for ev in events:
            if isinstance(ev, DataReceived):
                call = calls.get(ev.stream_id)
                if call is None:
                    h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    continue
                padding = ev.flow_controlled_length - len(ev.data)
                if padding:
                    h2.acknowledge_received_data(padding, ev.stream_id)
                call.up += ev.data
                call.bytes_in += len(ev.data)
                call.upstream.pump_up(call)
            elif isinstance(ev, RequestReceived):
                self._route(ev.stream_id, ev.headers)
            elif isinstance(ev, StreamEnded):
                call = calls.get(ev.stream_id)
                if call is not None:
                    call.up_end = True
                    call.upstream.pump_up(call)
            elif isinstance(ev, StreamReset):
                call = calls.get(ev.stream_id)
                if call is not None:  # the client cancelled: so does the backend's stream
                    call.upstream.cancel(call)
                    self._finish(call, CANCELLED)
            elif isinstance(ev, WindowUpdated):
                if ev.stream_id == 0:
                    for call in list(calls.values()):
                        self.pump_down(call)
                else:
                    call = calls.get(ev.stream_id)
                    if call is not None:
                        self.pump_down(call)
            elif isinstance(ev, RemoteSettingsChanged):
                for call in list(calls.values()):
                    self.pump_down(call)
            elif isinstance(ev, ConnectionTerminated):
                self.closing = True
        self.flush()
        if self.closing and not self.calls and not self.transport.is_closing():
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        node = self.node
        node.connections.discard(self)
        node.telemetry.active_connections -= 1
        for call in list(self.calls.values()):
            call.upstream.cancel(call)
            self._finish(call, CANCELLED)
        for upstream in list(self.links):
            upstream.close()
        self.upstreams.clear()
        self.links.clear()

    def flush(self) -> None:
        """Write what the client's HTTP/2 state machine, and every backend's, have to send."""
        if not self.closed:
            data = self.h2.data_to_send()
            if data:
                self.transport.write(data)
        for upstream in self.links:
            upstream.flush()

    def shutdown(self) -> None:
        """Graceful stop: a first GOAWAY (last stream 2^31-1, RFC 9113 6.8) tells the client to open no new stream
        while the calls in flight go on (h2's own GOAWAY would end the connection's state machine); streams
        opened meanwhile are refused (the client retries them elsewhere); the last GOAWAY goes once they are over."""
        if self.closing or self.closed:
            self.closing = True
            return
        self.closing = True
        self.flush()
        self.transport.write(_GOAWAY_GRACEFUL)
        if not self.calls:
            self._close()

    def _close(self) -> None:
        """The last GOAWAY, then close."""
        try:
            self.h2.close_connection(last_stream_id=self.h2.highest_inbound_stream_id)
        except H2Error:
            pass
        self.flush()
        self.transport.close()

    def check_head(self, now: float, limit_s: float) -> None:
        """HTTP/2 has no request head to time here."""

    def pause_writing(self) -> None:
        pass  # bounded by the HTTP/2 windows: at most a window per call is ever written ahead

    def resume_writing(self) -> None:
        pass

    # -- routing a call -------------------------------------------------------------------------------------

    def _route(self, sid: int, headers: list[tuple[bytes, bytes]]) -> None:
        node = self.node
        started = time.perf_counter()
        path = next((v for n, v in headers if n == b":path"), b"-")
        table = node.routing
        if self.closing:  # after our GOAWAY: refused, so the client retries it on another connection
            try:
                self.h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            except H2Error:
                pass
            return
        forwarded, incoming, trace_id, span_id = with_traceparent(headers)
        call = Call(sid, forwarded, path, None, started)  # type: ignore[arg-type]  # its target: once routed
        call.incoming_trace, call.trace_id, call.span_id = incoming, trace_id, span_id
        self.calls[sid] = call
        node.telemetry.active_requests += 1
        target = table.choose(headers, node.unavailable_targets())
        if target is None:
            self._no_backend(call, "no backend is available")
            return
        self._send(call, target)

    def _send(self, call: Call, target: Target) -> None:
        """Send ``call`` to ``target`` (on this connection's link to it, opened on the first call)."""
        node = self.node
        call.target = target
        if not target.mock:
            node.pool.mark_busy(target.addr, 1)  # counted from the pick: a drain waits for the call
            call.busy_addr = target.addr
        upstream = self.upstreams.get(target.addr)
        if upstream is None:
            if target.mock:  # answered in process, through the same callbacks as a backend's connection
                upstream = MockUpstream(self, target, *node.grpc_mock())
            else:
                upstream = H2Upstream(self, target)
                node.spawn(upstream.connect(node.timeout_s))
            self.upstreams[target.addr] = upstream
            self.links.add(upstream)
        upstream.open(call)

    # -- calls no backend took (baton_adapter.hold) ----------------------------------------------------

    def on_unsent(self, call: Call, reason: str) -> None:
        """``call`` never reached its backend (no connection, or it went away first): route it again from the
        current table without the backends that failed it, else hold it for a routing change."""
        if call.done:
            return
        node = self.node
        self._unbusy(call)
        call.failed = call.failed | {call.target.name}
        if call.reroutes < MAX_REROUTES and not self.closing:
            again = node.routing.choose(call.headers, node.unavailable_targets() | call.failed)
            if again is not None:
                call.reroutes += 1
                self._send(call, again)
                return
        self._no_backend(call, reason)

    def retry_held(self, call: Call) -> None:
        """A held call tries the current table again (its hold timer fired, or the routing changed)."""
        if call.done or self.closed:
            return
        call.failed = frozenset()
        call.reroutes = 0
        target = self.node.routing.choose(call.headers, self.node.unavailable_targets())
        if target is None:
            self._no_backend(call, "no backend is available")
        else:
            self._send(call, target)

    def _no_backend(self, call: Call, reason: str) -> None:
        """No backend takes ``call`` now: hold it (``limits.hold_s``), or answer UNAVAILABLE."""
        node = self.node
        hold_s = node.limits.hold_s
        now = time.perf_counter()
        if hold_s > 0 and not call.hold_until:
            call.hold_until = now + hold_s
        if (hold_s > 0 and now < call.hold_until and not node.closing and not self.closing
                and len(node.held) < MAX_HELD):
            call.holds += 1
            call.upstream = HeldCall(self, call, hold_delay(call.holds, call.hold_until - now))
            return
        if call.holds:
            reason += f" (no backend took it within {hold_s:g} s)"
        if call.upstream is None:
            call.upstream = NOWHERE
        if call.target is None:
            call.target = NO_TARGET
        self.on_unavailable(call, reason)

    def _unbusy(self, call: Call) -> None:
        if call.busy_addr is not None:
            self.node.pool.mark_busy(call.busy_addr, -1)
            call.busy_addr = None

    def upstream_gone(self, upstream: H2Upstream | MockUpstream, lost: bool = False) -> None:
        """``upstream`` takes no new call (GOAWAY; ``lost``: closed): the next call to its backend opens a new one."""
        addr = upstream.target.addr
        if self.upstreams.get(addr) is upstream:
            del self.upstreams[addr]
        if lost:
            self.links.discard(upstream)

    # -- what the backend sends (called by H2Upstream) ------------------------------------------------------

    def on_response(self, call: Call, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        if call.done:
            return
        self.node.telemetry.attempt(call.target.name, _http_status(headers))
        if ended:  # trailers-only
            call.trailers = headers
            code = grpc_status(headers)
            call.code = UNKNOWN if code is None else code
        else:
            call.response_started = True
            try:
                self.h2.send_headers(call.sid, headers)
            except H2Error:
                return
        self.pump_down(call)

    def on_data(self, call: Call, data: bytes) -> None:
        if call.done:
            call.upstream.acknowledge(call, len(data))
            return
        call.down += data
        call.bytes_out += len(data)
        self.pump_down(call)

    def on_trailers(self, call: Call, headers: list[tuple[bytes, bytes]]) -> None:
        if call.done:
            return
        code = grpc_status(headers)
        call.code = UNKNOWN if code is None else code
        call.trailers = headers
        self.pump_down(call)

    def on_reset(self, call: Call, error_code: int) -> None:
        if call.done:
            return
        try:
            self.h2.reset_stream(call.sid, error_code)
        except H2Error:
            pass
        self._finish(call, code_of_reset(error_code))

    def on_unavailable(self, call: Call, reason: str) -> None:
        """The backend will not answer ``call``: a trailers-only UNAVAILABLE, or a reset once a response began."""
        if call.done:
            return
        try:
            if call.response_started:
                self.h2.reset_stream(call.sid, ErrorCodes.INTERNAL_ERROR)
            else:
                self.h2.send_headers(call.sid, trailers_only(UNAVAILABLE, reason), end_stream=True)
        except H2Error:
            pass
        self._finish(call, UNAVAILABLE)

    def acknowledge(self, call: Call, n: int) -> None:
        """``n`` bytes the client sent on ``call`` went on to the backend: give the client that window back."""
        if not self.closed:
            self.h2.acknowledge_received_data(n, call.sid)

    def pump_down(self, call: Call) -> None:
        """Send the backend's bytes of ``call`` as far as the client's windows allow, then its trailers."""
        if call.done:
            return
        try:
            sent = send_window(self.h2, call.sid, call.down) if call.down else 0
        except H2Error:  # the client's stream is gone: its reset comes (or came) as an event
            call.down.clear()
            return
        if sent:
            call.upstream.acknowledge(call, sent)
        if not call.down and call.trailers is not None:
            try:
                self.h2.send_headers(call.sid, call.trailers, end_stream=True)
                if not call.up_end:  # answered before the client's side ended: close the stream (as gRPC servers do)
                    self.h2.reset_stream(call.sid, ErrorCodes.NO_ERROR)
            except H2Error:
                pass
            self._finish(call, call.code if call.code is not None else UNKNOWN)

    def _finish(self, call: Call, code: int) -> None:
        if call.done:
            return
        call.done = True
        node = self.node
        self.calls.pop(call.sid, None)
        call.upstream.release(call)
        self._unbusy(call)
        node.telemetry.active_requests -= 1
        name = call.target.name
        node.telemetry.record_call(name, call.path, code, time.perf_counter() - call.started,
                                   call.bytes_in, call.bytes_out, call.trace_id, call.span_id)
        tracer = node.tracer  # None unless the node's config has a tracing section
        if tracer is not None:
            tracer.record(b"GRPC", call.path, HTTP_STATUS[code] if 0 <= code < len(HTTP_STATUS) else 500,
                          call.started, call.trace_id, call.span_id, call.incoming_trace, name)
        if not self.closed:
            if call.upstream in self.links:
                self._retire(call.upstream)
            if self.closing and not self.calls and not self.transport.is_closing():
                self._close()

    def _retire(self, upstream: H2Upstream | MockUpstream) -> None:
        """Close an idle connection to a backend the routing table no longer sends calls to (the mock's stays:
        it holds nothing)."""
        if (upstream.calls or upstream.waiting or upstream.target.mock
                or upstream.target.addr in self.node.routing.routed_addrs()):
            return
        self.upstream_gone(upstream, lost=True)
        upstream.close()


def _http_status(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b":status":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class GrpcHandler:
    """The ``grpc`` mode: ``GrpcProxyProtocol`` on a plain (h2c) or TLS (ALPN ``h2``) port."""

    tls_alpn = ("h2",)

    def __init__(self, name: str = "grpc") -> None:
        self.name = name

    async def serve(self, node: DataNode, host: str, port: int) -> asyncio.AbstractServer:
        return await serve_node(lambda: GrpcProxyProtocol(node), node, host, port)
