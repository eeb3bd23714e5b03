"""Tasks that start, check and stop slotted services."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


from baton import leases
from baton.commands import parse_command
from baton.control import events_token
from baton.errors import BatonError, UsageError
from baton.state import ServiceSlot, now_iso, probe_address
from baton.waiting import wait_for_async
from baton.wiring import command_env, service_env, trust_env
from tasks.context import open_circuit, step
from tasks.observe import service_answers
from tasks.reconcile import note_live_nodes, reconcile, retire

__all__ = ["ServiceNotReady", "needs_validation", "plan_service", "start_service", "wait_service_ready", "validate_service_contract",
           "stop_service", "record_service", "record_routing", "service_answers"]


class ServiceNotReady(BatonError):
    """The service exited or never answered on its port."""


@step("plan-service")
async def plan_service(root: str, node: str, command: str) -> dict[str, Any]:
    """Reconcile what a command cut short left running, then choose the service's port and argv; a literal
    of the node's public port becomes the service port."""
    circuit = open_circuit(root)
    reconciled = await asyncio.to_thread(reconcile, root)  # what a command cut short left running
    if reconciled["adopted"] or reconciled["stopped"]:
        from prefect import get_run_logger

        get_run_logger().warning("a command cut short left processes behind: adopted %s, stopped %s",
                                 reconciled["adopted"], reconciled["stopped"])
    spec = circuit.node(node)
    if spec.role.value == "egress":
        raise UsageError(f"node {node!r} is egress: it is always served from its contract and cannot be slotted.")
    provider = circuit.provider()
    port = provider.free_port()
    host_of = {n.name: provider.dependency_host(n) for n in circuit.config.nodes}
    env = service_env(circuit.config, spec, service_port=port, host_of=host_of,
                      trust=trust_env(**provider.trust_files(circuit.state_dir)),
                      events_token=events_token(circuit.config, circuit.state_dir, create=True))
    argv = parse_command(command, command_env(circuit.config, os.environ, env))
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
    if slot.lease:  # what state will record, in case the recording is cut short and the process adopted
        await asyncio.to_thread(leases.describe, slot.lease, slot.model_dump())
    state = circuit.state()
    state.pending.append(slot)  # until recorded or stopped (the lease has recorded it since before the spawn)
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


@step("wait-service-ready")
async def wait_service_ready(root: str, node: str, slot: dict[str, Any], timeout_s: float = 30.0,
                             health_path: str = "/") -> dict[str, Any]:
    """Wait until the service answers in its node's mode (``service_answers``); fail fast if it exits."""
    circuit = open_circuit(root)
    service = ServiceSlot.model_validate(slot)
    provider = circuit.provider()
    mode = circuit.node(node).proxy_mode
    host, port = probe_address(service)
    started = time.monotonic()

    listen_problem = getattr(provider, "service_listen_problem", None)  # optional: providers with containers

    def exited() -> None:
        if not provider.service_alive(service):
            tail = provider.service_log_tail(circuit.state_dir, node, service)
            raise ServiceNotReady(f"the service for {node} exited before it was ready ({tail or 'no output'}); "
                                  f"see `baton logs --node {node}`.")
        problem = listen_problem(service) if listen_problem else None
        if problem:  # it will never answer from outside: say why now rather than at the deadline
            raise ServiceNotReady(f"the service for {node} cannot be reached: {problem}")

    await wait_for_async(lambda: service_answers(host, port, health_path, mode), timeout_s=timeout_s, abort=exited,
                         timeout_error=lambda: ServiceNotReady(
                             f"the service for {node} did not answer on port {service.port} within {timeout_s:.0f} s; "
                             "make it listen on $BATON_SERVICE_PORT."))
    return {"node": node, "port": service.port, "ready_after_s": round(time.monotonic() - started, 3)}


def needs_validation(root: str, node: str) -> bool:
    """Whether a service for ``node`` is checked against a contract (HTTP nodes that have one)."""
    spec = open_circuit(root).node(node)
    return bool(spec.spec_path) and spec.proxy_mode == "http"


@step("validate-service-contract")
async def validate_service_contract(root: str, node: str, slot: dict[str, Any], force: bool = False) -> dict[str, Any]:
    """Probe the service with safe requests and check its answers against the node's contract."""
    circuit = open_circuit(root)
    spec = circuit.node(node)
    if not spec.spec_path or spec.proxy_mode != "http":
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
    previous, node_state.service = node_state.service, ServiceSlot.model_validate(slot) if slot else ServiceSlot()
    state.settle(node_state.service)
    retire(state, previous)  # recorded as pending until the flow stops it
    node_state.updated_at = now_iso()
    note_live_nodes(state, circuit.config)
    circuit.store.save(state)


@step("record-routing")
async def record_routing(root: str, node: str, routing: dict[str, Any] | None, extra: dict[str, dict[str, Any]]) -> None:
    """Persist a node's routing table and the extra versions (ab/canary targets) it uses."""
    circuit = open_circuit(root)
    state = circuit.state()
    node_state = state.node(node)
    node_state.routing = routing
    replaced = list(node_state.targets.values())
    node_state.targets = {name: ServiceSlot.model_validate(slot) for name, slot in extra.items()}
    if node_state.canary is not None and node_state.canary.in_flight and "canary" not in node_state.targets:
        import time

        from baton.canary import aborted

        ended = aborted(node_state.canary, "Canary ended: another command replaced the routing", time.time())
        node_state.canary = ended.model_copy(update={"concluded": True})
    for target in node_state.targets.values():
        state.settle(target)
    for slot in replaced:
        retire(state, slot)  # recorded as pending until the flow stops it
    node_state.updated_at = now_iso()
    circuit.store.save(state)
