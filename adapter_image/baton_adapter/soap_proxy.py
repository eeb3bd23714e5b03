"""The ``soap`` data plane: the HTTP/1.1 proxy with SOAPAction-aware routing and ``soap:Fault`` counting.

A request on a soap node is an ``Exchange`` that (1) routes on its action: header rules see the SOAP 1.1
``SOAPAction`` header or the SOAP 1.2 content type's ``action`` as one unquoted ``SOAPAction`` header
(``soap.routing_headers``), and (2) watches its response body for a Fault (``soap.FaultDetector``) as it passes,
unchanged, chunked or not, from a backend or from the mock. A response carrying a Fault counts as a failed
request (once: a 5xx with a Fault was already one) and as a SOAP fault of its target
(``NodeTelemetry.record_fault``). The fault is counted when the exchange is finished, right after the request's
own record and before the connection moves on to its next request. ``http`` nodes never run any of this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exchange import Exchange
from .server import HttpHandler, HttpProxyProtocol
from .soap import FaultDetector, SoapFault, detector_for, routing_headers

if TYPE_CHECKING:
    from .downstream import Downstream
    from .upstream import UpstreamConnection

__all__ = ["SoapExchange", "SoapHandler", "SoapProxyProtocol"]


class SoapExchange(Exchange):
    """One request on a soap node."""

    __slots__ = ("detector",)

    def __init__(self, down: Downstream, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
                 keep_alive: bool, http11: bool) -> None:
        super().__init__(down, method, url, headers, keep_alive, http11)
        self.headers = routing_headers(headers)  # forwarded as received: the upstream head is built from ``info``
        self.detector: FaultDetector | None = None

    def response_head(self, conn: UpstreamConnection, status: int, reason: bytes,
                      headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self.detector = detector_for(status, headers, self.method)
        super().response_head(conn, status, reason, headers, keep_alive)

    def response_body(self, data: bytes) -> None:
        detector = self.detector
        if detector is not None and not detector.done:
            detector.feed(data)
        super().response_body(data)

    def mock_answered(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        detector = self.detector = detector_for(status, headers, self.method)
        if detector is not None:
            detector.feed(body)

    @property
    def fault(self) -> SoapFault | None:
        """The Fault its response carried (None: none, or no response)."""
        detector = self.detector
        return detector.fault if detector is not None else None


class SoapProxyProtocol(HttpProxyProtocol):
    """A client connection on a soap node's data port."""

    __slots__ = ()
    exchange_type = SoapExchange

    def exchange_finished(self, ex: Exchange, keep_open: bool) -> None:
        fault = ex.fault if isinstance(ex, SoapExchange) else None
        if fault is not None:  # the exchange's own record is the newest: the next request has not started
            target = ex.target
            self.node.telemetry.record_fault(target.name if target is not None else "-", fault.code)
        super().exchange_finished(ex, keep_open)


class SoapHandler(HttpHandler):
    """The protocol handler of ``soap`` nodes (TLS as for ``http``)."""

    protocol_type = SoapProxyProtocol

    def __init__(self, name: str = "soap") -> None:
        super().__init__(name)
