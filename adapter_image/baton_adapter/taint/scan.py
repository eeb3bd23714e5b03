"""The scan of one exchange: its request head and body (into the node), its response head and body (out).

An :class:`ExchangeScan` is fed by the exchange's hooks as bytes pass and reports each active canary it
finds once per (fingerprint, direction, part). Most exchanges are a head and at most one body chunk each way,
so the scan is built for that: heads and a first body chunk are only kept (by reference) until the exchange
ends, then searched together in one pass, one value per line (the request target first, reported as the
header ``:path``; no token holds a line break, so none spans two values). A body that arrives in a second
chunk, or with a ``Content-Encoding``, is scanned while it streams (:class:`~.stream.BodyStream`) instead.
A sighting carries the exchange's status: what is found before the response head is held until the end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .stream import BodyStream, content_decoder
from .values import find

if TYPE_CHECKING:
    from .state import TaintState
    from .values import Found

__all__ = ["ExchangeScan"]

_CONTENT_ENCODING = b"content-encoding"
MAX_PATH = 512  # characters of the path kept in a sighting
_Hit = tuple[str, str, str, str, float]  # fingerprint, direction, part, header, time


def _encoding(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if len(name) == 16 and name.lower() == _CONTENT_ENCODING:
            return value
    return None


def _stream(headers: list[tuple[bytes, bytes]]) -> BodyStream | None:
    """A streaming scanner for a body with these headers (None: plain, the end-of-exchange pass can take it)."""
    encoding = _encoding(headers)
    if encoding is None:
        return None
    decoder = content_decoder(encoding)
    if decoder is None:
        return None
    stream = BodyStream(decoder or None)
    if decoder is False:
        stream.skip()  # an encoding the standard library cannot decode: the raw bytes say nothing
    return stream


def _trace_id(traceparent: bytes | None) -> str:
    """The trace id of an incoming W3C traceparent (``00-<32 hex>-<16 hex>-<2 hex>``), else empty."""
    if traceparent is None:
        return ""
    parts = traceparent.strip().lower().split(b"-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1].strip(b"0123456789abcdef"):
        return ""
    return parts[1].decode()


class ExchangeScan:
    """What scanning one exchange found so far, and where its two bodies stand."""

    __slots__ = ("state", "method", "url", "traceparent", "request_headers", "response_headers", "request_first",
                 "response_first", "request", "response", "status", "target", "trace_id", "seen", "pending")

    def __init__(self, state: TaintState, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
                 traceparent: bytes | None) -> None:
        self.state = state
        self.method = method
        self.url = url
        self.traceparent = traceparent
        self.request_headers = headers
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.request_first: bytes | None = None  # a body's first chunk, kept for the end-of-exchange pass
        self.response_first: bytes | None = None
        self.request: BodyStream | None = None  # a body scanned while it streams
        self.response: BodyStream | None = None
        self.status = 0
        self.target = ""
        self.trace_id = ""
        self.seen: set[tuple[str, str, str]] | None = None
        self.pending: list[_Hit] | None = None

    # -- hooks (called by the exchange) ---------------------------------------------------------------------

    def request_body(self, data: bytes) -> None:
        stream = self.request
        if stream is None:
            first = self.request_first
            if first is None:
                stream = _stream(self.request_headers)
                if stream is None:
                    self.request_first = data
                    return
                self.request = stream
            else:
                self.request_first = None
                stream = self.request = BodyStream()
                self._body(stream.feed(first), "request")
        self._body(stream.feed(data), "request")

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]], target: str, trace_id: str) -> None:
        self.status = status
        self.target = target
        self.trace_id = trace_id
        self.response_headers = headers
        if self.pending:
            self._flush()

    def response_body(self, data: bytes) -> None:
        stream = self.response
        if stream is None:
            first = self.response_first
            if first is None:
                stream = _stream(self.response_headers or [])
                if stream is None:
                    self.response_first = data
                    return
                self.response = stream
            else:
                self.response_first = None
                stream = self.response = BodyStream()
                self._body(stream.feed(first), "response")
        self._body(stream.feed(data), "response")

    def finish(self, status: int, target: str, trace_id: str) -> None:
        """The exchange ended (answered, failed or abandoned): search what was kept, record, count."""
        if not self.status:
            self.status = status
            self.target = target
            self.trace_id = trace_id
        state = self.state
        state.requests += 1
        request_headers, response_headers = self.request_headers, self.response_headers
        values = [self.url]
        values += [v for _, v in request_headers]
        if response_headers is not None:
            state.responses += 1
            values += [v for _, v in response_headers]
        if self.request_first is not None:
            values.append(self.request_first)
        if self.response_first is not None:
            values.append(self.response_first)
        blob = b"\n".join(values)
        state.bytes += len(blob)
        found = find(blob)
        if found:
            self._head_and_first_bodies(found, values)
        if self.request is not None:
            self._end(self.request, "request")
        if self.response is not None:
            self._end(self.response, "response")
        if self.pending:
            self._flush()

    # -- findings -------------------------------------------------------------------------------------------

    def _end(self, stream: BodyStream, direction: str) -> None:
        self._body(stream.end(), direction)
        state = self.state
        state.bytes += stream.scanned
        if stream.skipped:
            state.skipped += 1

    def _head_and_first_bodies(self, found: list[Found], values: list[bytes]) -> None:
        """Place each token of the end-of-exchange pass: which value (target, header, body) it was in."""
        families = self.state.families
        request_headers = self.request_headers
        response_headers = self.response_headers or []
        places: list[tuple[str, str, str]] = [("request", "header", ":path")]
        places += [("request", "header", name.decode("latin-1").lower()) for name, _ in request_headers]
        places += [("response", "header", name.decode("latin-1").lower()) for name, _ in response_headers]
        if self.request_first is not None:
            places.append(("request", "body", ""))
        if self.response_first is not None:
            places.append(("response", "body", ""))
        ends, offset = [], -1
        for value in values:
            offset += len(value) + 1
            ends.append(offset)  # where the line break after the value is
        index = 0
        for token in found:
            if families.get(token.fingerprint) != token.family:
                continue
            while ends[index] < token.start:
                index += 1
            self._hit(token.fingerprint, *places[index])

    def _body(self, found: list[Found], direction: str) -> None:
        if found:
            families = self.state.families
            for token in found:
                if families.get(token.fingerprint) == token.family:
                    self._hit(token.fingerprint, direction, "body", "")

    def _hit(self, fingerprint: str, direction: str, part: str, header: str) -> None:
        key = (fingerprint, direction, part)
        seen = self.seen
        if seen is None:
            self.seen = {key}
        elif key in seen:
            return
        else:
            seen.add(key)
        hit = (fingerprint, direction, part, header, time.time())
        if self.status:
            self._record(hit)
        elif self.pending is None:
            self.pending = [hit]
        else:
            self.pending.append(hit)

    def _flush(self) -> None:
        pending, self.pending = self.pending or [], None
        for hit in pending:
            self._record(hit)

    def _record(self, hit: _Hit) -> None:
        fingerprint, direction, part, header, seen_at = hit
        path = self.url.partition(b"?")[0][:MAX_PATH].decode("latin-1")
        self.state.record(fingerprint, direction, part, header, self.trace_id or _trace_id(self.traceparent),
                          self.method.decode("latin-1"), path, self.target, self.status, seen_at)
