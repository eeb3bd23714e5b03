"""Tasks of ``baton apply``: read what runs, plan against baton.yaml, restart hosts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from baton.control import ControlError
from baton.plan import Plan, make_plan
from baton.wiring import adapter_node, dependency_env
from tasks.context import open_circuit, step

__all__ = ["compute_plan", "plan_circuit", "restart_adapter_host", "stop_adapter_host", "stop_node_services"]


async def compute_plan(root: str) -> Plan:
    """Compare baton.yaml with what runs (state, adapter configs, adapters' live routing)."""
    circuit = open_circuit(root)
    config = circuit.config
    state = circuit.state()
    provider = circuit.provider(state)
    hosts = {h.host_id: list(h.nodes) for h in state.hosts.values() if provider.host_alive(h)}
    running_entries: dict[str, dict[str, Any]] = {}
    for host in state.hosts.values():
        if host.host_id in hosts and host.config_file:
            try:
                for entry in json.loads(Path(host.config_file).read_text())["nodes"]:
                    running_entries[entry["name"]] = entry
            except (OSError, ValueError, KeyError):
                pass  # an unreadable config counts as changed: the host gets rebooted
    wanted_entries = {n.name: adapter_node(config, n, root=circuit.root, backend=None) for n in config.nodes}

    async def routing_of(name: str) -> dict[str, Any] | None:
        if config.node(name) is None:
            return None
        try:
            return await circuit.client(name, timeout_s=3).routing()
        except ControlError:
            return None

    hosted = [n for nodes in hosts.values() for n in nodes]
    routings = await asyncio.gather(*(routing_of(n) for n in hosted))
    live = {name: s.service.env for name, s in state.adapters.items() if not s.service.is_mock and s.host_id in hosts}
    return make_plan(
        declared_nodes=[n.name for n in config.nodes],
        wanted_entries=wanted_entries,
        running=bool(hosts),
        hosts=hosts,
        running_entries=running_entries,
        wanted_routing={name: r.model_dump() for name, r in config.routing.items()},
        running_routing=dict(zip(hosted, routings, strict=True)),
        live_services=live,
        wanted_env={n.name: dependency_env(config, n.name) for n in config.nodes},
    )


@step("plan-circuit")
async def plan_circuit(root: str) -> list[dict[str, Any]]:
    """The steps that converge the running circuit on baton.yaml."""
    return (await compute_plan(root)).to_json()


@step("restart-adapter-host", retries=1, retry_delay_seconds=1)
async def restart_adapter_host(root: str, host_id: str, nodes: list[str]) -> dict[str, Any]:
    """Stop an adapter host and start it again with the nodes' current settings (services keep running)."""
    from tasks.adapters import launch_host

    circuit = open_circuit(root)
    state = circuit.state()
    if host_id in state.hosts:
        await asyncio.to_thread(circuit.provider(state).stop_host, state.hosts[host_id])
    return await asyncio.to_thread(launch_host, root, host_id, nodes)


@step("stop-adapter-host")
async def stop_adapter_host(root: str, host_id: str) -> bool:
    circuit = open_circuit(root)
    state = circuit.state()
    host = state.hosts.pop(host_id, None)
    if host is None:
        return False
    await asyncio.to_thread(circuit.provider(state).stop_host, host)
    circuit.store.save(state)
    return True


@step("stop-node-services")
async def stop_node_services(root: str, node: str) -> list[int]:
    """Stop every version running for a node that leaves the circuit and forget the node."""
    circuit = open_circuit(root)
    state = circuit.state()
    provider = circuit.provider(state)
    node_state = state.adapters.pop(node, None)
    stopped = []
    if node_state is not None:
        slots = ([node_state.service] if not node_state.service.is_mock else []) + list(node_state.targets.values())
        for slot in slots:
            await asyncio.to_thread(provider.stop_service, slot)
            stopped.append(slot.port)
    state.live_nodes = [n for n in state.live_nodes if n != node]
    circuit.store.save(state)
    return stopped
