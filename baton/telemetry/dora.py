"""The four DORA metrics of a circuit over a window, from its audit trail (pure: plain run records in, a report
out; the CLI reads them from Prefect's run history).

- **Deployment frequency**: changes that reached users, per day: completed ``slot``, ``swap``, ``deploy`` and
  ``apply`` runs, and canary promotions (the ``canary-outcome`` artifact of whichever run concluded the canary;
  for runs from before it, the "Promotion complete" decision in their logs).
- **Lead time**: from the start of the run that made a change to the new version serving: the end of that
  completed run; for a canary, from the start of its ``route-canary`` run to its promotion.
- **Change failure rate**: failed changes over all changes (capped at 100 %): change runs that ended Failed or
  Crashed, canaries rolled back ("Rollback:" decisions), and ``route-revert`` runs (a promotion undone by hand).
- **Time to restore**: from the custodian's first failure of a node to that node healthy again (or served from
  its mock), for failures it repaired (``heal-restart``, ``heal-mock``, ``heal-adapter`` runs); without the
  custodian's decisions (``events.jsonl``), the heal runs' own start and end.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OUTCOME_ARTIFACT", "ActionRun", "CanaryOutcome", "CustodianEvent", "DoraReport", "canary_outcome",
           "dora_report", "outcome_from_artifact",
           "CHANGE_ACTIONS", "DEPLOY_ACTIONS", "HEAL_ACTIONS"]

DEPLOY_ACTIONS = ("slot", "swap", "deploy", "apply")
CANARY_ACTION = "route-canary"
CHANGE_ACTIONS = (*DEPLOY_ACTIONS, CANARY_ACTION)
REVERT_ACTION = "route-revert"
HEAL_ACTIONS = ("heal-restart", "heal-mock", "heal-adapter")
FAILED_STATES = ("Failed", "Crashed")
OUTCOME_ARTIFACT = "canary-outcome"  # the table artifact a canary's run records its conclusion in (tasks.canary)
PROMOTED_PREFIX = "Promotion complete"
ROLLBACK_PREFIX = "Rollback:"
UNHEALTHY = ("failing", "restarting", "restarted", "mocking", "faulted")
RESTORED = ("healthy", "mocked")
LOOKBACK_S = 3600.0  # how far before a heal run its failure may have begun
DAY_S = 86400.0


@dataclass(frozen=True)
class ActionRun:
    """One flow run of the circuit: its action and node (from its tags), final state, start and end (epoch s)."""

    id: str
    action: str
    node: str
    state: str
    started: float | None
    ended: float | None = None
    name: str = ""


@dataclass(frozen=True)
class CanaryOutcome:
    """A canary's final decision, as its run logged it: promoted or rolled back, at ``at``."""

    run_id: str
    node: str
    at: float
    promoted: bool


@dataclass(frozen=True)
class CustodianEvent:
    """One decision of the custodian (``events.jsonl``, kind ``custodian``)."""

    node: str
    status: str
    at: float


def outcome_from_artifact(run: ActionRun, data: object) -> CanaryOutcome | None:
    """The outcome a ``canary-outcome`` artifact of ``run`` records (its data: the table, as JSON text or parsed),
    if it is one."""
    import json

    try:
        rows = json.loads(data) if isinstance(data, str) else data
        row = rows[0]
        outcome, at = row["outcome"], float(row["at"])
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if outcome not in ("promoted", "rolled-back"):
        return None
    return CanaryOutcome(run.id, str(row.get("node") or run.node), at, outcome == "promoted")


def canary_outcome(run: ActionRun, message: str, at: float) -> CanaryOutcome | None:
    """The outcome a log line of ``run`` states, if it states one (runs from before the outcome artifact)."""
    text = message.lstrip()
    if text.startswith(PROMOTED_PREFIX):
        return CanaryOutcome(run.id, run.node, at, True)
    if text.startswith(ROLLBACK_PREFIX):
        return CanaryOutcome(run.id, run.node, at, False)
    return None


def _summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median_s": None, "mean_s": None, "max_s": None}
    return {"count": len(values), "median_s": round(statistics.median(values), 3),
            "mean_s": round(statistics.fmean(values), 3), "max_s": round(max(values), 3)}


@dataclass(frozen=True)
class DoraReport:
    since: float
    until: float
    deployments: dict[str, int]
    lead_times_s: tuple[float, ...]
    changes: int
    failures: dict[str, int]
    restore_times_s: tuple[float, ...]
    open_incidents: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def days(self) -> float:
        return max(self.until - self.since, 1.0) / DAY_S

    @property
    def deployment_count(self) -> int:
        return sum(self.deployments.values())

    @property
    def change_failure_rate(self) -> float | None:
        if not self.changes:
            return None
        return min(1.0, sum(self.failures.values()) / self.changes)

    def to_json(self) -> dict[str, Any]:
        rate = self.change_failure_rate
        return {
            "window": {"since": self.since, "until": self.until, "days": round(self.days, 4)},
            "deployment_frequency": {"deployments": self.deployment_count,
                                     "per_day": round(self.deployment_count / self.days, 3),
                                     "by_kind": dict(sorted(self.deployments.items()))},
            "lead_time": _summary(self.lead_times_s),
            "change_failure_rate": {"changes": self.changes, "failures": sum(self.failures.values()),
                                    "rate": None if rate is None else round(rate, 4),
                                    "by_kind": dict(sorted(self.failures.items()))},
            "time_to_restore": {**_summary(self.restore_times_s), "open": list(self.open_incidents)},
            "notes": list(self.notes),
        }


def _in(at: float | None, since: float, until: float) -> bool:
    return at is not None and since <= at <= until


def _deployments(runs: Sequence[ActionRun], outcomes: Sequence[CanaryOutcome], since: float,
                 until: float) -> tuple[dict[str, int], list[float]]:
    counts: dict[str, int] = {}
    lead: list[float] = []
    for run in runs:
        if run.action in DEPLOY_ACTIONS and run.state == "Completed" and _in(run.ended, since, until):
            counts[run.action] = counts.get(run.action, 0) + 1
            if run.started is not None and run.ended is not None:
                lead.append(max(0.0, run.ended - run.started))
    canaries = sorted((r for r in runs if r.action == CANARY_ACTION and r.started is not None),
                      key=lambda r: r.started or 0.0)
    by_id = {r.id: r for r in runs}
    for outcome in outcomes:
        if not outcome.promoted or not _in(outcome.at, since, until):
            continue
        counts["canary-promotion"] = counts.get("canary-promotion", 0) + 1
        own = by_id.get(outcome.run_id)
        begun = [r for r in canaries if r.node == outcome.node and (r.started or 0.0) <= outcome.at]
        start = begun[-1].started if begun else (own.started if own else None)
        if start is not None:
            lead.append(max(0.0, outcome.at - start))
    return counts, lead


def _failures(runs: Sequence[ActionRun], outcomes: Sequence[CanaryOutcome], since: float,
              until: float) -> tuple[int, dict[str, int]]:
    changes = sum(1 for r in runs if r.action in CHANGE_ACTIONS and r.state in ("Completed", *FAILED_STATES)
                  and _in(r.ended if r.ended is not None else r.started, since, until))
    failed_ids = {r.id for r in runs if r.action in CHANGE_ACTIONS and r.state in FAILED_STATES
                  and _in(r.ended if r.ended is not None else r.started, since, until)}
    failures: dict[str, int] = {}
    for run in runs:
        if run.id in failed_ids:
            key = f"{run.state.lower()}-runs"
            failures[key] = failures.get(key, 0) + 1
        elif run.action == REVERT_ACTION and run.state == "Completed" and _in(run.ended, since, until):
            failures["reverts"] = failures.get("reverts", 0) + 1
    for outcome in outcomes:
        if not outcome.promoted and outcome.run_id not in failed_ids and _in(outcome.at, since, until):
            failures["canary-rollbacks"] = failures.get("canary-rollbacks", 0) + 1
    return changes, failures


def _incidents(runs: Sequence[ActionRun], events: Sequence[CustodianEvent], since: float,
               until: float) -> tuple[list[float], list[str]]:
    """Restore times of the failures the custodian repaired, and the nodes still failing at ``until``."""
    heals = sorted((r for r in runs if r.action in HEAL_ACTIONS and r.started is not None),
                   key=lambda r: r.started or 0.0)
    by_node: dict[str, list[CustodianEvent]] = {}
    for event in sorted(events, key=lambda e: e.at):
        by_node.setdefault(event.node, []).append(event)
    times: list[float] = []
    still: list[str] = []
    handled: set[str] = set()
    for heal in heals:
        if heal.id in handled:
            continue
        node = heal.node or heal.name
        started = heal.started or 0.0
        history = by_node.get(heal.node, [])
        before = [e for e in history if e.at <= started]
        begin = started
        if history:
            # the failure began at the first unhealthy decision after the last restored one before the repair
            i = len(before)
            while i > 0 and before[i - 1].status in UNHEALTHY and started - before[i - 1].at <= LOOKBACK_S:
                i -= 1
            begin = before[i].at if i < len(before) else started
            restored = next((e for e in history if e.at > started and e.status in RESTORED), None)
            end = restored.at if restored else None
        else:
            end = heal.ended if heal.state == "Completed" else None
        # every repair of the same node within this failure belongs to it
        for other in heals:
            if other.node == heal.node and (other.started or 0.0) >= started and (end is None or
                                                                                  (other.started or 0.0) <= end):
                handled.add(other.id)
        if end is None:
            if _in(started, since, until):
                still.append(node)
            continue
        if _in(end, since, until):
            times.append(max(0.0, end - begin))
    return times, sorted(set(still))


def dora_report(runs: Iterable[ActionRun], outcomes: Iterable[CanaryOutcome], events: Iterable[CustodianEvent], *,
                since: float, until: float, events_known: bool = True) -> DoraReport:
    """The four metrics over ``[since, until]``; ``events_known``: whether the custodian's decisions were read
    (if not, restore times are the heal runs' own durations)."""
    runs, outcomes, events = list(runs), list(outcomes), list(events)
    deployments, lead = _deployments(runs, outcomes, since, until)
    changes, failures = _failures(runs, outcomes, since, until)
    restore, still = _incidents(runs, events if events_known else [], since, until)
    notes = []
    if not deployments:
        notes.append("no deployments in the window: no slot, swap, deploy, apply or canary promotion completed.")
    if not changes and not failures:
        notes.append("no changes in the window: the change failure rate is undefined.")
    if not restore and not still:
        notes.append("no failures repaired by the custodian in the window: nothing to restore.")
    if not events_known:
        notes.append("the custodian's decisions (.baton/events.jsonl) were not read: restore times are the heal "
                     "runs' durations.")
    return DoraReport(since, until, deployments, tuple(lead), changes, failures, tuple(restore), tuple(still),
                      tuple(notes))
