"""What the layers below a node need from it, as ``typing.Protocol``s, so they never import ``node.py``.

The adapter's modules form a DAG, lowest first (``tests/unit/test_import_graph.py`` keeps it so)::

    errors, resilience, headers, streams, grpc_call <- telemetry, upstream   <- config <- routing, health, events, tls
    exposition, otlp, event_token, framing  leaves: the Prometheus text, the OTLP encoding, the events token, frames
    classification <- tracing  the request spans (contract classifications, the exporter)
    interfaces                 types only: what a node and a client connection look like from below
    listener                   TLS listening ports (the certificate current at accept)
    exchange <- server         the HTTP data plane      tcp_proxy <- protobuf_proxy    the stream data planes
    soap <- soap_proxy         SOAP: the action and the Fault detector (pure), the soap data plane on the HTTP one
    h2_upstream <- grpc_proxy  the gRPC data plane (HTTP/2, per call); grpc_health its backends' probe
    grpc_mock <- grpc_mock_upstream <- grpc_proxy   mocked calls, answered from a descriptor set
    protocols                  the handler registry (built-ins, then the ``baton.protocols`` entry points)
    management                 the management API over a ManagedNode
    node <- host <- cli        a node wires all of the above; the host runs nodes; the CLI runs the host

``Node`` satisfies ``DataNode`` and ``ManagedNode`` structurally; the client protocols of ``server``,
``tcp_proxy``, ``protobuf_proxy`` and ``grpc_proxy`` satisfy ``ClientConnection``. Nothing here runs on the hot path: the protocols are used in
annotations only (the modules using them import this one under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Coroutine, Protocol

if TYPE_CHECKING:
    from .config import Backend, Limits, NodeConfig, Policy
    from .events import EventLog
    from .resilience import CircuitBreaker, RetryBudget
    from .routing import RoutingTable
    from .telemetry import NodeTelemetry
    from .tls import CertificateStore
    from .tracing import SpanRecorder
    from .upstream import UpstreamPool

__all__ = ["ActiveRequest", "ClientConnection", "DataNode", "ManagedNode"]


class ActiveRequest(Protocol):
    """The request a client connection is answering, as the node's housekeeping sees it."""

    def check_idle(self, tick_s: float, limit_s: float) -> None:
        """Cut the response when its body made no progress for ``limit_s`` (called every ``tick_s``)."""
        ...


class ClientConnection(Protocol):
    """One client connection on a node's data port, as the node's housekeeping and shutdown see it."""

    @property
    def transport(self) -> asyncio.Transport: ...

    @property
    def active(self) -> ActiveRequest | None:
        """The request being answered (None between requests, and always for raw streams)."""
        ...

    @property
    def exchange(self) -> object | None:
        """The request whose head or body is being read, if any."""
        ...

    @property
    def tunnel(self) -> object | None:
        """The spliced peer once the connection is a byte tunnel (never idle-expired), else None."""
        ...

    @property
    def last_active(self) -> float:
        """Loop time at which the connection last finished a request."""
        ...

    def check_head(self, now: float, limit_s: float) -> None:
        """Refuse (408) and close when a request head has been arriving since before ``now - limit_s``."""
        ...

    def shutdown(self) -> None:
        """Graceful stop: close when idle, else after the current response."""
        ...


class DataNode(Protocol):
    """A node as its data plane (protocol handlers, their connections, exchanges) uses it."""

    name: str
    config: NodeConfig
    limits: Limits
    policy: Policy
    log: logging.LoggerAdapter[logging.Logger]
    telemetry: NodeTelemetry
    pool: UpstreamPool
    budget: RetryBudget
    breakers_on: bool
    timeout_s: float
    backoff_s: float
    routing: RoutingTable
    connections: set[ClientConnection]
    loop: asyncio.AbstractEventLoop
    closing: bool
    held: set[Any]  # exchanges waiting for the routing to change (see ``Exchange`` and ``limits.hold_s``)
    tls: CertificateStore | None  # the data port's TLS (None: plain TCP)
    tracer: SpanRecorder | None  # None: no spans (the data plane checks this one attribute)

    def breaker(self, target: str) -> CircuitBreaker: ...

    def unavailable_targets(self) -> frozenset[str]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    def mock_answer(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]: ...

    def grpc_mock(self) -> tuple[Any, str]:
        """A ``grpc`` node's mock (``grpc_mock.GrpcMock``), or None and the sentence its calls are refused with."""
        ...


class ManagedNode(Protocol):
    """A node as its management API uses it."""

    name: str
    instance: str  # this adapter process's name (random unless the config gives one)
    config: NodeConfig
    events: EventLog
    tracer: SpanRecorder | None
    telemetry: NodeTelemetry
    pool: UpstreamPool
    routing: RoutingTable
    tls: CertificateStore | None  # the data port's TLS (None: plain TCP)
    management_tls: CertificateStore | None  # the management port's TLS

    async def health(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def set_routing(self, table: RoutingTable) -> RoutingTable: ...

    def set_locked(self, locked: bool) -> None: ...

    def set_backend(self, backend: Backend) -> RoutingTable: ...

    def backend_json(self) -> dict[str, Any] | None: ...

    def in_flight(self) -> dict[str, int]: ...

    async def drain(self, timeout_s: float, addr: tuple[str, int] | None = None) -> dict[str, Any]: ...

    def breaker_states(self) -> dict[str, str]: ...
