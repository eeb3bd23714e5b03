"""Tasks that start, check and stop slotted services."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import aiohttp

from baton.commands import parse_command
from baton.errors import BatonError, UsageError
from baton.state import ServiceSlot, now_iso, probe_address
from baton.wiring import service_env
from tasks.context import open_circuit, step

__all__ = ["ServiceNotReady", "needs_validation", "plan_service", "start_service", "wait_service_ready", "validate_service_contract",
           "stop_service", "record_service", "record_routing", "service_answers"]


class ServiceNotReady(BatonError):
    """The service exited or never answered on its port."""


def reap_orphans(circuit: Any) -> list[int]:
    """Stop services an earlier, crashed flow started but never recorded (the repair after a crash)."""
    state = circuit.state()
    if not state.pending:
        return []
    provider = circuit.provider(state)
    reaped = []
    for slot in list(state.pending):
        provider.stop_service(slot)
        state.settle(slot)
        reaped.append(slot.port)
    circuit.store.save(state)
    return reaped


@step("plan-service")
async def plan_service(root: str, node: str, command: str) -> dict[str, Any]:
    """Choose the service's port and argv; a literal of the node's public port becomes the service port."""
    circuit = open_circuit(root)
    await asyncio.to_thread(reap_orphans, circuit)
    spec = circuit.node(node)
    if spec.role.value == "egress":
        raise UsageError(f"node {node!r} is egress: it is always served from its contract and cannot be slotted.")
    provider = circuit.provider()
    port = provider.free_port()
    host_of = {n.name: provider.dependency_host(n) for n in circuit.config.nodes}
    env = service_env(circuit.config, spec, service_port=port, host_of=host_of)
    argv = parse_command(command, {**os.environ, **env})
    notes = []
    rewritten = []
    for word in argv:
        if word == str(spec.port) or word == str(spec.management_port):
            rewritten.append(str(port))
            notes.append(f"{word} is the adapter's own port of {node}; the service listens on {port} "
                         f"behind it (use $BATON_SERVICE_PORT in commands)")
        else:
            rewritten.append(word)
    return {"node": node, "command": command, "argv": rewritten, "env": env, "port": port, "notes": notes}


@step("start-service")
async def start_service(root: str, plan: dict[str, Any]) -> dict[str, Any]:
    """Start the service process (not yet receiving traffic)."""
    circuit = open_circuit(root)
    slot = circuit.provider().start_service(
        circuit.root, circuit.state_dir, circuit.node(plan["node"]), plan["argv"], plan["env"], plan["port"]
    )
    slot.command = plan["command"]
    state = circuit.state()
    state.pending.append(slot)  # until recorded or stopped: a crash here leaves nothing unaccounted for
    circuit.store.save(state)
    from prefect.transactions import get_transaction

    transaction = get_transaction()
    if transaction is not None:  # so a failure later in the transaction stops this process
        transaction.set("started", {"root": root, "slot": slot.model_dump()})
    return slot.model_dump()


@start_service.on_rollback
def _stop_started(transaction: Any) -> None:
    saved = transaction.get("started")
    circuit = open_circuit(saved["root"])
    slot = ServiceSlot.model_validate(saved["slot"])
    circuit.provider().stop_service(slot)
    state = circuit.state()
    state.settle(slot)
    circuit.store.save(state)


def _log_tail(state_dir, node: str, lines: int = 3) -> str:
    path = state_dir / "service_logs.jsonl"
    try:
        records = [json.loads(l) for l in path.read_text(errors="replace").splitlines()[-200:] if l.strip()]
    except (OSError, ValueError):
        return ""
    mine = [r.get("message", "") for r in records if r.get("node_name") == node][-lines:]
    return " | ".join(mine)


async def service_answers(host: str, port: int, path: str, http: bool) -> bool:
    """The service accepts a connection and, for HTTP nodes, answers a GET with any status."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    if not http:
        return True
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"http://{host}:{port}{path}") as resp:
                return resp.status > 0  # it answers HTTP: up (whether it answers well is for validation)
    except (aiohttp.ClientError, TimeoutError):
        return False


@step("wait-service-ready")
async def wait_service_ready(root: str, node: str, slot: dict[str, Any], timeout_s: float = 30.0,
                             health_path: str = "/") -> dict[str, Any]:
    """Wait until the service accepts connections and answers HTTP (any status); fail fast if it exits."""
    circuit = open_circuit(root)
    service = ServiceSlot.model_validate(slot)
    provider = circuit.provider()
    http = circuit.node(node).proxy_mode.value in ("http", "soap")
    host, port = probe_address(service)
    started = time.monotonic()
    delay = 0.02
    while not await service_answers(host, port, health_path, http):
        if not provider.service_alive(service):
            tail = _log_tail(circuit.state_dir, node)
            raise ServiceNotReady(
                f"the service for {node} exited before it was ready ({tail or 'no output'}); "
                f"see `baton logs --node {node}`."
            )
        if time.monotonic() - started > timeout_s:
            raise ServiceNotReady(
                f"the service for {node} did not answer on port {service.port} within {timeout_s:.0f} s; "
                "make it listen on $BATON_SERVICE_PORT."
            )
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    return {"node": node, "port": service.port, "ready_after_s": round(time.monotonic() - started, 3)}


def needs_validation(root: str, node: str) -> bool:
    """Whether a service for ``node`` is checked against a contract (HTTP nodes that have one)."""
    spec = open_circuit(root).node(node)
    return bool(spec.spec_path) and spec.proxy_mode.value == "http"


@step("validate-service-contract")
async def validate_service_contract(root: str, node: str, slot: dict[str, Any], force: bool = False) -> dict[str, Any]:
    """Probe the service with safe requests and check its answers against the node's contract."""
    circuit = open_circuit(root)
    spec = circuit.node(node)
    if not spec.spec_path or spec.proxy_mode.value != "http":
        return {"ok": True, "skipped": "no contract"}
    from baton_adapter.mock import validate_service

    service = ServiceSlot.model_validate(slot)
    host, port = probe_address(service)
    report = await validate_service(f"http://{host}:{port}", str(circuit.project.resolve(spec.spec_path)))
    result = report.to_json()
    if not report.ok and not force:
        first = next((r for r in report.rows() if "mismatch" in " ".join(map(str, r))), None)
        detail = f" first: {' '.join(map(str, first))}" if first else ""
        raise BatonError(
            f"the service for {node} does not honour its contract ({len(report.mismatches)} mismatches;{detail}); "
            "fix the service or pass --force to slot it anyway."
        )
    return result


@step("stop-service")
async def stop_service(root: str, slot: dict[str, Any]) -> bool:
    """Stop a service process group (idempotent)."""
    circuit = open_circuit(root)
    service = ServiceSlot.model_validate(slot)
    stopped = await asyncio.to_thread(circuit.provider().stop_service, service)
    state = circuit.state()
    state.settle(service)
    circuit.store.save(state)
    return stopped


@step("record-service")
async def record_service(root: str, node: str, slot: dict[str, Any] | None) -> None:
    """Persist what now serves ``node``: a service slot, or its mock when ``slot`` is None."""
    circuit = open_circuit(root)
    state = circuit.state()
    node_state = state.node(node)
    node_state.service = ServiceSlot.model_validate(slot) if slot else ServiceSlot()
    state.settle(node_state.service)
    node_state.updated_at = now_iso()
    live = {n for n, s in state.adapters.items() if not s.service.is_mock}
    state.live_nodes = sorted(live)
    from baton.state import CollapseLevel

    eligible = [n.name for n in circuit.config.nodes if n.role.value != "egress"]
    state.collapse_level = (CollapseLevel.FULL_MOCK if not live else
                            CollapseLevel.FULL_LIVE if set(eligible) <= live else CollapseLevel.PARTIAL)
    circuit.store.save(state)


@step("record-routing")
async def record_routing(root: str, node: str, routing: dict[str, Any] | None, extra: dict[str, dict[str, Any]]) -> None:
    """Persist a node's routing table and the extra versions (ab/canary targets) it uses."""
    circuit = open_circuit(root)
    state = circuit.state()
    node_state = state.node(node)
    node_state.routing = routing
    node_state.targets = {name: ServiceSlot.model_validate(slot) for name, slot in extra.items()}
    if node_state.canary is not None and node_state.canary.in_flight and "canary" not in node_state.targets:
        import time

        from baton.canary import aborted

        ended = aborted(node_state.canary, "Canary ended: another command replaced the routing", time.time())
        node_state.canary = ended.model_copy(update={"concluded": True})
    for target in node_state.targets.values():
        state.settle(target)
    node_state.updated_at = now_iso()
    circuit.store.save(state)
