"""Circuit-wide tasks: which nodes lack a running adapter, stopping every service, forgetting state."""

from __future__ import annotations

import asyncio
from typing import Any


from baton.state import CircuitState, ServiceSlot, now_iso
from tasks.context import open_circuit, step
from tasks.observe import STOPPED, observe_nodes
from tasks.reconcile import reconcile

__all__ = ["choose_provider", "registered_services", "circuit_nodes", "current_service", "extra_versions", "nodes_without_adapter", "stop_all_services", "forget_runtime", "observe_circuit"]


def circuit_nodes(root: str) -> list[str]:
    """Every node of baton.yaml, in start order (dependencies first)."""
    from baton.circuit import CircuitGraph

    return list(CircuitGraph.from_config(open_circuit(root).config).topological_order())


@step("find-nodes-without-adapter")
async def nodes_without_adapter(root: str) -> list[str]:
    """Nodes whose adapter host is not running (never started, or died); dead hosts are forgotten."""
    circuit = open_circuit(root)
    state = circuit.state()
    provider = circuit.provider(state)
    served: set[str] = set()
    for host_id, host in list(state.hosts.items()):
        if provider.host_alive(host):
            served |= set(host.nodes)
        else:
            del state.hosts[host_id]
    circuit.store.save(state)
    return [n for n in circuit_nodes(root) if n not in served]


def _slots(state: CircuitState) -> list[tuple[str, str, ServiceSlot]]:
    found = []
    for name, node in state.adapters.items():
        if not node.service.is_mock:
            found.append((name, "", node.service))
        for target, slot in node.targets.items():
            found.append((name, target, slot))
        if node.warm is not None:
            found.append((name, "warm", node.warm))
    return found


@step("stop-all-services")
async def stop_all_services(root: str) -> list[str]:
    """Stop every slotted service and extra version, and whatever a command cut short left running; their nodes
    fall back to mocks."""
    return await asyncio.to_thread(_stop_all_services, root)


def _stop_all_services(root: str) -> list[str]:
    circuit = open_circuit(root)
    reconciled = reconcile(root)  # first what a command cut short left running without state naming it
    stopped = [f"leftover:{s.get('node') or s.get('port')}" for s in reconciled["stopped"]]
    state = circuit.state()
    provider = circuit.provider(state)
    for name, target, slot in _slots(state):
        provider.stop_service(slot)
        stopped.append(f"{name}:{target}" if target else name)
    for slot in state.pending:  # being retired by a flow that was cut short before stopping it
        provider.stop_service(slot)
        stopped.append(f"pending:{slot.port}")
    state.pending = []
    for node in state.adapters.values():
        node.service = ServiceSlot()
        node.targets = {}
        node.routing = None
        node.warm, node.warm_until = None, 0.0
        if node.canary is not None and node.canary.in_flight:
            node.canary = node.canary.model_copy(update={"concluded": True, "phase": "Failed"})
        node.updated_at = now_iso()
    state.live_nodes = []
    circuit.store.save(state)
    return stopped


@step("forget-runtime")
async def forget_runtime(root: str) -> None:
    """Clear runtime state once everything is stopped (history stays in Prefect)."""
    from baton.custodian.store import CustodyStore

    circuit = open_circuit(root)
    circuit.store.save(CircuitState(circuit_name=circuit.config.name))
    CustodyStore(circuit.state_dir).path.unlink(missing_ok=True)  # nothing is under custody any more


def current_service(root: str, node: str) -> dict | None:
    """The live service slotted into ``node`` (as a dict), or None when it is mocked."""
    state = open_circuit(root).state()
    node_state = state.adapters.get(node)
    if node_state is None or node_state.service.is_mock:
        return None
    return node_state.service.model_dump()


def extra_versions(root: str, node: str) -> dict[str, dict]:
    """The extra versions (ab ``b``, canary ``canary``) running for ``node``, by target name."""
    node_state = open_circuit(root).state().adapters.get(node)
    return {name: slot.model_dump() for name, slot in (node_state.targets if node_state else {}).items()}


@step("choose-provider")
async def choose_provider(root: str, provider: str) -> str:
    """Record where the circuit runs; refuses to switch providers under a running circuit."""
    from baton.errors import UsageError
    from providers import get_provider

    get_provider(provider)  # unknown names fail here, with the list of known ones
    circuit = open_circuit(root)
    state = circuit.state()
    current: Any = get_provider(state.provider) if state.provider != provider else None
    deployed = current is not None and getattr(current, "deployed", lambda _: False)(circuit.state_dir)
    if (state.running or deployed) and state.provider != provider:
        raise UsageError(f"the circuit runs on the {state.provider} provider; `baton teardown` it before deploying "
                         f"to {provider}.")
    state.provider = provider
    circuit.store.save(state)
    return provider


def registered_services(root: str) -> list[tuple[str, str]]:
    """(node, directory) of every registered service manifest."""
    from baton.services import load_service

    circuit = open_circuit(root)
    services = [load_service(circuit.project.resolve(d), label=d) for d in circuit.config.services]
    return [(s.manifest.name, str(s.directory)) for s in services]


@step("observe-circuit")
async def observe_circuit(root: str) -> dict[str, Any]:
    """Snapshot of every node's state and health (for deploy-status runs)."""
    circuit = open_circuit(root)
    nodes = await observe_nodes(circuit.state_dir, circuit.config)
    state = circuit.state()
    return {"provider": state.provider, "running": state.running,
            "containers": sorted(c for h in state.hosts.values() for c in h.containers),
            "nodes": {name: nodes.get(name, STOPPED) for name in (n.name for n in circuit.config.nodes)}}
