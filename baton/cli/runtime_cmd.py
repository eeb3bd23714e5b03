"""Runtime commands: up, down, slot, swap, serve. Each is a flow run (see flowrun)."""

from __future__ import annotations

from typing import Any

import click

from baton.cli.output import emit, json_option, print_notes

__all__ = ["run_flow_command", "up", "down", "slot", "swap", "collapse", "apply", "serve"]


def run_flow_command(obj: Any, action: str, params: dict[str, Any], as_json: bool) -> tuple[Any, Any]:
    """Run ``action`` for a command: progress on stderr unless --json; returns (project, result)."""
    from baton.cli.flowrun import run_action, stderr_progress

    project = obj.project()
    if "node" not in params:
        params.setdefault("circuit", project.load().name)  # circuit-wide runs are named after the circuit
    with stderr_progress(not as_json) as progress:
        return project, run_action(project, action, params, progress)


@click.command()
@click.option("--mock", is_flag=True, help="Serve every node from its mock (stops slotted services).")
@click.option("--no-conductor", is_flag=True, help="Run the flow in this process; do not start `baton serve`.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Seconds to wait for adapters.")
@json_option
@click.pass_obj
def up(obj: Any, mock: bool, no_conductor: bool, timeout_s: float, as_json: bool) -> None:
    """Boot the circuit: an adapter per node, mocks where nothing is slotted."""
    project = obj.project()
    if no_conductor:
        import os

        os.environ["BATON_NO_CONDUCTOR"] = "1"
    _, result = run_flow_command(obj, "up", {"mock": mock, "timeout_s": timeout_s}, as_json)

    def human(c: Any) -> None:
        config = project.load()
        started = ", ".join(result["started"]) or "none (already running)"
        c.print(f"Circuit [bold]{config.name}[/] is up: {len(result['ready'])} nodes answering; started {started}")
        for node in config.nodes:
            address = (f"http://{node.host}:{node.port}" if node.proxy_mode in ("http", "soap")
                       else f"{node.host}:{node.port} ({node.proxy_mode})")
            c.print(f"  {node.name:<16} {address}  (management {node.management_port})")

    emit(as_json, result, human)


@click.command()
@click.option("--all", "everything", is_flag=True, help="Also stop the project's conductor (the shared Prefect server "
                                                         "keeps running: `baton server stop`).")
@json_option
@click.pass_obj
def down(obj: Any, everything: bool, as_json: bool) -> None:
    """Stop every service and adapter the circuit started (history is kept)."""
    from baton import leases
    from baton.state import StateStore

    project = obj.project()
    state = StateStore(project.state_dir).load()
    if state.running or state.owned() or leases.all(project.state_dir):
        _, result = run_flow_command(obj, "down", {}, as_json)
    else:  # nothing runs: no flow, no Prefect server started just to stop nothing
        result = {"circuit": project.load().name, "services_stopped": [], "hosts_stopped": [], "already_down": True}
    if everything:
        from baton.cli.conductor_launch import stop_conductor
        from baton.prefect_server import legacy_server_record
        from baton.processes import stop_group

        result["conductor_stopped"] = stop_conductor(project)
        legacy = legacy_server_record(project.state_dir)  # a per-project server of an earlier Baton
        result["legacy_server_stopped"] = bool(legacy) and stop_group(legacy, timeout=15)

    def human(c: Any) -> None:
        if result.get("already_down"):
            c.print("Circuit is already down: nothing was running")
        else:
            c.print(f"Circuit is down: {len(result['hosts_stopped'])} adapter hosts and "
                    f"{len(result['services_stopped'])} services stopped")
        if everything:
            c.print("Conductor " + ("stopped" if result["conductor_stopped"] else "was not running")
                    + "; history stays in the shared Prefect server (`baton ui`)")

    emit(as_json, result, human)


@click.command()
@click.argument("node")
@click.argument("command")
@click.option("--force", is_flag=True, help="Slot even if the service fails contract validation.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Seconds to wait for readiness.")
@click.option("--end-canary", is_flag=True, help="If a node it changes has a canary in flight, roll it back first.")
@json_option
@click.pass_obj
def slot(obj: Any, node: str, command: str, force: bool, timeout_s: float, end_canary: bool, as_json: bool) -> None:
    """Start COMMAND as NODE's service and switch its adapter to it."""
    _, result = run_flow_command(obj, "slot", {"node": node, "command": command, "force": force, "timeout_s": timeout_s,
                                               "end_canary": end_canary}, as_json)

    def human(c: Any) -> None:
        print_notes(c, result)
        c.print(f"Slotted [bold]{node}[/]: {command} on port {result['port']} "
                f"(ready after {result['ready_after_s']} s)")

    emit(as_json, result, human)


@click.command()
@click.argument("node")
@click.argument("command")
@click.option("--force", is_flag=True, help="Swap even if the new version fails contract validation.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True)
@click.option("--end-canary", is_flag=True, help="If a node it changes has a canary in flight, roll it back first.")
@json_option
@click.pass_obj
def swap(obj: Any, node: str, command: str, force: bool, timeout_s: float, end_canary: bool, as_json: bool) -> None:
    """Hot-swap NODE's service for COMMAND with zero downtime."""
    _, result = run_flow_command(obj, "swap", {"node": node, "command": command, "force": force, "timeout_s": timeout_s,
                                               "end_canary": end_canary}, as_json)
    emit(as_json, result, lambda c: (print_notes(c, result), c.print(
        f"Swapped [bold]{node}[/]: revision {result['old_revision']} drained, {command} serves as {result['revision']}"
        if result.get("revision") else
        f"Swapped [bold]{node}[/]: port {result['old_port']} drained and stopped, {command} serves on {result['port']}")))


@click.command()
@click.option("--live", default="", help="Comma-separated nodes that keep their live service.")
@click.option("--end-canary", is_flag=True, help="If a node it changes has a canary in flight, roll it back first.")
@json_option
@click.pass_obj
def collapse(obj: Any, live: str, end_canary: bool, as_json: bool) -> None:
    """Serve every node from its mock except the --live ones."""
    names = [n.strip() for n in live.split(",") if n.strip()]
    _, result = run_flow_command(obj, "collapse", {"live": names, "end_canary": end_canary}, as_json)
    emit(as_json, result, lambda c: c.print(
        f"Mocked {', '.join(result['mocked']) or 'nothing'}; live: {', '.join(result['live']) or 'none'}"))


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@json_option
@click.pass_obj
def apply(obj: Any, dry_run: bool, as_json: bool) -> None:
    """Converge the running circuit on baton.yaml (boot, reboot, add/remove nodes, routing)."""
    _, result = run_flow_command(obj, "apply", {"dry_run": dry_run}, as_json)

    def human(c: Any) -> None:
        if not result["plan"]:
            c.print("Nothing to do: the running circuit matches baton.yaml")
            return
        c.print("Plan:" if dry_run else "Applied:")
        for step in result["plan"]:
            c.print(f"  {step['kind']:<16} {step['target']:<20} {step['reason']}")
        if dry_run:
            c.print("Dry run: nothing changed. Run `baton apply` to carry it out.")

    emit(as_json, result, human)


@click.command()
@click.pass_obj
def serve(obj: Any) -> None:
    """Run the project's conductor in the foreground (warm flow runs for the CLI)."""
    import asyncio

    from baton.cli.conductor import serve as run_conductor

    asyncio.run(run_conductor(obj.project()))
