"""``baton test --canary``: the taint soak test (the ``taint-soak`` flow). Exit 1 when a canary crossed a boundary."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from baton.cli.durations import DURATION
from baton.cli.output import emit, json_option

__all__ = ["test"]


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@click.command("test")
@click.option("--canary", is_flag=True, help="Run the taint soak test (the only test so far; required).")
@click.option("--tiers", default="PII", show_default=True, help="Data tiers to seed, comma-separated (PII, FINANCIAL).")
@click.option("--duration", "duration_s", type=DURATION, default="5m", show_default=True,
              help="How long to drive traffic: 30s, 5m, 1h.")
@click.option("--rate", type=click.FloatRange(0.1, 10000), default=20.0, show_default=True,
              help="Requests per second, spread over the targets.")
@click.option("--node", "nodes", multiple=True, help="Seed only this node (repeatable; default: every node that "
                                                      "holds data of the tiers, and the ingress).")
@json_option
@click.pass_obj
def test(obj: Any, canary: bool, tiers: str, duration_s: float, rate: float, nodes: tuple[str, ...],
         as_json: bool) -> None:
    """Seed canary data, drive traffic made from the contracts through the circuit, and report every canary that
    crossed a boundary it should not have (a node outside its scope, an edge that does not carry its tier, a
    service log). The report is kept on the run and in .baton/taint_report.json; the canaries are cleared."""
    from baton.cli.runtime_cmd import run_flow_command
    from baton.errors import BatonError, UsageError

    if not canary:
        raise UsageError("`baton test` runs the taint soak test and needs --canary; e.g. baton test --canary "
                         "--tiers PII --duration 1m.")
    wanted = [t.upper() for t in _csv(tiers)]
    if not wanted:
        raise UsageError("--tiers needs at least one tier, e.g. --tiers PII or --tiers PII,FINANCIAL.")
    params = {"tiers": wanted, "duration_s": duration_s, "rate": rate, "nodes": list(nodes)}
    project = obj.project()
    report_file = project.state_dir / "taint_report.json"
    started = time.time()
    try:
        _, report = run_flow_command(obj, "taint-soak", params, as_json)
    except BatonError:
        report = _report_since(report_file, started)
        if report is None or report["passed"]:  # the soak failed before it could report: say why
            raise
    emit(as_json, report, lambda c: _show(c, report))
    if not report["passed"]:
        raise click.exceptions.Exit(1)


def _report_since(path: Path, started: float) -> dict[str, Any] | None:
    """The report a soak kept, when it was written after ``started`` (a failed soak's)."""
    try:
        if path.stat().st_mtime < started:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _show(c: Any, report: dict[str, Any]) -> None:
    requests, violations = report["requests"], report["violations"]
    c.print(f"Soaked {report['duration_s']:.0f} s: {requests['sent']} requests ({requests['carrying']} carrying "
            f"canaries, {requests['failed']} unanswered), {len(report['canaries'])} canaries of "
            f"{', '.join(report['tiers'])}.")
    if report["passed"]:
        c.print("[green]No canary crossed a boundary.[/]")
        return
    c.print(f"[red]{violations['total']} violation(s):[/]")
    for edge, kinds in violations["by_edge"].items():
        c.print(f"  {edge}: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items())))
    seen = set()
    for item in violations["first"]:
        reasons = "; ".join(item.get("reasons") or [])
        if reasons not in seen and len(seen) < 5:
            seen.add(reasons)
            c.print(f"  - {reasons}")
    c.print("Report: .baton/taint_report.json, and the run's artifact: `baton history show taint-soak`.")
