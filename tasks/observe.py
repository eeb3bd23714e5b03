"""Observing a running circuit: what serves each node and what its adapter says of its health, and the
custodian's probes. Plain functions, no Prefect: `baton status` imports this and must stay fast."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from baton.control import ControlClient, ControlError
from baton.state import StateStore

__all__ = ["STOPPED", "observe_nodes", "probe_services", "incarnation_of", "service_answers", "routes_of",
           "recorded_routes", "drift", "routing_drift"]

HTTP_MODES = ("http", "soap")  # modes whose services answer HTTP

STOPPED = {"state": "stopped", "health": "unknown", "detail": "", "service": None, "drift": None}
MOCK = "its mock"


def routes_of(backend: Any) -> set[str]:
    """Where an adapter's reported backend (``GET /status``) sends traffic: ``host:port`` of each target, or
    :data:`MOCK`."""
    backend = backend or {}
    targets = backend["targets"] if "targets" in backend else [backend] if backend else []
    return {MOCK if t.get("mock") or "port" not in t else f"{t.get('host')}:{t['port']}" for t in targets} or {MOCK}


def _address(slot: Any) -> str:
    return MOCK if slot.is_mock else f"{slot.host}:{slot.port}"


def recorded_routes(node_state: Any) -> set[str]:
    """Where state says the node's adapter sends traffic: its recorded split (A/B, canary, header), else its
    service (a single-target table recorded by a lock names what served then, not necessarily now)."""
    routing = node_state.routing or {}
    if routing.get("targets") and routing.get("strategy", "single") != "single":
        return routes_of({"targets": routing["targets"]})
    return {_address(node_state.service)}


def _weights(targets: Any) -> dict[str, int]:
    return {f"{t.get('host')}:{t['port']}": int(t.get("weight", 0)) for t in targets or () if "port" in t}


def _split(weights: dict[str, int]) -> str:
    return " / ".join(f"{address} {weight}%" for address, weight in sorted(weights.items()))


def drift(node_state: Any, pending: Any, backend: Any) -> str | None:
    """Why the adapter's routing differs from what Baton recorded, or None. Routes to a version Baton knows
    (one a command is starting or retiring, an A/B or canary target, the warm one) are a command in progress,
    not a change made outside Baton. The weights of a recorded split must match too (a canary in flight
    moves its own weights: those are not compared)."""
    live, recorded = routes_of(backend), recorded_routes(node_state)
    if live == recorded:
        routing = node_state.routing or {}
        canary = node_state.canary is not None and node_state.canary.in_flight
        if canary or routing.get("strategy", "single") not in ("weighted", "canary"):
            return None
        want, have = _weights(routing.get("targets")), _weights((backend or {}).get("targets"))
        if not want or not have or want == have:
            return None
        return f"changed outside Baton: adapter splits {_split(have)}, state says {_split(want)}"
    known = recorded | {_address(s) for s in [*node_state.targets.values(), *pending]
                        + ([node_state.warm] if node_state.warm is not None else [])}
    if live <= known:
        return None
    return (f"changed outside Baton: adapter routes to {', '.join(sorted(live))}, state says "
            f"{', '.join(sorted(recorded))}")


async def routing_drift(state_dir: Path, config: Any, state: Any, alive_hosts: set[str]) -> dict[str, str]:
    """Per node whose adapter host runs: how its live routing differs from the recorded one ("" when it
    does not, or when its adapter did not answer: that is health's business)."""

    async def look(name: str, node_state: Any) -> tuple[str, str]:
        try:
            client = ControlClient.for_node(config, name, timeout_s=2.0, connect_attempts=1, state_dir=state_dir)
            status = await client.status()
        except ControlError:
            return name, ""
        return name, drift(node_state, state.pending, status.get("backend")) or ""

    names = {n.name for n in config.nodes}
    looks = [look(name, n) for name, n in state.adapters.items() if name in names and n.host_id in alive_hosts]
    return dict(await asyncio.gather(*looks))


async def observe_nodes(state_dir: Path, config: Any, state: Any = None) -> dict[str, dict[str, Any]]:
    """Per node: state (mock/live/stopped), health verdict and why; empty when the circuit is down. ``state``:
    the circuit state when the caller has read it already."""
    from providers import get_provider

    state = state or StateStore(state_dir).load()
    if not state.running:
        return {}
    provider = get_provider(state.provider)
    alive_hosts = {h.host_id for h in state.hosts.values() if provider.host_alive(h)}

    async def probe(node: Any) -> dict[str, Any]:
        node_state = state.adapters.get(node.name)
        info: dict[str, Any] = {**STOPPED, "provider": state.provider}
        if node_state is None or node_state.host_id not in alive_hosts:
            info["detail"] = "adapter not running; run `baton up`"
            return info
        slot = node_state.service
        if slot.is_mock:
            info["state"] = "mock"
        else:
            info["state"] = "live"
            info["service"] = {"command": slot.command, "port": slot.probe_port or slot.port,
                               "alive": provider.service_alive(slot)}
        try:
            client = ControlClient.for_node(config, node.name, timeout_s=2.0, connect_attempts=1,
                                            state_dir=state_dir)
            health, status = await asyncio.gather(client.health(), client.status())
            info["health"] = health.get("verdict", "unknown")
            info["detail"] = health.get("detail") or ""
            info["drift"] = drift(node_state, state.pending, status.get("backend"))
        except ControlError as exc:
            info["health"] = "unreachable"
            info["detail"] = exc.message
        if info["service"] and not info["service"]["alive"]:
            info["health"] = "unhealthy"
            info["detail"] = "the slotted service exited; `baton slot` it again or `baton logs`"
        return info

    results = await asyncio.gather(*(probe(n) for n in config.nodes))
    return {n.name: info for n, info in zip(config.nodes, results, strict=True)}


async def service_answers(host: str, port: int, path: str, mode: str) -> bool:
    """The service answers in its node's mode: it accepts a connection; HTTP and SOAP services also answer a GET
    with any status; gRPC services also answer ``grpc.health.v1`` Check with SERVING (or have no health
    service, ``UNIMPLEMENTED``). Other modes (tcp, protobuf, plugins) are judged by the connection."""
    import aiohttp

    if mode == "grpc":  # its own connection: a connect first would only be made twice
        from baton_adapter.grpc_health import probe_grpc

        return (await probe_grpc(host, port, 2.0)).ok
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    if mode not in HTTP_MODES:
        return True
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"http://{host}:{port}{path}") as resp:
                return resp.status > 0  # it answers HTTP: up (whether it answers well is for validation)
    except (aiohttp.ClientError, TimeoutError):
        return False


def incarnation_of(slot: Any) -> str:
    """Names one running instance of a service: its container, or its pid and start time."""
    if slot.container:
        return slot.container[:12]
    if slot.process is not None:
        return f"{slot.process.pid}.{slot.process.start_ticks}"
    return str(slot.port)


async def probe_services(state: Any, config: Any, provider: Any, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """One probe of every slotted service of a running circuit (the custodian's observation): it must be alive
    and answer on its port (any HTTP status for HTTP nodes; a connection otherwise) within ``timeout_s``. Mocks
    are not probed. The caller gives the state it read and the provider it keeps (a Docker client pings the
    engine when it is made: once, not every round)."""
    from baton.state import probe_address

    if not state.running:
        return []
    modes = {n.name: n.proxy_mode for n in config.nodes}

    async def probe(name: str, slot: Any) -> dict[str, Any]:
        result = {"node": name, "incarnation": incarnation_of(slot), "command": slot.command}
        if not await asyncio.to_thread(provider.service_alive, slot):
            return {**result, "ok": False, "exited": True, "detail": "the service exited"}
        host, port = probe_address(slot)
        try:
            answered = await asyncio.wait_for(service_answers(host, port, "/", modes.get(name, "http")),
                                              timeout_s)
        except TimeoutError:
            answered = False
        return {**result, "ok": answered, "detail": "" if answered else f"no answer on port {port} within "
                                                                          f"{timeout_s:g} s"}

    live = [(name, n.service) for name, n in state.adapters.items() if not n.service.is_mock and name in modes]
    return list(await asyncio.gather(*(probe(name, slot) for name, slot in live)))
