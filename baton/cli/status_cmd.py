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


def _runtime_parts(project: Any, running: bool) -> dict[str, Any]:
    """Baton's own parts: the conductor (started in the background when the circuit runs without one), its
    custodian, and the Prefect API. Plain HTTP, no Prefect import."""
    import os

    from baton.cli.conductor_launch import conductor_running, start_conductor_in_background
    from baton.conductor_client import ConductorClient
    from baton.prefect_server import healthy, server_status

    conductor: dict[str, Any] = {"running": False, "pid": None, "custodian": "not running"}
    client = ConductorClient.discover(project.state_dir)
    health = client.health() if client is not None else None
    if health is not None:
        conductor.update(running=True, pid=health.get("pid"), custodian=health.get("custodian", "not running"))
    elif os.environ.get("BATON_NO_CONDUCTOR"):
        conductor["note"] = "off (BATON_NO_CONDUCTOR=1)"
    elif running and (conductor_running(project.state_dir) or start_conductor_in_background(project)):
        conductor["note"] = "it had stopped; this command is starting it again"
    server = server_status()
    if server["api_url"] and not server["running"] and server["managed_by"] != "baton":
        server["running"] = healthy(server["api_url"])
    return {"conductor": conductor, "prefect": {k: server.get(k) for k in ("api_url", "ui_url", "running",
                                                                            "managed_by", "pid", "database")}}


def check_problems(payload: dict[str, Any]) -> list[str]:
    """What `status --check` fails on: anything of the circuit or of Baton itself that is not serving."""
    import os

    if not payload["running"]:
        return ["the circuit is not running (`baton up`)"]
    problems = []
    conductor = payload["conductor"]
    if not conductor["running"] and not os.environ.get("BATON_NO_CONDUCTOR"):
        problems.append("the conductor is not running" + (f" ({conductor['note']})" if conductor.get("note") else ""))
    elif conductor["running"] and conductor["custodian"] == "not running":
        problems.append("the custodian is not running (see .baton/conductor.log)")
    if not payload["prefect"]["running"]:
        problems.append(f"the Prefect API at {payload['prefect']['api_url']} does not answer")
    for n in payload["nodes"]:
        keeper = n["custodian"] or {}
        if n["state"] == "stopped":
            problems.append(f"{n['name']}: its adapter is not running")
        elif keeper.get("status") in ESCALATED:
            problems.append(f"{n['name']}: {keeper['status']} by the custodian ({keeper['reason']})")
        elif n["health"] in ("unhealthy", "unreachable"):
            problems.append(f"{n['name']}: not serving ({n['health']}: {n['detail']})")
        if n.get("drift"):
            problems.append(f"{n['name']}: {n['drift']}")
    return problems


def status_payload(project: Any) -> dict[str, Any]:
    from baton.circuit import CircuitGraph

    config = project.load()
    graph = CircuitGraph.from_config(config)
    from baton.state import StateStore

    # the custodian's verdicts first, then the state: a verdict (mocked, restarted...) is written after the repair
    # recorded its effect in state, so the state read next is never older than the verdict shown beside it
    verdicts = _custody(project)
    state = StateStore(project.state_dir).load()
    runtime = _runtime(project, config, state)
    promotions = _promotions(state) if runtime else {}
    custody = verdicts if runtime else {}
    nodes = []
    for n in config.nodes:
        live = runtime.get(n.name, {"state": "stopped", "health": "unknown", "detail": "", "service": None,
                                    "drift": None})
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
            "drift": live.get("drift"),
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
        "taint": _taint(project, config),
        **_runtime_parts(project, state.running),
    }


ESCALATED = ("mocked", "faulted")


def _taint(project: Any, config: Any) -> dict[str, Any]:
    """Taint analysis: on or off, active canaries, violations and the newest (see ``baton taint status``)."""
    from baton.cli.taint_cmd import taint_summary

    return taint_summary(project, config)


@click.command()
@click.option("--check", is_flag=True, help="Exit 1 when anything is not serving: a node (adapter down, unhealthy, "
                                            "mocked or faulted by the custodian, or rewired outside Baton), the "
                                            "conductor, the custodian or the Prefect API, or a certificate is "
                                            "critical or expired.")
@json_option
@click.pass_obj
def status(obj: Any, check: bool, as_json: bool) -> None:
    """Show the circuit: nodes, edges, start order, and what the custodian says of each node."""
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
        for n in payload["nodes"]:
            if n["drift"]:
                c.print(f"[bold red]{n['name']}[/] {n['drift']}; `baton slot`, `baton swap` or `baton route` "
                        "puts it back under Baton's control")
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
        conductor, prefect = payload["conductor"], payload["prefect"]
        if conductor["running"]:
            c.print(f"Conductor: running (pid {conductor['pid']}); custodian: {conductor['custodian']}")
        else:
            c.print(f"Conductor: not running{' (' + conductor['note'] + ')' if conductor.get('note') else ''}")
        c.print(f"Prefect API: {prefect['api_url'] or 'not started yet'} "
                f"({'answering' if prefect['running'] else 'not answering'}; kept by {prefect['managed_by']})")
        taint = payload["taint"]
        if taint["enabled"] or taint["canaries"] or taint["violations"]:
            last = taint["last_violation"]
            c.print(f"Taint: {'on' if taint['enabled'] else 'off'}; {taint['canaries']} canaries; "
                    f"{taint['violations']} violations"
                    + (f" (newest at {last['edge']}: {last['kind']} of {last['origin']})" if last else "")
                    + " (`baton taint status`)")
        for cycle in payload["cycles"]:
            c.print(f"[yellow]Cycle:[/] {' -> '.join(cycle)} (these nodes start together)")

    emit(as_json, payload, human)
    problems = check_problems(payload) if check else []
    if check and payload["running"]:
        from baton.cli.certs_cmd import certificate_problems

        problems += certificate_problems(obj.project())
    if problems:
        click.echo("error: not everything is serving: " + "; ".join(problems) + ". See `baton watch` and `baton logs`; "
                   "`baton up` starts what is missing.", err=True)
        raise click.exceptions.Exit(1)
