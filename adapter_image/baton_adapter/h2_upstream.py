"""The backend side of a ``grpc`` node: one HTTP/2 (h2c) connection per backend and client connection.

A client connection (``baton_adapter.grpc_proxy``) opens one ``H2Upstream`` per backend address its calls were
routed to, on the first such call, and sends each call on a stream of its own. Calls routed while it connects
(or while the backend's ``SETTINGS_MAX_CONCURRENT_STREAMS`` is reached) wait in order. The connection reports
back what the backend sends: response headers, data, trailers, resets; when it is lost (or the backend sends
GOAWAY) the calls it carried fail with ``UNAVAILABLE`` (or the reset is passed on when the response had begun),
and those still waiting, of which nothing was sent, go back to the proxy to be routed again
(``baton_adapter.hold``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes

from .grpc_call import send_window

if TYPE_CHECKING:
    from .grpc_call import Call
    from .routing import Target

__all__ = ["WINDOW", "H2Upstream"]

WINDOW = 1 << 20  # the receive window the adapter grants per stream and per connection, both sides


class H2Upstream(asyncio.Protocol):
    """One HTTP/2 connection to a backend, carrying the calls of one client connection routed to it."""

    def __init__(self, client: object, target: Target) -> None:
        self.client = client  # the GrpcProxyProtocol (its on_* methods receive what the backend sends)
        self.target = target
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self.calls: dict[int, Call] = {}  # by the backend's stream id
        self.waiting: deque[Call] = deque()  # routed here, not yet sent
        self.lost = False
        self.goaway = False  # the backend said it takes no new stream

    # -- connecting -----------------------------------------------------------------------------------------

    async def connect(self, timeout_s: float) -> None:
        """Connect (spawned by the client connection); a failure fails the calls waiting for it."""
        client = self.client
        node = client.node  # type: ignore[attr-defined]
        target = self.target
        breaker = node.breaker(target.name)
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.get_running_loop().create_connection(lambda: self, target.host, target.port)
        except (OSError, TimeoutError) as exc:
            breaker.failure()
            node.telemetry.attempt_failed(target.name, isinstance(exc, TimeoutError))
            self.connection_lost(exc)
            return
        breaker.success()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        h2 = self.h2
        h2.initiate_connection()
        h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: WINDOW, SettingCodes.ENABLE_PUSH: 0})
        h2.increment_flow_control_window(WINDOW - 65535)
        self.start_waiting()
        self.flush()

    # -- calls ----------------------------------------------------------------------------------------------

    def open(self, call: Call) -> None:
        """Send ``call`` to the backend now, or once connected (or once a stream is free)."""
        call.upstream = self
        self.waiting.append(call)
        if self.transport is not None:
            self.start_waiting()

    def start_waiting(self) -> None:
        h2 = self.h2
        limit = h2.remote_settings.max_concurrent_streams
        while self.waiting and h2.open_outbound_streams < limit and not self.goaway:
            call = self.waiting.popleft()
            sid = h2.get_next_available_stream_id()
            h2.send_headers(sid, call.headers)
            call.upstream_sid = sid
            self.calls[sid] = call
            self.pump_up(call)

    def pump_up(self, call: Call) -> None:
        """Send what the client sent of ``call`` as far as the backend's windows allow, then its end."""
        sid = call.upstream_sid
        if sid is None:
            return
        try:
            sent = send_window(self.h2, sid, call.up)
            if not call.up and call.up_end and not call.up_sent_end:
                self.h2.end_stream(sid)
                call.up_sent_end = True
        except H2Error:  # the backend already closed the stream: its reset or trailers come (or came) as events
            call.up.clear()
            return
        if sent:
            self.client.acknowledge(call, sent)  # type: ignore[attr-defined]

    def acknowledge(self, call: Call, n: int) -> None:
        """``n`` bytes the backend sent on ``call`` went on to the client: give the backend that window back."""
        if call.upstream_sid is not None and not self.lost:
            self.h2.acknowledge_received_data(n, call.upstream_sid)

    def cancel(self, call: Call, error_code: int = ErrorCodes.CANCEL) -> None:
        """The client cancelled ``call`` (or it failed): reset its stream at the backend."""
        if call.upstream_sid is None:
            try:
                self.waiting.remove(call)
            except ValueError:
                pass
            return
        self.calls.pop(call.upstream_sid, None)
        if not self.lost:
            try:
                self.h2.reset_stream(call.upstream_sid, error_code)
            except H2Error:
                pass
            self.start_waiting()

    def release(self, call: Call) -> None:
        """``call`` is over: forget it (resetting its stream when the backend answered before the client's side
        ended, so the stream does not stay open), and send the next waiting one."""
        if call.upstream_sid is not None and self.calls.pop(call.upstream_sid, None) is not None and not self.lost:
            if not call.up_sent_end:
                try:
                    self.h2.reset_stream(call.upstream_sid, ErrorCodes.CANCEL)
                except H2Error:
                    pass
            self.start_waiting()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            try:
                self.h2.close_connection()
            except H2Error:
                pass
            self.flush()
            self.transport.close()

    # -- what the backend sends -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        client = self.client
        try:
            events = self.h2.receive_data(data)
        except H2Error:
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        calls = self.calls
        for ev in events:
            if isinstance(ev, DataReceived):
                call = calls.get(ev.stream_id)
                if call is None:
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    continue
                padding = ev.flow_controlled_length - len(ev.data)
                if padding:
                    self.h2.acknowledge_received_data(padding, ev.stream_id)
                client.on_data(call, ev.data)  # type: ignore[attr-defined]
            elif isinstance(ev, ResponseReceived):
                call = calls.get(ev.stream_id)
                if call is not None:
                    client.on_response(call, ev.headers, ev.stream_ended is not None)  # type: ignore[attr-defined]
            elif isinstance(ev, TrailersReceived):
                call = calls.get(ev.stream_id)
                if call is not None:
                    client.on_trailers(call, ev.headers)  # type: ignore[attr-defined]
            elif isinstance(ev, StreamEnded):
                call = calls.get(ev.stream_id)
                if call is not None and call.trailers is None and not call.done:
                    client.on_trailers(call, [])  # type: ignore[attr-defined]  # ended without trailers
            elif isinstance(ev, StreamReset):
                call = calls.pop(ev.stream_id, None)
                if call is not None:
                    client.on_reset(call, ev.error_code)  # type: ignore[attr-defined]
            elif isinstance(ev, WindowUpdated):
                if ev.stream_id == 0:
                    for call in list(calls.values()):
                        self.pump_up(call)
                else:
                    call = calls.get(ev.stream_id)
                    if call is not None:
                        self.pump_up(call)
            elif isinstance(ev, RemoteSettingsChanged):
                for call in list(calls.values()):
                    self.pump_up(call)
                self.start_waiting()
            elif isinstance(ev, ConnectionTerminated):
                self.goaway = True
                client.upstream_gone(self)  # type: ignore[attr-defined]
                last = ev.last_stream_id if ev.last_stream_id is not None else 0
                for sid in [s for s in calls if s > last]:  # never processed by the backend
                    client.on_unavailable(calls.pop(sid), "the backend refused the call (GOAWAY)")  # type: ignore[attr-defined]
                for call in list(self.waiting):  # nothing of these was sent: routed again (or held)
                    self.waiting.remove(call)
                    client.on_unsent(call, "the backend went away before the call was sent")  # type: ignore[attr-defined]
        self.flush()
        client.flush()  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        client = self.client
        client.upstream_gone(self, lost=True)  # type: ignore[attr-defined]
        sent, unsent = list(self.calls.values()), list(self.waiting)
        self.calls.clear()
        self.waiting.clear()
        for call in sent:
            client.on_unavailable(call, f"the backend {self.target.label()} closed the connection")  # type: ignore[attr-defined]
        for call in unsent:  # nothing of these reached the backend: routed again (or held)
            client.on_unsent(call, f"the backend {self.target.label()} could not be reached")  # type: ignore[attr-defined]
        client.flush()  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        pass  # bounded by the HTTP/2 windows: at most a window per call is ever written ahead

    def resume_writing(self) -> None:
        pass
