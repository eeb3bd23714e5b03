"""Run a registered Prefect deployment by name on a server (a team's, from CI) and follow it to its end.

``trigger`` resolves the deployment, checks the parameters against its schema and creates the flow run;
``follow`` polls the run's state (and its logs) until it reaches a final state or the timeout, reporting each
change to a sink; both return plain values and raise :class:`~baton.errors.BatonError` only. The CLI
(``baton ci trigger``) maps the outcome to an exit code. Prefect is imported here: import this module lazily.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    FlowFilter,
    FlowFilterId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
    TaskRunFilter,
    TaskRunFilterId,
)
from prefect.client.schemas.sorting import LogSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from pydantic import BaseModel, Field

from baton.errors import BatonError, UsageError

__all__ = ["RunOutcome", "parse_params", "run_deployment_and_wait", "SUCCESS_STATES"]

SUCCESS_STATES = frozenset({"COMPLETED"})
Sink = Callable[[str], None]


class RunOutcome(BaseModel):
    """How one triggered deployment run ended (``--json``'s document)."""

    deployment: str = Field(description="The deployment's full name, FLOW/DEPLOYMENT.")
    flow_run_id: str
    flow_run_name: str
    state: str = Field(description="The run's last state name (Completed, Failed, Crashed, Cancelled, ...).")
    state_type: str = Field(description="The run's last state type (COMPLETED, FAILED, ... RUNNING on timeout).")
    message: str = Field(default="", description="The state's message: the reason a run failed.")
    timed_out: bool = False
    elapsed_s: float
    parameters: dict[str, Any]
    ui_url: str = Field(default="", description="The run's page in Prefect's UI, when the server has one.")

    @property
    def succeeded(self) -> bool:
        return self.state_type in SUCCESS_STATES and not self.timed_out


def parse_params(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as flow parameters: a value that parses as JSON (true, 3, {"a": 1}) is taken as such,
    anything else as a string."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param takes KEY=VALUE, got {pair!r}; e.g. --param root=/srv/shop.")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return params


def _http_detail(exc: PrefectHTTPStatusError) -> str:
    try:
        detail = exc.response.json().get("detail", exc.response.text)
    except ValueError:
        detail = exc.response.text
    return str(detail).strip().rstrip(".")


async def _known_deployments(client: PrefectClient) -> list[str]:
    deployments = await client.read_deployments(limit=200)
    flows = await client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=list({d.flow_id for d in deployments}))))
    flow_names = {f.id: f.name for f in flows}
    return sorted(f"{flow_names.get(d.flow_id, '?')}/{d.name}" for d in deployments)


async def _resolve(client: PrefectClient, name: str) -> tuple[str, Any]:
    """The deployment called ``name`` (FLOW/DEPLOYMENT, or a deployment name that only one flow has)."""
    if "/" in name:
        try:
            return name, await client.read_deployment_by_name(name)
        except ObjectNotFound:
            pass
    else:
        matches = await client.read_deployments(deployment_filter=DeploymentFilter(name={"any_": [name]}))
        if len(matches) == 1:
            flow = await client.read_flow(matches[0].flow_id)
            return f"{flow.name}/{name}", matches[0]
        if len(matches) > 1:
            known = [k for k in await _known_deployments(client) if k.endswith(f"/{name}")]
            raise UsageError(f"more than one flow has a deployment named {name!r} ({', '.join(known)}); "
                             "give it as FLOW/DEPLOYMENT.")
    known = await _known_deployments(client)
    listed = ", ".join(known) if known else "none: register them with `baton ci register`"
    raise UsageError(f"no deployment named {name!r} on {str(client.api_url).rstrip('/')}; the server knows {listed}.")


def _check_params(full_name: str, deployment: Any, params: dict[str, Any]) -> None:
    accepted = set(((deployment.parameter_openapi_schema or {}).get("properties") or {}))
    unknown = sorted(set(params) - accepted) if accepted else []
    if unknown:
        raise UsageError(f"deployment {full_name} takes no parameter {', '.join(map(repr, unknown))}; it takes "
                         f"{', '.join(sorted(accepted))}.")


def _ui_url(run_id: UUID) -> str:
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{run_id}" if base else ""


def _first_line(message: str) -> str:
    """A log message as one line: a traceback stays on the server (the run's page shows it)."""
    lines = message.strip().splitlines() or [""]
    return lines[0] + (f" (+{len(lines) - 1} lines on the server)" if len(lines) > 1 else "")


class _LogTail:
    """The run's log lines not yet shown. Prefect ships logs in batches, late and out of timestamp order, so
    lines are told apart by id, reading again from a while before the newest one seen."""

    PAGE = 200
    LATE = timedelta(seconds=60)

    def __init__(self, client: PrefectClient, run_id: UUID) -> None:
        self.client, self.run_id = client, run_id
        self.seen: set[UUID] = set()
        self.newest: datetime | None = None
        self.task_names: dict[UUID, str] = {}
        self.flow_finished = False  # the engine's own last line ("Finished in state ...") has arrived

    async def _fresh(self) -> list[Any]:
        since = LogFilterTimestamp(after_=self.newest - self.LATE) if self.newest else None
        query = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[self.run_id]), timestamp=since)
        fresh, offset = [], 0
        while True:
            page = await self.client.read_logs(log_filter=query, offset=offset, limit=self.PAGE,
                                               sort=LogSort.TIMESTAMP_ASC)
            fresh += [log for log in page if log.id not in self.seen]
            if len(page) < self.PAGE:
                return fresh
            offset += self.PAGE

    async def new_lines(self) -> list[str]:
        logs = await self._fresh()
        self.seen.update(log.id for log in logs)
        self.newest = max([self.newest, *(log.timestamp for log in logs)] if self.newest else
                          [log.timestamp for log in logs], default=None)
        self.flow_finished |= any(log.task_run_id is None and log.message.startswith("Finished in state")
                                  for log in logs)
        shown = [log for log in logs if log.level >= 20]
        await self._learn_task_names({log.task_run_id for log in shown if log.task_run_id} - set(self.task_names))
        return [(f"{self.task_names[log.task_run_id]}: " if log.task_run_id else "") + _first_line(log.message)
                for log in shown]

    async def _learn_task_names(self, ids: set[UUID]) -> None:
        if not ids:
            return
        runs = await self.client.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=list(ids))))
        self.task_names.update({run.id: run.name.rsplit("-", 1)[0] for run in runs})
        self.task_names.update({i: "task" for i in ids - set(self.task_names)})


async def _drain(tail: _LogTail, poll_s: float, say: Sink, limit_s: float = 5.0) -> None:
    """The lines shipped after the final state, up to the engine's "Finished in state" (a crashed run never
    logs it: then for ``limit_s`` at most)."""
    deadline = time.monotonic() + limit_s
    while not tail.flow_finished and time.monotonic() < deadline:
        await asyncio.sleep(min(poll_s, 0.5))
        for line in await tail.new_lines():
            say(f"  | {line}")


async def _follow(client: PrefectClient, run: Any, timeout_s: float, poll_s: float, started: float,
                  say: Sink, logs: bool) -> tuple[Any, bool]:
    """Poll the run until a final state (or the timeout), saying each state change and each new log line."""
    tail = _LogTail(client, run.id) if logs else None
    last, name = None, run.name
    deadline = started + timeout_s
    while True:
        run = await client.read_flow_run(run.id)
        state = run.state
        if run.name != name:  # the flow names its run when it starts (flow_run_name)
            name = run.name
            say(f"flow run {run.id} is named {name}")
        label = (state.name, state.message) if state else ("Unknown", "")
        if label != last:
            last = label
            suffix = f": {state.message}" if state and state.message and not state.is_final() else ""
            say(f"{label[0]}{suffix}")
        if tail is not None:
            for line in await tail.new_lines():
                say(f"  | {line}")
        if state is not None and state.is_final():
            if tail is not None:
                await _drain(tail, poll_s, say)
            return run, False
        if time.monotonic() >= deadline:
            return run, True
        await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


async def _run(name: str, params: dict[str, Any], *, timeout_s: float, poll_s: float, tags: list[str],
               idempotency_key: str | None, say: Sink, logs: bool) -> RunOutcome:
    started = time.monotonic()
    async with get_client() as client:
        full_name, deployment = await _resolve(client, name)
        _check_params(full_name, deployment, params)
        try:
            run = await client.create_flow_run_from_deployment(deployment.id, parameters=params, tags=tags,
                                                               idempotency_key=idempotency_key)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code in (409, 422):
                raise UsageError(f"the server refused the parameters for {full_name}: {_http_detail(exc)}.") from exc
            raise
        pool = deployment.work_pool_name or "no work pool"
        say(f"triggered {full_name}: flow run {run.name} ({run.id}) on {pool}")
        run, timed_out = await _follow(client, run, timeout_s, poll_s, started, say, logs)
        state = run.state
        message = (state.message or "") if state else ""
        if timed_out:
            message = (f"is still {state.name if state else 'unknown'} after {timeout_s:g} s; it goes on on the "
                       f"server: cancel it with `prefect flow-run cancel {run.id}` if it must not")
        return RunOutcome(deployment=full_name, flow_run_id=str(run.id), flow_run_name=run.name,
                          state=state.name if state else "Unknown", state_type=state.type.value if state else "UNKNOWN",
                          message=message, timed_out=timed_out, elapsed_s=round(time.monotonic() - started, 2),
                          parameters=params, ui_url=_ui_url(run.id))


def run_deployment_and_wait(name: str, params: dict[str, Any], *, timeout_s: float = 1800.0, poll_s: float = 1.0,
                            tags: list[str] | None = None, idempotency_key: str | None = None,
                            say: Sink = lambda line: None, logs: bool = True) -> RunOutcome:
    """Trigger deployment ``name`` on the configured Prefect API and wait for its run's final state."""
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise UsageError("PREFECT_API_URL is not set; point it at the Prefect server that holds the deployments "
                         "(and set PREFECT_API_KEY for Prefect Cloud).")
    if timeout_s <= 0:
        raise UsageError(f"--timeout takes a positive number of seconds, got {timeout_s:g}.")
    try:
        return asyncio.run(_run(name, params, timeout_s=timeout_s, poll_s=poll_s, tags=tags or [],
                                idempotency_key=idempotency_key, say=say, logs=logs))
    except PrefectHTTPStatusError as exc:
        status = exc.response.status_code
        hint = "; check PREFECT_API_KEY" if status in (401, 403) else ""
        raise BatonError(f"the Prefect API at {api_url} answered {status}: {_http_detail(exc)}{hint}.") from exc
    except httpx.HTTPError as exc:
        raise BatonError(f"cannot reach the Prefect API at {api_url} ({type(exc).__name__}: {exc}); check "
                         "PREFECT_API_URL and that the server is up.") from exc
