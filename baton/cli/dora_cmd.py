"""``baton dora``: deployment frequency, lead time, change failure rate and time to restore of the circuit over
a window, computed from Prefect's run history (the audit trail) by :mod:`baton.telemetry.dora`."""

from __future__ import annotations

import time
from typing import Any

import click

from baton.cli.durations import DURATION
from baton.cli.output import emit, json_option, table

__all__ = ["dora"]

CONTEXT_S = 86400.0  # runs read from this long before the window: a canary promoted inside it may start before
CANARY_RUNS = ("route-canary", "canary-tick")


def _runs(project: Any, since: float) -> tuple[list[Any], list[Any]]:
    from datetime import UTC, datetime

    from baton.history import HistoryClient, epoch
    from baton.prefect_server import ensure_server
    from baton.telemetry.dora import OUTCOME_ARTIFACT, ActionRun, canary_outcome, outcome_from_artifact

    client = HistoryClient(ensure_server().api_url)
    summaries = client.runs(circuit=project.load().name, since=datetime.fromtimestamp(since - CONTEXT_S, UTC),
                            limit=100_000, project_tag=project.run_tag)
    # a subflow (route-canary's route-split) carries its parent's action tag: the parent alone is the change
    runs = [ActionRun(s.id, s.action, s.node, s.state, epoch(s.started), epoch(s.ended), s.name)
            for s in summaries if not s.subflow]
    canaries = {r.id: r for r in runs if r.action in CANARY_RUNS}
    outcomes = []
    for run_id, data in client.artifacts(list(canaries), OUTCOME_ARTIFACT) if canaries else ():
        outcome = outcome_from_artifact(canaries[run_id], data) if run_id in canaries else None
        if outcome is not None:
            outcomes.append(outcome)
    recorded = {o.run_id for o in outcomes}
    older = [run_id for run_id in canaries if run_id not in recorded]  # runs from before the artifact: their logs
    for line in client.logs(older) if older else ():
        outcome = canary_outcome(canaries[line.run_id], line.message, line.at) if line.at is not None else None
        if outcome is not None:
            outcomes.append(outcome)
    return runs, outcomes


def _custodian_events(project: Any) -> tuple[list[Any], bool]:
    from baton.eventlog import EVENTS_FILE
    from baton.jsonl import read_lines
    from baton.telemetry.dora import CustodianEvent

    path = project.state_dir / EVENTS_FILE
    found = []
    for record in read_lines(path, rotated=True).records:
        at = record.get("timestamp")
        if record.get("kind") == "custodian" and isinstance(at, (int, float)) and isinstance(record.get("node_name"),
                                                                                           str):
            found.append(CustodianEvent(record["node_name"], str(record.get("status") or ""), float(at)))
    return found, path.exists()


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in by_kind.items())


@click.command()
@click.option("--window", type=DURATION, default="7d", show_default=True,
              help="How far back: 7d, 24h, 90m (a number alone is seconds).")
@json_option
@click.pass_obj
def dora(obj: Any, window: float, as_json: bool) -> None:
    """Show the DORA metrics of the circuit's topology actions over a window (from Prefect's run history)."""
    from baton.telemetry.dora import dora_report

    project = obj.project()
    until = time.time()
    since = until - window
    runs, outcomes = _runs(project, since)
    events, known = _custodian_events(project)
    report = dora_report(runs, outcomes, events, since=since, until=until, events_known=known)
    payload = report.to_json()

    def human(c: Any) -> None:
        frequency, lead = payload["deployment_frequency"], payload["lead_time"]
        failure, restore = payload["change_failure_rate"], payload["time_to_restore"]
        start = time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
        rows = [
            ("deployment frequency", f"{frequency['per_day']:g} per day",
             f"{frequency['deployments']} deployments" + (f" ({_kinds(frequency['by_kind'])})"
                                                          if frequency["by_kind"] else "")),
            ("lead time", f"median {_s(lead['median_s'])}" if lead["count"] else "-",
             f"mean {_s(lead['mean_s'])}, max {_s(lead['max_s'])} over {lead['count']} changes" if lead["count"]
             else "no change completed"),
            ("change failure rate", "-" if failure["rate"] is None else f"{100 * failure['rate']:.1f} %",
             f"{failure['failures']} of {failure['changes']} changes failed" +
             (f" ({_kinds(failure['by_kind'])})" if failure["by_kind"] else "")),
            ("time to restore", f"median {_s(restore['median_s'])}" if restore["count"] else "-",
             (f"mean {_s(restore['mean_s'])}, max {_s(restore['max_s'])} over {restore['count']} failures"
              if restore["count"] else "no failure restored") +
             (f"; still failing: {', '.join(restore['open'])}" if restore["open"] else "")),
        ]
        c.print(table(f"DORA metrics since {start} ({_s(window)})", ("metric", "value", "detail"), rows))
        for note in payload["notes"]:
            c.print(f"[dim]{note}[/]")

    emit(as_json, payload, human)
