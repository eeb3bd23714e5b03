"""A hosted node: its routing table, breakers, upstream pool, telemetry, mock, and its two listeners.

The routing table is immutable and replaced in one assignment, so a swap is atomic: a request picks its
target when it starts and keeps it; requests in flight on the old backend complete there; every request
that starts after the swap goes to the new backend. Nothing is refused because of a swap. ``drain`` waits
until backends no longer in the table have no request in flight, then closes their idle connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Coroutine
from urllib.parse import parse_qsl, unquote

from . import protocols
from .config import Backend, NodeConfig, is_loopback, process_instance
from .errors import BindError, ConfigError, RoutingLocked
from .events import EventLog
from .grpc_health import probe_grpc
from .health import HTTP_MODES, probe_http, probe_tcp
from .resilience import BreakerState, CircuitBreaker, RetryBudget
from .routing import RoutingTable
from .taint.sightings import SightingRing
from .taint.state import TaintState, report_off
from .telemetry import NodeTelemetry
from .tracing import SpanRecorder
from .upstream import UpstreamPool

if TYPE_CHECKING:
    from aiohttp import web

    from .interfaces import ClientConnection
    from .protocols import ProtocolHandler
    from .taint.spec import TaintSpec
    from .tls import CertificateStore

__all__ = ["Node", "RoutingLocked"]  # RoutingLocked lives in errors; re-exported for existing importers

log = logging.getLogger(__name__)


class Node:
    """Runtime state of one circuit node inside an adapter process.

    ``instance`` names the adapter process (set by whoever started it, else random per process); it is reported
    with the process id in ``status()`` and ``health()`` so a client can tell its own adapter from another one
    on the port, and with ``GET /signals?since=`` and ``GET /taint`` so a reader knows whose numbers it holds.
    """

    def __init__(self, config: NodeConfig, events: EventLog | None = None, instance: str = "") -> None:
        self.config = config
        self.name = config.name
        self.instance = instance or process_instance()
        self.limits = config.limits
        self.policy = config.policy
        self.events = events or EventLog()
        self.log = logging.LoggerAdapter(log, {"node": config.name})
        self.telemetry = NodeTelemetry(config.name, config.role, config.limits.signals_size)
        self.pool = UpstreamPool(config.limits.max_idle_upstream, config.limits.upstream_idle_s)
        self.budget = RetryBudget(config.policy.retry_budget_ratio)
        self.breakers: dict[str, CircuitBreaker] = {}
        self.breakers_on = config.policy.circuit_breaker_threshold > 0
        self.timeout_s = config.policy.timeout_ms / 1000
        self.backoff_s = config.policy.retry_backoff_ms / 1000
        self.routing = (RoutingTable.from_mapping(config.routing) if config.routing
                        else RoutingTable.single(config.backend))
        self.connections: set[ClientConnection] = set()
        self.held: set[Any] = set()  # exchanges no backend took, waiting for the routing to change
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.server: asyncio.AbstractServer | None = None
        self.management: web.AppRunner | None = None
        self.port = config.port
        self.management_port = config.management_port
        self.tls: CertificateStore | None = None  # loaded at start from config.tls, then rotated by the API
        self.management_tls: CertificateStore | None = None
        self._mock: Any = None
        self._mock_loaded = False
        self._mock_error: str | None = None
        self._soap_mock: Any = None  # a soap node's SoapMock, built with the engine (None: not a soap node)
        self.taint: TaintState | None = None  # None: not scanning (the data plane checks this one attribute)
        self._taint_seq = 0  # the last sighting number of a ring dropped by DELETE /taint (numbers never repeat)
        self.tracer = (None if config.tracing is None  # None: no spans (the data plane checks this one attribute)
                       else SpanRecorder(config.name, config.role, self.instance, config.contract, config.tracing))

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the data port and the management port (refusing an unauthenticated non-loopback bind).

        Raises ``BindError`` naming the port when either cannot be bound; nothing is left listening then.
        Raises ``TlsError`` (a ``ConfigError``) naming the file when a TLS section's material is unusable.
        """
        from .management import start_management

        config = self.config
        if not is_loopback(config.management_host):
            try:
                token = config.token()
            except LookupError:
                token = None
            if token is None:
                raise ConfigError(
                    f"node {self.name}: refusing to bind the management API on {config.management_host} without "
                    "a token; set token_env to a variable holding one, or bind 127.0.0.1."
                )
        self.loop = asyncio.get_running_loop()
        handler = protocols.get(config.mode)
        self._load_tls(handler)
        try:
            self.server = await handler.serve(self, config.host, config.port)
        except OSError as exc:
            raise BindError(self.name, "data", config.host, config.port, _bind_reason(exc)) from exc
        self.port = self.server.sockets[0].getsockname()[1]
        try:
            self.management, self.management_port = await start_management(self)
        except BaseException as exc:
            self.server.close()
            if isinstance(exc, OSError):
                raise BindError(self.name, "management", config.management_host, config.management_port,
                                _bind_reason(exc)) from exc
            raise
        if self.tracer is not None:
            self.tracer.start()

    def _load_tls(self, handler: ProtocolHandler) -> None:
        """Read and check the TLS sections' files (once: a restarted node keeps what was rotated in)."""
        config = self.config
        if config.tls is not None and self.tls is None:
            alpn = getattr(handler, "tls_alpn", None)
            if alpn is None:
                raise ConfigError(f"node {self.name}: the {config.mode!r} protocol handler cannot serve TLS; "
                                  "remove the node's tls section or register a handler that declares tls_alpn.")
            from .tls import store_from_config

            self.tls = store_from_config(config.tls, tuple(alpn), f"node {self.name!r}.tls")
        if config.management_tls is not None and self.management_tls is None:
            from .tls import store_from_config

            self.management_tls = store_from_config(config.management_tls, ("http/1.1",),
                                                    f"node {self.name!r}.management_tls")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let in-flight requests and open streams (tcp, protobuf) finish within ``grace_s``, then
        close everything."""
        self.closing = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = time.monotonic() + grace_s
        telemetry = self.telemetry
        while (telemetry.active_requests > 0 or telemetry.streams.open > 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.pool.close_idle()
        if self.tracer is not None:
            await self.tracer.stop()  # the last node of the process to stop flushes the spans that wait
        if self.management is not None:
            await self.management.cleanup()
            self.management = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task tracked until it ends (cancelled at stop)."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def housekeeping(self, tick_s: float = 1.0, idle_client_s: float = 75.0) -> None:
        """Periodic upkeep (every ``tick_s``): expire idle pooled connections and idle client keep-alive
        connections, answer 408 to request heads arriving for longer than ``limits.header_timeout_s``, and
        cut responses whose body stalled longer than ``limits.read_idle_s``."""
        self.pool.sweep()
        now = self.loop.time()
        cutoff = now - idle_client_s
        read_idle = self.limits.read_idle_s
        header_s = self.limits.header_timeout_s
        for conn in list(self.connections):
            active = conn.active
            if active is not None:
                if read_idle:
                    active.check_idle(tick_s, read_idle)
            elif conn.exchange is None and conn.tunnel is None:
                conn.check_head(now, header_s)
                if conn.last_active < cutoff:
                    conn.shutdown()

    # -- routing and backends -------------------------------------------------------------------------------

    def breaker(self, target: str) -> CircuitBreaker:
        breaker = self.breakers.get(target)
        if breaker is None:
            policy = self.policy
            breaker = CircuitBreaker(policy.circuit_breaker_threshold, policy.circuit_breaker_cooldown_ms / 1000)
            if len(self.breakers) >= 64:
                self.breakers.pop(next(iter(self.breakers)))
            self.breakers[target] = breaker
        return breaker

    def unavailable_targets(self) -> frozenset[str]:
        """Targets whose breaker refuses requests right now."""
        if not self.breakers_on:
            return frozenset()
        return frozenset(
            n for n, b in self.breakers.items() if b.state is not BreakerState.CLOSED and not b.available()
        )

    def set_routing(self, table: RoutingTable) -> RoutingTable:
        """Swap in ``table`` atomically; raise ``RoutingLocked`` when the current table is locked."""
        if self.config.role == "egress" and any(not t.mock for t in table.targets):
            raise ConfigError(f"node {self.name} is an egress node: it is always mocked and cannot route to a service.")
        for t in table.targets:
            if not t.mock and t.port == self.port and (is_loopback(t.host) or t.host == self.config.host):
                raise ConfigError(
                    f"node {self.name}: target {t.name} ({t.label()}) is this node's own data port; "
                    "point it at the service instead."
                )
        if self.routing.locked:
            raise RoutingLocked(
                f"node {self.name}: routing is locked; unlock it first (POST /routing {{\"locked\": false}})."
            )
        previous, self.routing = self.routing, table
        self.log.info("node %s: routing %s -> %s", self.name, previous.strategy, table.strategy)
        if self.held:  # requests no backend took try the new table at once
            held, self.held = self.held, set()
            for exchange in held:
                exchange.routing_changed()
        return previous

    def set_locked(self, locked: bool) -> None:
        self.routing = self.routing.with_locked(locked)

    def set_backend(self, backend: Backend) -> RoutingTable:
        return self.set_routing(RoutingTable.single(backend))

    def backend_json(self) -> dict[str, Any] | None:
        table = self.routing
        if not table.targets:
            return None
        if table.strategy == "single":
            return table.targets[0].to_json() | {"name": table.targets[0].name}
        return {"strategy": table.strategy, "targets": [t.to_json() for t in table.targets]}

    def in_flight(self) -> dict[str, int]:
        return {f"{h}:{p}": n for (h, p), n in self.pool.busy.items()}

    async def drain(self, timeout_s: float, addr: tuple[str, int] | None = None) -> dict[str, Any]:
        """Wait until ``addr`` (default: every backend no longer routed to) has no request in flight."""
        started = time.monotonic()
        deadline = started + timeout_s

        def old() -> list[tuple[str, int]]:
            # requests count from the moment they pick a backend (connecting included), so an empty count
            # here means nothing is in flight to it and nothing will be: the routing table no longer names it
            if addr is not None:
                return [addr] if addr in self.pool.busy else []
            current = self.routing.routed_addrs()
            return [a for a in self.pool.busy if a not in current]

        while old() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        remaining = old()
        current = self.routing.routed_addrs()
        for key in list(self.pool.idle):
            if (addr is None and key not in current) or key == addr:
                self.pool.close_idle(key)
        return {
            "node": self.name,
            "drained": not remaining,
            "waited_ms": round(1000 * (time.monotonic() - started), 3),
            "in_flight": {f"{h}:{p}": self.pool.busy.get((h, p), 0) for h, p in remaining},
        }

    # -- mock -----------------------------------------------------------------------------------------------

    def mock_answer(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        """Answer a request from the node's mock (contract mock when available, else a minimal one)."""
        engine = self._mock_engine()
        raw_path, _, raw_query = url.partition(b"?")
        path = unquote(raw_path.decode("latin-1"))
        if engine is None:
            if self._mock_error is not None:
                body_out = ('{"error": %s}' % _json_str(self._mock_error)).encode()
                return 503, b"Service Unavailable", [(b"Content-Type", b"application/json")], body_out
            if path == "/health":
                payload = '{"status": "ok"}'
            else:
                payload = '{"status": "mock", "node": %s}' % _json_str(self.name)
            return 200, b"OK", [(b"Content-Type", b"application/json")], payload.encode()
        lowered = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
        soap = self._soap_mock
        if soap is not None and method == b"POST" and soap.operations:
            answer = soap.answer(lowered, body)
            return answer.status, _reason(answer.status), _encoded(answer.headers), answer.body
        from .mock import MockRequest

        request = MockRequest(
            # HEAD is answered as the GET it mirrors; the exchange sends the head only, with the GET's length
            method="GET" if method == b"HEAD" else method.decode("latin-1"),
            path=path,
            query=parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True),
            headers=lowered,
            body=body,
        )
        resp = engine.handle(request)
        return resp.status, _reason(resp.status), _encoded(resp.headers), resp.body

    def grpc_mock(self) -> tuple[Any, str]:
        """The ``grpc`` node's mock (a ``GrpcMock``, loaded once) and, when it has none, why in one sentence."""
        mock = self._mock_engine()
        if mock is not None:
            return mock, ""
        return None, self._mock_error or (
            f"node {self.name} has no gRPC contract to mock; give it a .proto contract (Baton compiles it into a "
            "descriptor set) or a descriptor set (.protoset, .desc, .pb, .binpb).")

    def _mock_engine(self) -> Any:
        if self._mock_loaded:
            return self._mock
        self._mock_loaded = True
        if self.config.mode == "grpc":
            self._load_grpc_mock()
            return self._mock
        try:
            from .mock import MockEngine
        except ImportError:
            self.log.warning("node %s: contract mocks unavailable; serving a contract-less mock", self.name)
            return None
        try:
            self._mock = MockEngine.from_contract(self.config.contract, self.name,
                                                  validate_requests=self.config.validate_requests)
            if self.taint is not None:
                self._mock.seed_canaries(self.taint.seed_values())
            if self.config.mode == "soap":
                from .mock import SoapMock

                self._soap_mock = SoapMock.from_engine(self._mock)
        except Exception as exc:  # a bad contract is reported on every mocked request, not fatal
            self._mock_error = f"contract {self.config.contract} could not be loaded: {exc}"
            self.log.error("node %s: %s", self.name, self._mock_error)
        return self._mock

    def _load_grpc_mock(self) -> None:
        from .grpc_mock import DESCRIPTOR_SUFFIXES, GrpcMock, GrpcMockError

        contract = self.config.contract
        if not contract:
            return
        if not contract.endswith(DESCRIPTOR_SUFFIXES):
            self._mock_error = (f"contract {contract} is no descriptor set; a grpc node is mocked from a .proto "
                                f"contract compiled into one ({', '.join(DESCRIPTOR_SUFFIXES)}).")
        else:
            try:
                self._mock = GrpcMock.from_descriptor_set(contract, self.name)
            except GrpcMockError as exc:  # reported on every mocked call, not fatal
                self._mock_error = f"{exc}."
            else:
                if self.taint is not None:
                    self._mock.seed_canaries(self.taint.seed_values())
                return
        self.log.error("node %s: %s", self.name, self._mock_error)

    # -- taint ----------------------------------------------------------------------------------------------

    def set_taint(self, spec: TaintSpec) -> dict[str, Any]:
        """Scan for ``spec``'s canaries from now on (off when it is disabled); answer ``PUT /taint``.

        A spec of the generation already active updates it in place, keeping sightings and counters (a control
        plane may repeat its PUT); another generation starts an empty ring whose numbers continue the old ones.
        """
        if not spec.enabled:
            self.clear_taint()
            return {"node": self.name, "enabled": False, "generation": spec.generation, "canaries": 0, "seeded": 0}
        state = self.taint
        if state is not None and state.generation == spec.generation:
            state.apply(spec)
        else:
            seq = state.ring.seq if state is not None else self._taint_seq
            state = self.taint = TaintState(self.name, spec, SightingRing(seq=seq))
        if self._mock is not None:
            self._mock.seed_canaries(state.seed_values())
        self.log.info("node %s: taint scanning on, generation %s, %d canaries, %d seeded", self.name,
                      spec.generation, len(spec.canaries), len(spec.seed))
        return state.summary()

    def clear_taint(self) -> None:
        """Stop scanning; forget the canaries and the sightings (``DELETE /taint``)."""
        state, self.taint = self.taint, None
        if state is None:
            return
        self._taint_seq = state.ring.seq
        if self._mock is not None:
            self._mock.seed_canaries({})
        self.log.info("node %s: taint scanning off", self.name)

    def taint_report(self, since: int) -> dict[str, Any]:
        """``GET /taint``: the state and the sightings numbered above ``since``."""
        state = self.taint
        if state is None:
            return report_off(self.name, since, self.instance)
        return state.report(since, self.instance)

    # -- views ----------------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Probe the backend(s): ``{node, verdict, latency_ms, detail, instance, pid}``."""
        table = self.routing
        if not table.targets:
            return {"node": self.name, "verdict": "unhealthy", "latency_ms": None, "detail": "no backend configured",
                    "instance": self.instance, "pid": os.getpid()}
        timeout = self.config.health_timeout_ms / 1000
        probes = []
        for t in table.targets:
            if t.mock:
                probes.append(_mock_probe())
            elif self.config.mode in HTTP_MODES:
                probes.append(probe_http(t.host, t.port, self.config.health_path, timeout,
                                         soap=self.config.mode == "soap"))
            elif self.config.mode == "grpc":
                probes.append(probe_grpc(t.host, t.port, timeout))
            else:
                probes.append(probe_tcp(t.host, t.port, timeout))
        results = await asyncio.gather(*probes)
        ok = sum(r.ok for r in results)
        verdict = "healthy" if ok == len(results) else ("degraded" if ok else "unhealthy")
        detail = "; ".join(f"{t.name}: {r.detail}" for t, r in zip(table.targets, results, strict=True))
        return {"node": self.name, "verdict": verdict, "latency_ms": max(r.latency_ms for r in results),
                "detail": detail, "instance": self.instance, "pid": os.getpid()}

    def status(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "listening": self.server is not None and self.server.is_serving(),
            "mode": self.config.mode,
            "role": self.config.role,
            "backend": self.backend_json(),
            "running": self.server is not None and not self.closing,
            "routing_strategy": self.routing.strategy,
            "routing_locked": self.routing.locked,
            "port": self.port,
            "management_port": self.management_port,
            "tls": self.tls is not None,
            "management_tls": self.management_tls is not None,
            "in_flight": self.in_flight(),
            "taint": {"enabled": self.taint is not None, "canaries": len(self.taint.kinds) if self.taint else 0,
                      "generation": self.taint.generation if self.taint else None},
            "instance": self.instance,
            "pid": os.getpid(),
        }

    def breaker_states(self) -> dict[str, str]:
        return {name: b.state.value for name, b in self.breakers.items()}


async def _mock_probe() -> Any:
    from .health import ProbeResult

    return ProbeResult(True, 0.0, "served by the adapter's mock")


def _bind_reason(exc: OSError) -> str:
    """Why a bind failed, in words: "address already in use", "permission denied", ..."""
    if isinstance(exc, socket.gaierror) or exc.errno is None or exc.errno < 0:
        reason = exc.strerror or str(exc)
    else:
        reason = os.strerror(exc.errno)
    return reason[:1].lower() + reason[1:]


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"-"


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def _json_str(value: str) -> str:
    import json

    return json.dumps(value)
