"""The node's management API (JSON over HTTP on the management port), with fail-closed token auth.

Routes (same names and shapes as the original Baton where it had them)::

    GET  /health                 {node, verdict, latency_ms, detail, instance, pid}   (probes the backend)
    GET  /status                 {node, listening, mode, backend, running, routing_strategy, routing_locked, ...,
                                  instance, pid}
    GET  /routing                the routing config plus per-target metrics and breaker states
    POST /routing                a routing config (400 invalid, 423 locked); {"locked": bool} alone (un)locks
    POST /backend                {host, port} or {mock: true}: atomic switch to a single backend (423 locked)
    POST /drain                  {timeout_s?, host?, port?}: wait until old backends are idle
    GET  /metrics                JSON counters and latency percentiles
    GET  /metrics/prometheus     Prometheus text exposition 0.0.4 (``text/plain; version=0.0.4``; promtool-clean)
    GET  /signals?last_n=N       recent requests (bounded ring), a list, oldest first
    GET  /signals?since=SEQ      {node, instance, signals, next, dropped}: signals numbered above SEQ, oldest first,
                                 each with its seq, at most 1,000; dropped: those above SEQ the ring no longer holds
    POST /events                 {type, message, severity, data} -> 201 (also with the events-only token)
    GET  /events?last_n=N        recent service events
    GET    /tls                  {node, listener, enabled, min_version, client_auth, alpn, current, staged, commits}
    PUT    /tls/staged           {cert_pem, key_pem, ca_pem?}: check and stage (400 unusable, one sentence)
    POST   /tls/commit           {fingerprint_sha256?}: serve the staged certificate to new handshakes (409 none)
    DELETE /tls/staged           drop the staged certificate (idempotent)
    PUT    /taint                {enabled, generation, canaries: [{fingerprint, kind}], seed: [...]}: scan for the
                                 canaries, mock responses carry the seeded ones (400 on bad input, one sentence)
    GET    /taint?since=SEQ      {node, instance, enabled, generation, canaries, seeded, sightings, next, dropped,
                                  scanned}: sightings numbered above SEQ, oldest first, at most 1,000
    DELETE /taint                stop scanning; forget the canaries and sightings

The ``/tls`` routes act on the data port's listener, or on the management port's with ``?listener=management``;
409 when that listener serves plain TCP (TLS is switched on by the config at start, not by the API).

Auth: when the node has ``token_env``, every route needs ``Authorization: Bearer <token>`` (401 otherwise,
compared in constant time); when that variable is empty or missing every route answers 503. ``POST /events``
also takes the events-only token derived from it (:mod:`.event_token`), the one slotted services are given.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from .config import Backend
from .errors import ConfigError, RoutingLocked, TlsError, TlsStateError
from .event_token import events_token
from .events import EventError
from .exposition import CONTENT_TYPE
from .listener import serve_tls
from .routing import RoutingTable
from .taint.spec import TaintSpecError, parse_spec

if TYPE_CHECKING:
    from .interfaces import ManagedNode
    from .tls import CertificateStore

__all__ = ["build_app", "start_management"]

log = logging.getLogger(__name__)
NODE_KEY: web.AppKey[ManagedNode] = web.AppKey("node")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message, "status": status}, status)


def auth_middleware(node: ManagedNode) -> Any:
    """Bearer-token check that fails closed (503 when the token source is configured but empty)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            token = node.config.token()
        except LookupError as exc:
            return _error(503, f"management API unavailable: {exc}; the adapter refuses every request until it is set.")
        if token is None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        bearer = scheme.lower() == "bearer"
        if not bearer or not hmac.compare_digest(given.strip().encode(), token.encode()):
            if bearer and request.method == "POST" and request.path == "/events" and hmac.compare_digest(
                    given.strip().encode(), events_token(token).encode()):
                return await handler(request)  # the events-only token opens this route and no other
            resp = _error(401, "expected `Authorization: Bearer <token>` with the node's token.")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="baton-adapter"'
            return resp
        return await handler(request)

    return middleware


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        message = f"expected a JSON body, got one that does not parse ({exc}); send valid JSON."
        raise web.HTTPBadRequest(text=json.dumps({"error": message, "status": 400}),
                                 content_type="application/json") from exc


def _last_n(request: web.Request) -> int | None:
    raw = request.query.get("last_n")
    if raw is None:
        return None
    if not raw.isdigit():
        raise web.HTTPBadRequest(text=json.dumps({"error": f"last_n must be a non-negative integer, got {raw!r}."}),
                                 content_type="application/json")
    return int(raw)


async def get_health(request: web.Request) -> web.Response:
    return _json(await request.app[NODE_KEY].health())


async def get_status(request: web.Request) -> web.Response:
    return _json(request.app[NODE_KEY].status())


async def get_routing(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    data = node.routing.to_json()
    data["node"] = node.name
    data["target_metrics"] = node.telemetry.targets_json()
    data["breakers"] = node.breaker_states()
    return _json(data)


async def post_routing(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    data = await _body(request)
    if isinstance(data, dict) and set(data) == {"locked"} and isinstance(data["locked"], bool):
        node.set_locked(data["locked"])
        return _json(node.routing.to_json())
    if node.routing.locked:
        return _error(423, f"node {node.name}: routing is locked; POST {{\"locked\": false}} to unlock first.")
    try:
        node.set_routing(RoutingTable.from_mapping(data))
    except RoutingLocked as exc:
        return _error(423, str(exc))
    except ConfigError as exc:
        return _error(400, str(exc))
    return _json(node.routing.to_json())


async def post_backend(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    data = await _body(request)
    if node.routing.locked:
        return _error(423, f"node {node.name}: routing is locked; POST /routing {{\"locked\": false}} first.")
    try:
        backend = Backend.from_mapping(data)
    except ConfigError as exc:
        return _error(400, str(exc))
    previous = node.backend_json()
    try:
        node.set_backend(backend)
    except RoutingLocked as exc:
        return _error(423, str(exc))
    except ConfigError as exc:
        return _error(400, str(exc))
    return _json({"node": node.name, "backend": node.backend_json(), "previous": previous})


async def post_drain(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    data = await _body(request) if request.can_read_body else {}
    if not isinstance(data, dict):
        return _error(400, "expected a JSON object {timeout_s?, host?, port?}.")
    timeout = data.get("timeout_s", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 3600:
        return _error(400, f"timeout_s must be a number in 0..3600, got {timeout!r}.")
    addr = None
    if "host" in data or "port" in data:
        try:
            b = Backend.from_mapping({"host": data.get("host", "127.0.0.1"), "port": data.get("port")})
        except ConfigError as exc:
            return _error(400, str(exc))
        addr = (b.host, b.port)
    return _json(await node.drain(float(timeout), addr))


async def get_metrics(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    data = node.telemetry.snapshot()
    data["breakers"] = node.breaker_states()
    data["upstream"] = {"idle": node.pool.idle_count(), "connects": node.pool.connects, "in_flight": node.in_flight()}
    return _json(data)


async def get_prometheus(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    tracer = node.tracer
    text = node.telemetry.prometheus(node.breaker_states(), None if tracer is None else tracer.families())
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def get_signals(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    raw = request.query.get("since")
    if raw is None:
        return _json(node.telemetry.signals_json(_last_n(request)))
    if not (raw.isascii() and raw.isdigit()):
        return _error(400, f"since must be a non-negative integer (the next of the previous answer), got {raw!r}.")
    signals, after, dropped = node.telemetry.signals_since(int(raw))
    return _json({"node": node.name, "instance": node.instance, "signals": signals, "next": after,
                  "dropped": dropped})


async def post_events(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    data = await _body(request)
    try:
        record = node.events.append(node.name, data)
    except EventError as exc:
        return _error(400, str(exc))
    return _json(record, 201)


async def get_events(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return _json(node.events.recent(node.name, _last_n(request)))


LISTENERS = ("data", "management")


def _listener(request: web.Request) -> tuple[str, CertificateStore | None]:
    listener = request.query.get("listener", "data")
    if listener not in LISTENERS:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"listener must be one of {list(LISTENERS)}, got "
                                                           f"{listener!r}.", "status": 400}),
                                 content_type="application/json")
    node = request.app[NODE_KEY]
    return listener, node.tls if listener == "data" else node.management_tls


def _tls_report(node: ManagedNode, listener: str, store: CertificateStore | None, **extra: Any) -> web.Response:
    body = {"node": node.name, "listener": listener}
    body |= {"enabled": False, "current": None, "staged": None} if store is None else store.to_json()
    return _json(body | extra)


def _no_tls(node: ManagedNode, listener: str) -> web.Response:
    section = "tls" if listener == "data" else "management_tls"
    return _error(409, f"node {node.name} serves its {listener} port without TLS; TLS is switched on at start by "
                       f"the node's `{section}` config section, not through the API.")


async def get_tls(request: web.Request) -> web.Response:
    listener, store = _listener(request)
    return _tls_report(request.app[NODE_KEY], listener, store)


async def put_tls_staged(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    listener, store = _listener(request)
    if store is None:
        return _no_tls(node, listener)
    data = await _body(request)
    fields = {"cert_pem", "key_pem", "ca_pem"}
    if not isinstance(data, dict) or not {"cert_pem", "key_pem"} <= set(data) or set(data) - fields:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        return _error(400, f"expected a JSON object {{cert_pem, key_pem, ca_pem?}}, got {got}.")
    for key in fields & set(data):
        if not isinstance(data[key], str) and not (key == "ca_pem" and data[key] is None):
            return _error(400, f"{key} must be PEM text (a JSON string), got {type(data[key]).__name__}.")
    ca = data.get("ca_pem")
    try:
        staged = store.stage(data["cert_pem"].encode(), data["key_pem"].encode(), None if ca is None else ca.encode())
    except TlsError as exc:
        return _error(400, str(exc))
    log.info("node %s: staged certificate %s for its %s port", node.name, staged.info.fingerprint_sha256, listener)
    return _tls_report(node, listener, store)


async def post_tls_commit(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    listener, store = _listener(request)
    if store is None:
        return _no_tls(node, listener)
    data = await _body(request) if request.can_read_body else {}
    if not isinstance(data, dict) or set(data) - {"fingerprint_sha256"}:
        return _error(400, "expected no body or a JSON object {fingerprint_sha256?}.")
    fingerprint = data.get("fingerprint_sha256")
    if fingerprint is not None and not isinstance(fingerprint, str):
        return _error(400, f"fingerprint_sha256 must be a hex string, got {fingerprint!r}.")
    previous = store.current.info.fingerprint_sha256
    try:
        changed = store.commit(None if fingerprint is None else fingerprint.lower().replace(":", ""))
    except TlsStateError as exc:
        return _error(409, str(exc))
    if changed:
        log.info("node %s: %s port now serves certificate %s (was %s)", node.name, listener,
                 store.current.info.fingerprint_sha256, previous)
    return _tls_report(node, listener, store, changed=changed, previous_fingerprint_sha256=previous)


async def delete_tls_staged(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    listener, store = _listener(request)
    if store is None:
        return _no_tls(node, listener)
    return _tls_report(node, listener, store, aborted=store.abort())


async def put_taint(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        spec = parse_spec(await _body(request))
    except TaintSpecError as exc:
        return _error(400, str(exc))
    return _json(node.set_taint(spec))


async def get_taint(request: web.Request) -> web.Response:
    raw = request.query.get("since", "0")
    if not (raw.isascii() and raw.isdigit()):
        return _error(400, f"since must be a non-negative integer (the next of the previous answer), got {raw!r}.")
    return _json(request.app[NODE_KEY].taint_report(int(raw)))


async def delete_taint(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    node.clear_taint()
    return _json({"node": node.name, "enabled": False})


def build_app(node: ManagedNode) -> web.Application:
    app = web.Application(middlewares=[auth_middleware(node)], client_max_size=1024 * 1024)
    app[NODE_KEY] = node
    app.router.add_get("/health", get_health)
    app.router.add_get("/status", get_status)
    app.router.add_get("/routing", get_routing)
    app.router.add_post("/routing", post_routing)
    app.router.add_post("/backend", post_backend)
    app.router.add_post("/drain", post_drain)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/metrics/prometheus", get_prometheus)
    app.router.add_get("/signals", get_signals)
    app.router.add_post("/events", post_events)
    app.router.add_get("/events", get_events)
    app.router.add_get("/tls", get_tls)
    app.router.add_put("/tls/staged", put_tls_staged)
    app.router.add_delete("/tls/staged", delete_tls_staged)
    app.router.add_post("/tls/commit", post_tls_commit)
    app.router.add_put("/taint", put_taint)
    app.router.add_get("/taint", get_taint)
    app.router.add_delete("/taint", delete_taint)
    return app


HANDSHAKE_TIMEOUT_S = 10.0


class TlsSite(web.BaseSite):
    """The management port over TLS through ``serve_tls``, so its certificate rotates like a data port's."""

    __slots__ = ("_host", "_port", "_store")

    def __init__(self, runner: web.AppRunner, host: str, port: int, store: CertificateStore) -> None:
        super().__init__(runner)
        self._host, self._port, self._store = host, port, store

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await serve_tls(server, self._host, self._port, self._store, HANDSHAKE_TIMEOUT_S)


async def start_management(node: ManagedNode) -> tuple[web.AppRunner, int]:
    """Serve ``node``'s management API (over TLS with ``management_tls``); return the runner and the bound port
    (``OSError`` when it cannot bind)."""
    runner = web.AppRunner(build_app(node), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    tls = node.management_tls
    host, port = node.config.management_host, node.config.management_port
    site: web.BaseSite = (web.TCPSite(runner, host, port, reuse_address=True) if tls is None
                          else TlsSite(runner, host, port, tls))
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[-1][1]
