"""One gRPC call proxied through a ``grpc`` node: its state, and the pure rules that read gRPC out of HTTP/2.

A call is one HTTP/2 stream from the client paired with one stream to the backend its routing decision chose
(``baton_adapter.grpc_proxy`` owns the client side, ``baton_adapter.h2_upstream`` the backend side). Bytes
each way wait here, bounded by the HTTP/2 windows, until the peer's window takes them: a byte received is
acknowledged (its window credit returned to the sender) only once it has been sent on, so a slow reader
slows the writer on the far side and the adapter never holds more than a window per call and direction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .headers import new_traceparent

if TYPE_CHECKING:
    from h2.connection import H2Connection

    from .routing import Target

__all__ = ["CODES", "HTTP_STATUS", "Call", "FrameGuard", "FrameError", "MessageReader", "code_of_reset", "frame", "grpc_status",
           "send_window", "trailers", "trailers_only"]

# gRPC status codes by number (grpc/status.h)
CODES: tuple[str, ...] = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)
# the HTTP status a code reads as in signals (grpc-gateway's mapping): OK 200, CANCELLED 499, UNAVAILABLE 503...
HTTP_STATUS: tuple[int, ...] = (200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401)
UNKNOWN = 2
UNAVAILABLE = 14
CANCELLED = 1
INTERNAL = 13
RESOURCE_EXHAUSTED = 8
MAX_MESSAGE = 4 << 20  # the largest message a gRPC server takes by default (grpcio, grpc-go, grpc-java)

_RST_CANCEL = 0x8
_RST_REFUSED = 0x7


def grpc_status(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The ``grpc-status`` of a trailers (or trailers-only) block, or None when it has none (or an unreadable one)."""
    for name, value in headers:
        if name == b"grpc-status":
            try:
                code = int(value)
            except ValueError:
                return UNKNOWN
            return code if 0 <= code < len(CODES) else UNKNOWN
    return None


def code_of_reset(error_code: int) -> int:
    """The gRPC code a stream reset reads as (what grpcio reports for it)."""
    if error_code == _RST_CANCEL:
        return CANCELLED
    if error_code == _RST_REFUSED:
        return UNAVAILABLE
    return INTERNAL


def trailers_only(code: int, message: str) -> list[tuple[bytes, bytes]]:
    """A trailers-only answer (one HEADERS frame ending the stream) with ``code``: what the adapter sends when no
    backend takes a call."""
    return [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", str(code).encode()),
            (b"grpc-message", _percent(message))]


def trailers(code: int, message: str = "") -> list[tuple[bytes, bytes]]:
    """The trailers ending a call that had a response: its ``grpc-status`` (and ``grpc-message``)."""
    out = [(b"grpc-status", str(code).encode())]
    if message:
        out.append((b"grpc-message", _percent(message)))
    return out


def _percent(message: str) -> bytes:
    """A ``grpc-message`` value: UTF-8, percent-encoded outside printable ASCII (and ``%``; a space too, as ever)."""
    return "".join(c if " " < c <= "~" and c != "%" else "".join(f"%{b:02X}" for b in c.encode()) for c in message
                   ).encode("ascii")


def frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: compressed flag 0, the length as 4 bytes big-endian, the message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class FrameError(Exception):
    """A client's bytes are no gRPC message: ``code`` is what a gRPC server answers (INTERNAL, or
    RESOURCE_EXHAUSTED for a message over ``MAX_MESSAGE``); the message says why in one sentence."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class MessageReader:
    """Reads length-prefixed messages out of a call's request bytes as they arrive (no compression: the adapter
    offers none, so a set compressed flag is an error, as gRPC servers make it)."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def next(self) -> bytes | None:
        """The next complete message (removed from ``buffer``), or None until more bytes arrive."""
        buf = self.buffer
        if len(buf) < 5:
            return None
        if buf[0] != 0:
            raise FrameError(INTERNAL, "a compressed message arrived but no grpc-encoding was agreed" if buf[0] == 1
                             else f"a message's compressed flag is {buf[0]}, expected 0")
        size = int.from_bytes(buf[1:5], "big")
        if size > MAX_MESSAGE:
            raise FrameError(RESOURCE_EXHAUSTED, f"a message of {size} bytes is over the limit of {MAX_MESSAGE}")
        if len(buf) < 5 + size:
            return None
        message = bytes(buf[5:5 + size])
        del buf[:5 + size]
        return message

    def leftover(self) -> bool:
        """Whether bytes of an unfinished message wait (a truncated message once the client's side ended)."""
        return bool(self.buffer)


def with_traceparent(headers: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], bytes | None, str, str]:
    """``headers`` with the traceparent a backend gets (the caller's trace continued with the adapter's span as
    parent, or a new trace: ``headers.new_traceparent``), the client's own traceparent, the trace id and the
    adapter's span id."""
    incoming = None
    kept = []
    for name, value in headers:
        if name == b"traceparent":
            incoming = value
        else:
            kept.append((name, value))
    tp, trace_id, span_id = new_traceparent(incoming)
    kept.append((b"traceparent", tp))
    return kept, incoming, trace_id, span_id


class FrameGuard:
    """Reads the HTTP/2 frame headers a client sends, before hyper-h2 buffers them: h2 checks a frame's declared
    length only once the whole frame has arrived, so a peer declaring a 16 MiB frame could make the adapter
    hold 16 MiB per connection. ``feed`` is False as soon as a header declares more than ``limit``."""

    __slots__ = ("limit", "preface", "need", "head")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.preface = 24  # the client's connection preface ("PRI * HTTP/2.0...") precedes the first frame
        self.need = 0  # bytes of the current frame's payload still to come
        self.head = b""  # the start of a frame header split across reads

    def feed(self, data: bytes) -> bool:
        pos, end = 0, len(data)
        if self.preface:
            pos = min(self.preface, end)
            self.preface -= pos
        while pos < end:
            if self.need:
                step = min(self.need, end - pos)
                self.need -= step
                pos += step
                continue
            take = min(9 - len(self.head), end - pos)
            self.head += data[pos:pos + take]
            pos += take
            if len(self.head) < 9:
                break
            length = int.from_bytes(self.head[:3], "big")
            self.head = b""
            if length > self.limit:
                return False
            self.need = length
        return True


def send_window(conn: H2Connection, stream_id: int, buf: bytearray) -> int:
    """Send as much of ``buf`` on ``stream_id`` as the peer's windows allow (removing it from ``buf``); return
    how many bytes went."""
    sent = 0
    while buf:
        window = conn.local_flow_control_window(stream_id)
        if window <= 0:
            break
        n = min(len(buf), window, conn.max_outbound_frame_size)
        conn.send_data(stream_id, bytes(buf[:n]))
        del buf[:n]
        sent += n
    return sent


class Call:
    """One proxied call: the client's stream, the backend's, and what waits to go either way."""

    __slots__ = ("sid", "headers", "path", "target", "upstream", "upstream_sid", "up", "up_end", "up_sent_end",
                 "down", "trailers", "response_started", "code", "started", "bytes_in", "bytes_out", "done",
                 "trace_id", "span_id", "incoming_trace", "busy_addr", "failed", "reroutes", "hold_until", "holds")

    def __init__(self, sid: int, headers: list[tuple[bytes, bytes]], path: bytes, target: Target,
                 started: float) -> None:
        self.sid = sid  # the client's stream
        self.headers = headers  # the request headers, forwarded as they came
        self.path = path
        self.target = target
        self.upstream: Any = None  # the H2Upstream carrying it
        self.upstream_sid: int | None = None  # the backend's stream, once opened
        self.up = bytearray()  # client bytes not yet sent to the backend
        self.up_end = False  # the client ended its side
        self.up_sent_end = False  # ... and that end was passed on
        self.down = bytearray()  # backend bytes not yet sent to the client
        self.trailers: list[tuple[bytes, bytes]] | None = None  # the backend's trailers, sent once `down` is empty
        self.response_started = False  # the response headers went to the client
        self.code: int | None = None  # the call's gRPC status, once known
        self.started = started
        self.bytes_in = 0
        self.bytes_out = 0
        self.done = False
        self.trace_id = ""  # the trace it belongs to, and the adapter's span sent upstream in its traceparent
        self.span_id = ""
        self.incoming_trace: bytes | None = None  # the client's traceparent, when it sent one
        self.busy_addr: tuple[str, int] | None = None  # the backend it counts against (``pool.mark_busy``)
        self.failed: frozenset[str] = frozenset()  # targets that failed it before anything was sent
        self.reroutes = 0  # routings again after such failures (``baton_adapter.hold``)
        self.hold_until = 0.0  # when its hold for a routing change ends (0: it never held)
        self.holds = 0
