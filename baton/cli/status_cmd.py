"""``baton status``: the circuit's topology (runtime state joins it once circuits run)."""

from __future__ import annotations

from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["status", "status_payload"]


def _runtime(project: Any, config: Any, state: Any) -> dict[str, dict[str, Any]]:
    """Per node: what serves it and its health (see tasks.observe); empty when the circuit is down."""
    import asyncio

    from tasks.observe import observe_nodes

    return asyncio.run(observe_nodes(project.state_dir, config, state))


def _promotions(state: Any) -> dict[str, dict[str, Any]]:
    """Per node: its canary (in flight, or how the last one ended) and the version kept warm for a revert."""
    import time

    from baton.canary import next_due_at

    now, found = time.time(), {}
    for name, node in state.adapters.items():
        entry: dict[str, Any] = {}
        if node.canary is not None:
            record = node.canary
            entry["canary"] = {"phase": record.phase, "weight": record.weight, "in_flight": record.in_flight,
                               "command": record.command,
                               "reason": record.last_reason,
                               "next_evaluation_in_s": round(max(0.0, next_due_at(record) - now), 1)
                               if record.in_flight else None}
        if node.warm is not None and node.warm_until > now:
            entry["warm"] = {"port": node.warm.port, "command": node.warm.command,
                             "for_s": round(node.warm_until - now, 1)}
        if entry:
            found[name] = entry
    return found


def _custody(project: Any) -> dict[str, dict[str, Any]]:
    """Per node: the custodian's state and why (saved by the conductor; nothing when it never ran)."""
    from baton.custodian.store import CustodyStore

    return CustodyStore(project.state_dir).load().get("nodes") or {}


def status_payload(project: Any) -> dict[str, Any]:
    from baton.circuit import CircuitGraph

    config = project.load()
    graph = CircuitGraph.from_config(config)
    from baton.state import StateStore

    state = StateStore(project.state_dir).load()
    runtime = _runtime(project, config, state)
    promotions = _promotions(state) if runtime else {}
    custody = _custody(project) if runtime else {}
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
            "canary": promotions.get(n.name, {}).get("canary"),
            "warm": promotions.get(n.name, {}).get("warm"),
            "custodian": {k: custody[n.name][k] for k in ("status", "reason", "paused", "failures",
                                                          "failed_restarts", "restarts", "waiting_on")}
            if n.name in custody else None,
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


ESCALATED = ("mocked", "faulted")


@click.command()
@click.option("--check", is_flag=True, help="Exit 1 when the custodian has escalated a node (mocked or faulted).")
@json_option
@click.pass_obj
def status(obj: Any, check: bool, as_json: bool) -> None:
    """Show the circuit: nodes, edges, start order, and what the custodian says of each node."""
    payload = status_payload(obj.project())
    escalated = [n for n in payload["nodes"] if n["custodian"] and n["custodian"]["status"] in ESCALATED]

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
        for n in payload["nodes"]:
            canary = n["canary"]
            if canary and canary["in_flight"]:
                c.print(f"[bold]{n['name']}[/] canary {canary['phase']} at {canary['weight']}%: {canary['reason']} "
                        f"(next evaluation in {canary['next_evaluation_in_s']:g} s)")
            elif canary:
                c.print(f"{n['name']}: last canary {canary['phase'].lower()}: {canary['reason']}")
            keeper = n["custodian"]
            if keeper and keeper["status"] != "healthy":
                paused = " (healing paused)" if keeper["paused"] else ""
                c.print(f"[bold]{n['name']}[/] custodian: {keeper['status']}{paused}: {keeper['reason']}")
            if n["warm"]:
                c.print(f"{n['name']}: previous version warm on port {n['warm']['port']} for {n['warm']['for_s']:g} s "
                        f"(`baton route revert {n['name']}`)")
        if payload["edges"]:
            c.print(table("Edges", ("source", "target", "label"),
                          [(e["source"], e["target"], e["label"] or "-") for e in payload["edges"]]))
            c.print("Start order: " + " -> ".join(payload["start_order"]))
        for cycle in payload["cycles"]:
            c.print(f"[yellow]Cycle:[/] {' -> '.join(cycle)} (these nodes start together)")

    emit(as_json, payload, human)
    if check and escalated:
        names = ", ".join(f"{n['name']} ({n['custodian']['status']})" for n in escalated)
        click.echo(f"error: the custodian escalated {names}; see `baton watch` and `baton logs`, then "
                   "`baton heal resume <node>` or slot a fixed version.", err=True)
        raise click.exceptions.Exit(1)
