"""``baton history``: who changed what, when, with which parameters, and how it ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["history"]

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _since(value: str | None) -> datetime | None:
    from baton.errors import UsageError

    if not value:
        return None
    if value[-1:] in _UNITS and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{_UNITS[value[-1]]: int(value[:-1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since expects a duration like 30m, 2h, 1d or an ISO time, found {value!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _client(project: Any):  # noqa: ANN202
    from baton.history import HistoryClient
    from baton.prefect_server import ensure_server

    return HistoryClient(ensure_server().api_url)


@click.group(invoke_without_command=True)
@click.option("--node", help="Only runs that touched this node.")
@click.option("--action", help="Only this action (up, slot, swap, route, ...).")
@click.option("--since", help="Only runs after this: 30m, 2h, 1d or an ISO time.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--idle", is_flag=True, help="Also list scheduled runs that found nothing to do.")
@json_option
@click.pass_context
def history(ctx: click.Context, node: str | None, action: str | None, since: str | None, limit: int,
            idle: bool, as_json: bool) -> None:
    """List the circuit's topology actions (Prefect flow runs)."""
    if ctx.invoked_subcommand is not None:
        return
    project = ctx.obj.project()
    runs = _client(project).runs(circuit=project.load().name, node=node, action=action, since=_since(since),
                                 limit=limit, idle=idle, project_tag=project.run_tag)

    def human(c: Any) -> None:
        if not runs:
            c.print("No runs yet.")
            return
        c.print(table("History (newest first)", ("started", "run", "actor", "state", "duration", "parameters", "id"), [
            (r.started[:19].replace("T", " "), r.name, r.actor, r.state,
             f"{r.duration_s:.2f} s" if r.duration_s is not None else "-",
             " ".join(f"{k}={v}" for k, v in r.parameters.items() if k != "circuit"), r.id[-8:])
            for r in runs
        ]))

    emit(as_json, {"runs": [r.to_json() for r in runs]}, human)


@history.command("show")
@click.argument("run")
@json_option
@click.pass_obj
def history_show(obj: Any, run: str, as_json: bool) -> None:
    """Show one run's steps, their states, its snapshots and logs (RUN: its name, its id, or the short id
    `baton history` shows)."""
    from baton.history import RunSummary

    project = obj.project()
    client = _client(project)
    found = client.resolve(run, circuit=project.load().name, project_tag=project.run_tag)
    summary = RunSummary.from_api(found)
    details = client.details(found["id"])
    payload = {"run": summary.to_json(), **details}

    def human(c: Any) -> None:
        c.print(f"[bold]{summary.name}[/] ({summary.id}) by {summary.actor}: {summary.state}, "
                f"{summary.duration_s} s, started {summary.started}")
        c.print(table("Steps", ("step", "state", "duration", "attempts"),
                      [(s["name"], s["state"], f"{s['duration_s']:.3f} s", s["attempts"]) for s in details["steps"]]))
        for artifact in details["artifacts"]:
            c.out(artifact["data"] or "")
        for line in details["logs"]:
            c.print(f"[dim]{(line['time'] or '')[11:23]}[/] {line['message']}")

    emit(as_json, payload, human)
