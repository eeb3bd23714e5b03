"""A small OTLP/HTTP protobuf encoder for the adapter's server spans (standard library only).

The adapter exports one span per request. The OpenTelemetry SDK costs about 36 us per span on this machine
(start, attributes, end, the batch processor's lock), a third of what the proxy spends on a whole request; a
span here is a tuple appended to a bounded queue on the request path, and the encoding below runs in the
exporter's background task at about 2 us a span (the constant parts of a span are cached). It writes the
messages of ``opentelemetry/proto/collector/trace/v1/trace_service.proto`` that a collector decodes:

    ExportTraceServiceRequest{resource_spans: [ResourceSpans{resource, scope_spans: [ScopeSpans{scope, spans}]}]}

Field numbers follow opentelemetry-proto 1.x (Span: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6,
start/end 7/8 as fixed64, attributes 9, status 15; AnyValue: string 1, bool 2, int 3, double 4, array 5).
The tests decode what this writes with opentelemetry-proto's own messages.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["SPAN_KIND_SERVER", "STATUS_ERROR", "attribute", "resource_spans", "span", "trace_request"]

SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
STATUS_OK = 1
STATUS_ERROR = 2
_fixed64 = struct.Struct("<Q").pack
_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [_varint(i) for i in range(1 << 14)]


def _len(n: int) -> bytes:
    return _SMALL[n] if n < 16384 else _varint(n)


def _field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the length, the bytes."""
    return tag + _len(len(data)) + data


def _any_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, (list, tuple)):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))
    return _field(b"\x0a", str(value).encode())


def attribute(key: str, value: Any, tag: bytes = b"\x4a") -> bytes:
    """One ``KeyValue`` as a repeated field ``tag`` of its message (Span.attributes by default; 0x0a for
    Resource.attributes); ``value`` a str, bool, int, float or a list of those."""
    return _field(tag, _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value)))


def span(trace_id: bytes, span_id: bytes, parent_span_id: bytes, head: bytes, start_ns: int, end_ns: int,
         tail: bytes = b"") -> bytes:
    """One ``Span`` as a field of ``ScopeSpans``. ``head``: the encoded name and kind (and any field numbered
    between them); ``tail``: the encoded attributes and status (cached per kind of request by the caller)."""
    body = b"".join((b"\x0a\x10", trace_id, b"\x12\x08", span_id, b"\x22\x08" + parent_span_id if parent_span_id
                     else b"", head, b"\x39", _fixed64(start_ns), b"\x41", _fixed64(end_ns), tail))
    return b"\x12" + _len(len(body)) + body


def span_head(name: str, kind: int = SPAN_KIND_SERVER) -> bytes:
    """A span's name and kind fields."""
    return _field(b"\x2a", name.encode()) + b"\x30" + _varint(kind)


def status(code: int, message: str = "") -> bytes:
    """A span's ``status`` field."""
    return _field(b"\x7a", (_field(b"\x12", message.encode()) if message else b"") + b"\x18" + _varint(code))


def resource_spans(resource: Iterable[tuple[str, Any]], scope: tuple[str, str], spans: Sequence[bytes]) -> bytes:
    """One ``ResourceSpans`` as a field of ``ExportTraceServiceRequest``: the resource's attributes, one scope,
    its encoded spans (from :func:`span`)."""
    resource_bytes = b"".join(attribute(k, v, b"\x0a") for k, v in resource)
    scope_bytes = _field(b"\x0a", scope[0].encode()) + (_field(b"\x12", scope[1].encode()) if scope[1] else b"")
    scope_spans = _field(b"\x0a", scope_bytes) + b"".join(spans)
    return _field(b"\x0a", _field(b"\x0a", resource_bytes) + _field(b"\x12", scope_spans))


def trace_request(resources: Iterable[bytes]) -> bytes:
    """The ``ExportTraceServiceRequest`` body of a ``POST /v1/traces`` from encoded ``ResourceSpans``."""
    return b"".join(resources)
