"""Header rewriting for the HTTP proxy: hop-by-hop stripping, X-Forwarded-*, W3C traceparent.

Headers travel as lists of ``(name, value)`` bytes pairs exactly as parsed; names are compared lower-cased.
Each head is scanned once (``scan_*``), and built as one ``bytes`` so the proxy writes each head once.
"""

from __future__ import annotations

import random
import re

__all__ = [
    "HOP_BY_HOP",
    "RequestHead",
    "build_request_head",
    "build_response_head",
    "connection_tokens",
    "new_traceparent",
    "scan_request_headers",
    "scan_response_headers",
    "status_line",
]

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"trailers",
    b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization",
})
# dropped from requests as well: we set framing and forwarding ourselves
_REQUEST_DROP = HOP_BY_HOP | {b"content-length", b"expect", b"x-forwarded-for", b"x-forwarded-proto",
                              b"x-forwarded-host", b"traceparent"}
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length"}
_PLAIN_CONNECTION_TOKENS = frozenset({b"keep-alive", b"close", b"upgrade"})
_EMPTY: frozenset[bytes] = frozenset()
_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$")
_rand = random.Random()
_getrandbits = _rand.getrandbits


def connection_tokens(value: bytes) -> set[bytes] | frozenset[bytes]:
    """Lower-cased tokens of a Connection header value."""
    value = value.lower()
    if value in _PLAIN_CONNECTION_TOKENS:
        return _EMPTY  # the common case: a plain keep-alive/close/upgrade
    return {t.strip() for t in value.split(b",") if t.strip()}


def new_traceparent(incoming: bytes | None) -> tuple[bytes, str, str]:
    """The traceparent to send upstream, its trace id and its span id (the adapter's own span, the parent of
    the backend's): the incoming trace continued with a new span id, or a new trace when the header is absent
    or malformed."""
    span_id = "%016x" % (_getrandbits(64) or 1)
    if incoming is not None:
        m = _TRACEPARENT.match(incoming.strip().lower())
        if m is not None and m.group(1) != b"0" * 32:
            trace = m.group(1)
            return b"00-%s-%s-%s" % (trace, span_id.encode(), m.group(2)), trace.decode(), span_id
    trace_id = "%032x" % (_getrandbits(128) or 1)
    return b"00-%s-%s-01" % (trace_id.encode(), span_id.encode()), trace_id, span_id


class RequestHead:
    """What one pass over a request's headers found: the forwardable header lines and the framing facts."""

    __slots__ = ("kept", "content_length", "chunked", "expect_continue", "upgrade", "host", "forwarded_for",
                 "forwarded_proto", "forwarded_host", "traceparent")

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.upgrade: bytes | None = None
        self.host = b""
        self.forwarded_for: bytes | None = None
        self.forwarded_proto: bytes | None = None
        self.forwarded_host: bytes | None = None
        self.traceparent: bytes | None = None


def scan_request_headers(headers: list[tuple[bytes, bytes]], drop: frozenset[bytes] = _REQUEST_DROP) -> RequestHead:
    """One pass over the request headers: keep end-to-end ones, note framing, forwarding and tracing.

    Raises ``ValueError`` for a Content-Length that is not a number.
    """
    info = RequestHead()
    kept = info.kept
    for name, value in headers:
        lname = name.lower()
        if lname in drop:
            if lname == b"content-length":
                info.content_length = int(value)
            elif lname == b"transfer-encoding":
                info.chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                named = connection_tokens(value) - _PLAIN_CONNECTION_TOKENS
                if named and not named <= drop:
                    # headers named in Connection are hop-by-hop too: rescan without them (rare path)
                    return scan_request_headers(headers, drop | named)
            elif lname == b"upgrade":
                info.upgrade = value
            elif lname == b"expect":
                info.expect_continue = value.lower() == b"100-continue"
            elif lname == b"x-forwarded-for":
                info.forwarded_for = value if info.forwarded_for is None else info.forwarded_for + b", " + value
            elif lname == b"traceparent":
                info.traceparent = value
            elif lname == b"x-forwarded-proto":
                info.forwarded_proto = value
            elif lname == b"x-forwarded-host":
                info.forwarded_host = value
            continue
        if lname == b"host":
            info.host = value
        kept += (name, b": ", value, b"\r\n")
    if info.chunked:
        info.content_length = None
    return info


def build_request_head(
    method: bytes, target: bytes, info: RequestHead, peer_ip: bytes, proto: bytes, upgrade: bytes | None
) -> tuple[bytes, str, str]:
    """The upstream request head (HTTP/1.1), the request's trace id and the span id sent in its traceparent."""
    tp, trace_id, span_id = new_traceparent(info.traceparent)
    xff = peer_ip if info.forwarded_for is None else info.forwarded_for + b", " + peer_ip
    # an upstream proxy's view of scheme and host (e.g. a TLS-terminating load balancer) is kept
    parts = [method, b" ", target, b" HTTP/1.1\r\n", *info.kept,
             b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n" % (xff, info.forwarded_proto or proto)]
    host = info.forwarded_host or info.host
    if host:
        parts.append(b"X-Forwarded-Host: %s\r\n" % host)
    parts.append(b"traceparent: %s\r\n" % tp)
    if upgrade is not None:
        parts.append(b"Connection: upgrade\r\nUpgrade: %s\r\n" % upgrade)
    if info.content_length is not None:
        parts.append(b"Content-Length: %d\r\n\r\n" % info.content_length)
    elif info.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n\r\n")
    else:
        parts.append(b"\r\n")
    return b"".join(parts), trace_id, span_id


def scan_response_headers(
    headers: list[tuple[bytes, bytes]], drop: frozenset[bytes] = _RESPONSE_DROP
) -> tuple[list[bytes], bytes | None, bool]:
    """One pass over response headers: the end-to-end header lines, the Content-Length, whether chunked."""
    kept: list[bytes] = []
    content_length: bytes | None = None
    chunked = False
    for name, value in headers:
        lname = name.lower()
        if lname in drop:
            if lname == b"content-length":
                content_length = value
            elif lname == b"transfer-encoding":
                chunked = True
            elif lname == b"connection":
                named = connection_tokens(value) - _PLAIN_CONNECTION_TOKENS
                if named and not named <= drop:
                    return scan_response_headers(headers, drop | named)
            continue
        kept += (name, b": ", value, b"\r\n")
    return kept, content_length, chunked


_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}


def status_line(status: int, reason: bytes) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``, cached for the common (status, reason) pairs."""
    key = (status, reason)
    line = _STATUS_LINES.get(key)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)  # an empty reason phrase is valid
        if len(_STATUS_LINES) < 256:
            _STATUS_LINES[key] = line
    return line


def build_response_head(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    framing: bytes,
    keep_alive: bool,
    extra: bytes = b"",
) -> bytes:
    """A whole response head from raw headers (used for heads the adapter writes from a mock answer)."""
    kept, _, _ = scan_response_headers(headers)
    return b"".join([status_line(status, reason), *kept, framing, extra,
                     b"" if keep_alive else b"Connection: close\r\n", b"\r\n"])
