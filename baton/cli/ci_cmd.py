"""``baton ci trigger`` and ``baton ci register``: Baton's Prefect deployments run from CI on a team's server.

``trigger`` exits 0 when the run Completed, 1 when it Failed, Crashed, was Cancelled or outlived ``--timeout``
(with the run's message), 2 on bad input (an unknown deployment, a parameter it does not take). Progress goes
to stderr, one line per state change or log line with the elapsed time; ``--json`` prints the outcome on stdout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from baton.cli.output import emit, json_option

__all__ = ["ci"]


@click.group()
def ci() -> None:
    """Run Baton's Prefect deployments from CI (PREFECT_API_URL, PREFECT_API_KEY)."""


def _progress(started: float):  # noqa: ANN202
    def say(line: str) -> None:
        sys.stderr.write(f"[{time.monotonic() - started:7.1f}s] {line}\n")
        sys.stderr.flush()

    return say


@ci.command()
@click.argument("deployment")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A flow parameter (repeatable); VALUE is read as JSON when it parses, else as a string.")
@click.option("--timeout", "timeout_s", type=float, default=1800.0, show_default=True,
              help="Seconds to wait for the run's final state.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between state polls.")
@click.option("--tag", "tags", multiple=True, help="A tag for the run (repeatable), e.g. commit:$GITHUB_SHA.")
@click.option("--idempotency-key", help="The same key never starts a second run (e.g. the CI job's run id).")
@click.option("--no-logs", is_flag=True, help="Do not print the run's log lines.")
@json_option
def trigger(deployment: str, params: tuple[str, ...], timeout_s: float, poll_s: float, tags: tuple[str, ...],
            idempotency_key: str | None, no_logs: bool, as_json: bool) -> None:
    """Run DEPLOYMENT (FLOW/NAME, e.g. apply/apply) on the Prefect server and wait for its result."""
    from baton.deployment_run import parse_params, run_deployment_and_wait

    started = time.monotonic()
    outcome = run_deployment_and_wait(deployment, parse_params(params), timeout_s=timeout_s, poll_s=poll_s,
                                      tags=list(tags), idempotency_key=idempotency_key, say=_progress(started),
                                      logs=not no_logs)

    def human(c: Any) -> None:
        if outcome.succeeded:
            c.print(f"{outcome.deployment}: flow run {outcome.flow_run_name} Completed in {outcome.elapsed_s:.1f} s")
        if outcome.ui_url:
            c.print(f"  {outcome.ui_url}")

    emit(as_json, outcome.model_dump(), human)
    if not outcome.succeeded:
        run = f"{outcome.deployment}: flow run {outcome.flow_run_name}"
        if outcome.timed_out:
            click.echo(f"error: {run} {outcome.message}.", err=True)
        else:
            click.echo(f"error: {run} ended {outcome.state} after {outcome.elapsed_s:.1f} s: "
                       f"{outcome.message or 'the run gave no reason'}", err=True)
        raise click.exceptions.Exit(1)


@ci.command()
@click.option("--project", "project_dir", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="The project directory as the worker sees it (BATON_PROJECT).")
@click.option("--pool", default="baton", show_default=True, help="The process work pool (created when missing).")
@click.option("--name", "names", multiple=True, help="Register only this deployment (repeatable); default all.")
@json_option
def register(project_dir: Path, pool: str, names: tuple[str, ...], as_json: bool) -> None:
    """Register flows/prefect.yaml's deployments for a project on the Prefect server (prefect deploy)."""
    from baton.registration import register_deployments

    result = register_deployments(project_dir, pool=pool, names=names)

    def human(c: Any) -> None:
        created = " (created)" if result["pool_created"] else ""
        c.print(f"Registered {', '.join(result['deployments'])} for {result['project']} on work pool "
                f"{result['pool']}{created}; start a worker there: prefect worker start --pool {result['pool']}")

    emit(as_json, result, human)
