"""``baton status``: the circuit's topology (runtime state joins it once circuits run)."""

from __future__ import annotations

from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["status", "status_payload"]


def _runtime(project: Any, config: Any) -> dict[str, dict[str, Any]]:
    """Per node: what serves it and what its adapter says of its health (empty when the circuit is down)."""
    import asyncio

    from baton.state import StateStore

    state = StateStore(project.state_dir).load()
    if not state.running:
        return {}
    from baton.control import ControlClient, ControlError
    from providers import get_provider

    provider = get_provider(state.provider)
    alive_hosts = {h.host_id for h in state.hosts.values() if provider.host_alive(h)}

    async def probe(node: Any) -> dict[str, Any]:
        node_state = state.adapters.get(node.name)
        info: dict[str, Any] = {"state": "stopped", "health": "unknown", "detail": "", "service": None}
        if node_state is None or node_state.host_id not in alive_hosts:
            info["detail"] = "adapter not running; run `baton up`"
            return info
        slot = node_state.service
        if slot.is_mock:
            info["state"] = "mock"
        else:
            info["state"] = "live"
            info["service"] = {"command": slot.command, "port": slot.port, "alive": provider.service_alive(slot)}
        try:
            health = await ControlClient.for_node(config, node.name, timeout_s=2.0, connect_attempts=1).health()
            info["health"] = health.get("verdict", "unknown")
            info["detail"] = health.get("detail") or ""
        except ControlError as exc:
            info["health"] = "unreachable"
            info["detail"] = exc.message
        if info["service"] and not info["service"]["alive"]:
            info["health"] = "unhealthy"
            info["detail"] = "the slotted service exited; `baton slot` it again or `baton logs`"
        return info

    async def probe_all() -> list[dict[str, Any]]:
        return await asyncio.gather(*(probe(n) for n in config.nodes))

    return {n.name: info for n, info in zip(config.nodes, asyncio.run(probe_all()), strict=True)}


def status_payload(project: Any) -> dict[str, Any]:
    from baton.circuit import CircuitGraph

    config = project.load()
    graph = CircuitGraph.from_config(config)
    runtime = _runtime(project, config)
    nodes = []
    for n in config.nodes:
        live = runtime.get(n.name, {"state": "stopped", "health": "unknown", "detail": "", "service": None})
        nodes.append({
            "name": n.name,
            "host": n.host,
            "port": n.port,
            "management_port": n.management_port,
            "proxy_mode": str(n.proxy_mode),
            "role": str(n.role),
            "contract": n.spec_path,
            "state": live["state"],
            "health": live["health"],
            "detail": live["detail"],
            "service": live["service"],
            "dependencies": list(graph.dependencies(n.name)),
            "dependents": list(graph.dependents(n.name)),
        })
    return {
        "name": config.name,
        "version": config.version,
        "path": str(project.root),
        "nodes": nodes,
        "edges": [{"source": e.source, "target": e.target, "label": e.label} for e in config.edges],
        "running": bool(runtime),
        "start_order": list(graph.topological_order()),
        "cycles": [list(c) for c in graph.cycles()],
    }


@click.command()
@json_option
@click.pass_obj
def status(obj: Any, as_json: bool) -> None:
    """Show the circuit: nodes, edges, start order."""
    payload = status_payload(obj.project())

    def human(c: Any) -> None:
        c.print(f"Circuit [bold]{payload['name']}[/] (baton.yaml v{payload['version']}) at {payload['path']}: "
                f"{len(payload['nodes'])} nodes, {len(payload['edges'])} edges")
        if payload["nodes"]:
            c.print(table("Nodes", ("name", "role", "mode", "port", "mgmt", "contract", "state", "health", "calls"), [
                (n["name"], n["role"], n["proxy_mode"], n["port"], n["management_port"], n["contract"] or "-",
                 n["state"] + (f" ({n['service']['command']} :{n['service']['port']})" if n["service"] else ""),
                 n["health"] + (f": {n['detail']}" if n["detail"] and n["health"] != "healthy" else ""),
                 ", ".join(n["dependencies"]) or "-") for n in payload["nodes"]
            ]))
        else:
            c.print("No nodes yet: baton node add <name> [--port N]")
        if payload["edges"]:
            c.print(table("Edges", ("source", "target", "label"),
                          [(e["source"], e["target"], e["label"] or "-") for e in payload["edges"]]))
            c.print("Start order: " + " -> ".join(payload["start_order"]))
        for cycle in payload["cycles"]:
            c.print(f"[yellow]Cycle:[/] {' -> '.join(cycle)} (these nodes start together)")

    emit(as_json, payload, human)
