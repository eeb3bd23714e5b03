"""The audit trail: Baton's flow runs read back from the Prefect API.

Plain REST over ``urllib`` (no Prefect import): the CLI answers in a fraction
of a second once the server runs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from baton.errors import BatonError, UsageError

__all__ = ["RunSummary", "HistoryClient", "LogLine", "mark_abandoned_runs", "process_tag", "epoch", "IDLE_SUFFIX"]

IDLE_SUFFIX = "-idle"  # scheduled runs that found nothing to do: hidden unless asked for


@dataclass(frozen=True)
class RunSummary:
    id: str
    name: str
    action: str
    node: str
    actor: str
    state: str
    started: str
    duration_s: float | None
    parameters: dict[str, Any]
    ended: str = ""  # when it reached its final state (empty while it runs)
    subflow: bool = False  # run by another flow (it carries its parent's tags, action included)

    @classmethod
    def from_api(cls, run: dict[str, Any]) -> RunSummary:
        tags = run.get("tags") or []

        def tag(prefix: str) -> str:
            return next((t.split(":", 1)[1] for t in tags if t.startswith(prefix + ":")), "")

        params = {k: v for k, v in (run.get("parameters") or {}).items() if k != "root"}
        return cls(
            id=run["id"],
            name=run.get("name", ""),
            action=tag("action"),
            node=tag("node"),
            actor=tag("actor"),
            state=(run.get("state") or {}).get("name") or run.get("state_name") or "",
            started=run.get("start_time") or run.get("expected_start_time") or "",
            duration_s=round(run["total_run_time"], 3) if run.get("total_run_time") is not None else None,
            parameters=params,
            ended=run.get("end_time") or "",
            subflow=run.get("parent_task_run_id") is not None,
        )

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class LogLine:
    """One log line of a run (or of one of its steps)."""

    run_id: str
    at: float | None
    message: str


def epoch(value: Any) -> float | None:
    """Seconds since the epoch of an ISO time as the Prefect API writes it (None when there is none)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class HistoryClient:
    def __init__(self, api_url: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the project's API
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise BatonError(f"the Prefect API at {self.api_url} answered {exc.code} to {path}.") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BatonError(f"the Prefect API at {self.api_url} does not answer ({exc}); "
                             "check PREFECT_API_URL or run any baton command to start the project's server.") from exc

    def runs(self, *, circuit: str, node: str | None = None, action: str | None = None,
             since: datetime | None = None, limit: int = 50, idle: bool = False,
             project_tag: str | None = None) -> list[RunSummary]:
        """Runs that started, newest first: future scheduled runs are left out, and so are idle scheduled
        ticks (``*-idle``) unless ``idle``. ``project_tag`` keeps apart projects that share a server and a
        circuit name."""
        extra = [*([f"node:{node}"] if node else []), *([f"action:{action}"] if action else [])]
        flow_runs = _started_runs(circuit, project_tag, extra)
        if since:
            flow_runs["expected_start_time"] = {"after_": since.isoformat()}
        kept: list[RunSummary] = []
        page, offset = 200, 0
        while len(kept) < limit:
            found = self._call("POST", "/flow_runs/filter", {"flow_runs": flow_runs, "sort": "EXPECTED_START_TIME_DESC",
                                                             "limit": page, "offset": offset}) or []
            kept += [RunSummary.from_api(r) for r in found if idle or not str(r.get("name", "")).endswith(IDLE_SUFFIX)]
            if len(found) < page:
                break
            offset += page
        return kept[:limit]

    def logs(self, run_ids: list[str], *, limit: int = 20000) -> list[LogLine]:
        """The log lines of the runs ``run_ids`` (their steps' included), oldest first, at most ``limit``."""
        found: list[LogLine] = []
        page = 200
        for start in range(0, len(run_ids), 50):
            ids = run_ids[start:start + 50]
            offset = 0
            while len(found) < limit:
                lines = self._call("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": ids}},
                                                            "sort": "TIMESTAMP_ASC", "limit": page,
                                                            "offset": offset}) or []
                found += [LogLine(str(line.get("flow_run_id") or ""), epoch(line.get("timestamp")),
                                  str(line.get("message") or "")) for line in lines]
                if len(lines) < page:
                    break
                offset += page
        return sorted(found[:limit], key=lambda line: line.at or 0.0)

    def artifacts(self, run_ids: list[str], key: str) -> list[tuple[str, Any]]:
        """(flow run id, data) of the artifacts named ``key`` of the runs ``run_ids``."""
        found: list[tuple[str, Any]] = []
        for start in range(0, len(run_ids), 50):
            ids = run_ids[start:start + 50]
            offset = 0
            while True:
                page = self._call("POST", "/artifacts/filter", {
                    "artifacts": {"flow_run_id": {"any_": ids}, "key": {"any_": [key]}},
                    "limit": 200, "offset": offset}) or []
                found += [(str(a.get("flow_run_id") or ""), a.get("data")) for a in page]
                if len(page) < 200:
                    break
                offset += 200
        return found

    def schedule_deployment(self, deployment_id: str) -> None:
        """Ask the server to plan a deployment's next scheduled runs now (its scheduler does so once a minute)."""
        self._call("POST", f"/deployments/{deployment_id}/schedule", {})

    def resolve(self, ref: str, *, circuit: str, project_tag: str | None = None) -> dict[str, Any]:
        """A run by id, id prefix, or name (the newest run of that name)."""
        if len(ref) == 36:
            run = self._call("GET", f"/flow_runs/{ref}")
            if run:
                return run
        found = self._call("POST", "/flow_runs/filter", {
            "flow_runs": _started_runs(circuit, project_tag, []),
            "sort": "EXPECTED_START_TIME_DESC", "limit": 200}) or []
        # ids are time-ordered (runs planned together share their first digits): the short id shown is the end
        by_id = [run for run in found if len(ref) >= 6 and (run["id"].endswith(ref) or run["id"].startswith(ref))]
        if len(by_id) > 1:
            raise UsageError(f"{ref!r} matches {len(by_id)} runs; give more of the id, as `baton history --json` "
                             "shows it.")
        if by_id:
            return by_id[0]
        for run in found:
            if run.get("name") == ref:
                return run
        raise UsageError(f"no run {ref!r} in this circuit's history; `baton history` lists run names and ids.")

    def details(self, run_id: str) -> dict[str, Any]:
        tasks = self._call("POST", "/task_runs/filter", {
            "flow_runs": {"id": {"any_": [run_id]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 200}) or []
        logs = self._call("POST", "/logs/filter", {
            "logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}) or []
        artifacts = self._call("POST", "/artifacts/filter", {
            "artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 50}) or []
        return {
            "steps": [{"name": t.get("name"), "state": (t.get("state") or {}).get("name") or t.get("state_name"),
                       "duration_s": round(t.get("total_run_time") or 0.0, 3), "attempts": t.get("run_count")}
                      for t in tasks],
            "logs": [{"time": l.get("timestamp"), "level": l.get("level"), "message": l.get("message")} for l in logs],
            "artifacts": [{"key": a.get("key"), "description": a.get("description"), "data": a.get("data")}
                          for a in artifacts],
        }


def _started_runs(circuit: str, project_tag: str | None, tags: list[str]) -> dict[str, Any]:
    """The filter of a circuit's runs that started (future scheduled runs left out), within one project."""
    return {"tags": {"all_": ["baton", f"circuit:{circuit}", *([project_tag] if project_tag else []), *tags]},
            "state": {"type": {"not_any_": ["SCHEDULED"]}}}


def process_tag(pid: int, start_ticks: int) -> str:
    """Tags a run with the process running it (pid and kernel start time, so a reused pid is not mistaken)."""
    return f"proc:{pid}.{start_ticks}"


def _process_gone(tags: list[str]) -> bool | None:
    """Whether the process a run's ``proc:`` tag names has exited (None: the run carries no such tag)."""
    from baton.processes import process_start_ticks

    for tag in tags:
        if tag.startswith("proc:"):
            try:
                pid, ticks = (int(part) for part in tag.removeprefix("proc:").split("."))
            except ValueError:
                return None
            return process_start_ticks(pid) != ticks
    return None


def mark_abandoned_runs(client: HistoryClient, *, project_tag: str) -> list[str]:
    """Record as Crashed the runs of one project still 'Running' whose process has died. A run started by
    baton names its process in a ``proc:`` tag; an older run without one counts as dead when the caller
    holds the project lock. Runs of deployments are left to Prefect's own heartbeats. Returns their names."""
    found = client._call("POST", "/flow_runs/filter", {
        "flow_runs": {"tags": {"all_": ["baton", project_tag]}, "state": {"type": {"any_": ["RUNNING"]}}},
        "limit": 200}) or []
    found = [run for run in found if not run.get("deployment_id")
             and _process_gone(run.get("tags") or []) is not False]
    for run in found:
        client._call("POST", f"/flow_runs/{run['id']}/set_state", {
            "state": {"type": "CRASHED", "name": "Crashed",
                      "message": "the process running this flow stopped before it finished"},
            "force": True})
    return [run.get("name", run["id"]) for run in found]
