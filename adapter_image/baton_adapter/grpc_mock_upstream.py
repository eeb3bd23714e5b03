"""The mock side of a ``grpc`` node: calls routed to a mock target, answered in process.

A client connection (``baton_adapter.grpc_proxy``) carries the calls it routes to the node's mock on one
``MockUpstream``, which has the shape of an ``H2Upstream`` (``open``, ``pump_up``, ``acknowledge``, ``cancel``,
``release``, ``calls``, ``waiting``...) and answers through the same ``on_response``/``on_data``/``on_trailers``
callbacks a backend's connection uses. So the proxy's flow control, telemetry (``_finish``), cancellation and
graceful shutdown treat a mocked call as any other:

- the request's messages are read as the client's bytes arrive; they are acknowledged (their window given back
  to the client) only while the answers already made wait for less than ``PENDING`` bytes, so a client that
  sends a bidi stream but does not read the answers is slowed down as a backend would slow it;
- unary: one answer once the client's side ends; server-streaming: ``SERVER_STREAM_COUNT`` answers;
  client-streaming: every request read, then one answer; bidi: one answer per request, ending when the client
  ends its side. Answers are ``GrpcMock.answer(method, i)``: deterministic per method and index;
- a method the descriptor set lacks is UNIMPLEMENTED (12); a request that is no message of the method's input
  type (a compressed or truncated frame, bytes that do not parse, a second request of a unary call) is INTERNAL
  (13), as gRPC servers answer it; a message over 4 MiB is RESOURCE_EXHAUSTED (8);
- a node whose mock is missing or broken answers every call UNAVAILABLE (14) with the sentence saying why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .grpc_call import INTERNAL, FrameError, MessageReader, trailers, trailers_only
from .grpc_mock import SERVER_STREAM_COUNT

if TYPE_CHECKING:
    from .grpc_call import Call
    from .grpc_mock import GrpcMock, Method
    from .routing import Target

__all__ = ["MockUpstream"]

UNIMPLEMENTED = 12
UNAVAILABLE = 14
PENDING = 64 << 10  # answer bytes waiting for the client's window before the mock stops reading requests
_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


class _State:
    """What the mock knows of one call: its method, the requests read, the answers sent."""

    __slots__ = ("method", "reader", "received", "sent", "started", "ended", "busy")

    def __init__(self, method: Method) -> None:
        self.method = method
        self.reader = MessageReader()
        self.received = 0  # request messages read
        self.sent = 0  # answers sent
        self.started = False  # the response headers went
        self.ended = False  # the trailers went (or an error answer)
        self.busy = False  # in ``pump_up`` (answering calls back into it through ``acknowledge``)


class MockUpstream:
    """The calls of one client connection routed to the node's mock (``mock`` None: ``error`` says why none)."""

    waiting: tuple[Call, ...] = ()  # a mock never makes a call wait
    lost = False
    goaway = False

    def __init__(self, client: Any, target: Target, mock: GrpcMock | None, error: str) -> None:
        self.client = client  # the GrpcProxyProtocol
        self.target = target
        self.mock = mock
        self.error = error
        self.calls: dict[int, _State] = {}  # by the client's stream id

    async def connect(self, timeout_s: float) -> None:
        """Nothing to connect to."""

    def open(self, call: Call) -> None:
        """Take ``call``: an unknown method (or no mock) is answered at once, others once their requests come."""
        call.upstream = self
        mock = self.mock
        if mock is None:
            self.client.on_response(call, trailers_only(UNAVAILABLE, self.error), True)
            return
        method = mock.method(call.path)
        if method is None:
            self.client.on_response(call, trailers_only(UNIMPLEMENTED, mock.unknown(call.path)), True)
            return
        self.calls[call.sid] = _State(method)
        self.pump_up(call)

    def pump_up(self, call: Call) -> None:
        """Read what the client sent of ``call`` and answer it, as far as the client takes the answers."""
        state = self.calls.get(call.sid)
        if state is None or state.busy:
            return
        state.busy = True
        try:
            self._pump(call, state)
        finally:
            state.busy = False

    def _pump(self, call: Call, state: _State) -> None:
        client = self.client
        mock = self.mock
        assert mock is not None
        method = state.method
        while not state.ended:
            if len(call.down) >= PENDING:
                return  # the client is not reading: its requests wait (acknowledge() resumes)
            if call.up:
                n = len(call.up)
                state.reader.buffer += call.up
                call.up.clear()
                client.acknowledge(call, n)
            try:
                message = state.reader.next()
            except FrameError as exc:
                self._end(call, state, exc.code, str(exc))
                return
            if message is None:
                break
            problem = mock.check_request(method, message)
            if problem is None and not method.client_streaming and state.received:
                problem = f"{method.path.decode()} takes one request message, got a second"
            if problem is not None:
                self._end(call, state, INTERNAL, problem)
                return
            state.received += 1
            if method.client_streaming and method.server_streaming:  # bidi: one answer per request
                self._send(call, state, mock.answer(method, state.sent))
        if state.ended:
            if call.up:  # sent after the answer ended: dropped, its window given back
                n = len(call.up)
                call.up.clear()
                client.acknowledge(call, n)
            return
        if not call.up_end or call.up:
            return
        if state.reader.leftover():
            self._end(call, state, INTERNAL, "the client's side ended inside a message")
        elif not method.client_streaming and state.received != 1:
            self._end(call, state, INTERNAL, f"{method.path.decode()} takes one request message, got none")
        elif method.server_streaming and not method.client_streaming:
            for i in range(1 if method.hold else SERVER_STREAM_COUNT):
                self._send(call, state, mock.answer(method, i))
            if not method.hold:  # Health/Watch stays open until the client ends it
                self._end(call, state, 0, "")
        else:
            if not method.server_streaming:  # unary and client-streaming: one answer
                self._send(call, state, mock.answer(method, 0))
            self._end(call, state, 0, "")

    def _send(self, call: Call, state: _State, data: bytes) -> None:
        if not state.started:
            state.started = True
            self.client.on_response(call, list(_HEADERS), False)
        state.sent += 1
        self.client.on_data(call, data)

    def _end(self, call: Call, state: _State, code: int, message: str) -> None:
        state.ended = True
        if state.started:
            self.client.on_trailers(call, trailers(code, message))
        else:
            self.client.on_response(call, trailers_only(code, message), True)

    def acknowledge(self, call: Call, n: int) -> None:
        """``n`` answer bytes went to the client: read on, if requests were waiting for that."""
        state = self.calls.get(call.sid)
        if state is not None and not state.ended:
            self.pump_up(call)

    def cancel(self, call: Call, error_code: int = 0) -> None:
        """The client cancelled ``call``: forget it."""
        self.calls.pop(call.sid, None)

    def release(self, call: Call) -> None:
        """``call`` is over: forget it."""
        self.calls.pop(call.sid, None)

    def flush(self) -> None:
        """Nothing to write: answers go through the client connection."""

    def close(self) -> None:
        self.calls.clear()
