"""Canary analysis as a pure decision: ``decide(policy, observation, now) -> Decision``.

One step per evaluation, explicit phases, pure weight arithmetic, and a reason
for every decision that reads like Flagger's ("Halt advancement: canary error
rate 9.0% > 5%"). "No data yet" is kept apart from "failing"; connection
failures count as errors (the adapter counts every attempt); the canary is also
compared with the stable version it would replace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

from baton.state import CanaryRecord, CircuitState

__all__ = ["earliest_due", "TERMINAL", "Phase", "CanaryPolicy", "TargetStats", "Observation", "Decision", "decide", "next_weight", "policy_of",
           "policy_fields", "new_record", "window", "due", "next_due_at", "observe", "advanced", "aborted",
           "no_data_windows", "in_flight_refusal", "MAX_NO_DATA_WINDOWS"]


class Phase(StrEnum):
    INITIALIZING = "Initializing"
    PROGRESSING = "Progressing"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PAUSED = "Paused"


TERMINAL = (Phase.SUCCEEDED, Phase.FAILED)
DECISIONS_KEPT = 50
MAX_NO_DATA_WINDOWS = 40  # counted from the decision log, which keeps the last DECISIONS_KEPT entries


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[int, ...] = (10, 25, 50, 100)
    error_threshold_pct: float = 5.0
    latency_threshold_ms: float = 500.0
    min_requests: int = 20
    interval_s: float = 30.0
    stable_error_margin_pct: float = 2.0  # canary error rate may exceed stable's by this many points
    stable_latency_margin_pct: float = 50.0  # canary p99 may exceed stable's by this share...
    stable_latency_floor_ms: float = 50.0  # ...and always by this much (1 ms vs 5 ms is noise, not a regression)
    failed_checks_before_rollback: int = 1
    max_duration_s: float = 3600.0
    max_no_data_windows: int = 10  # windows in a row without min_requests before rolling back as inconclusive
    paused: bool = False

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise ValueError(f"steps must rise strictly within 1-100 like 10,25,50,100, found "
                             f"{','.join(str(s) for s in self.steps) or 'none'}")
        if self.steps[-1] != 100:
            object.__setattr__(self, "steps", (*self.steps, 100))
        positive = {"failed_checks_before_rollback": self.failed_checks_before_rollback,
                    "min_requests": self.min_requests, "interval_s": self.interval_s,
                    "latency_threshold_ms": self.latency_threshold_ms, "max_duration_s": self.max_duration_s}
        wrong = [f"{name} {value:g}" for name, value in positive.items() if not value > 0]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} must be positive")
        if not 0 <= self.error_threshold_pct <= 100:
            raise ValueError(f"error_threshold_pct must lie within 0-100, found {self.error_threshold_pct:g}")
        if not 1 <= self.max_no_data_windows <= MAX_NO_DATA_WINDOWS:
            raise ValueError(f"max_no_data_windows must lie within 1-{MAX_NO_DATA_WINDOWS}, "
                             f"found {self.max_no_data_windows}")


@dataclass(frozen=True)
class TargetStats:
    """What one target served during the evaluation window (errors include refused connections)."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None

    @property
    def error_rate_pct(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Observation:
    phase: Phase
    weight: int  # the canary's current share
    canary: TargetStats = field(default_factory=TargetStats)
    stable: TargetStats = field(default_factory=TargetStats)
    started_at: float = 0.0
    last_step_at: float = 0.0
    failed_checks: int = 0
    gate_open: bool | None = None  # None: no pre-promotion gate configured
    no_data_windows: int = 0  # evaluations in a row, just before this one, that found too few requests


@dataclass(frozen=True)
class Decision:
    phase: Phase
    weight: int
    reason: str
    failed_checks: int = 0
    evaluated: bool = False  # the window's figures were judged (the caller starts a new window)
    no_data: bool = False  # too few requests to judge: the window goes on growing
    early: bool = False  # asked before the interval was up: nothing was evaluated, the schedule stands

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL


def next_weight(policy: CanaryPolicy, weight: int) -> int:
    """The first step above ``weight`` (steps are targets, never increments)."""
    return next((s for s in policy.steps if s > weight), 100)


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _problems(policy: CanaryPolicy, canary: TargetStats, stable: TargetStats) -> list[str]:
    problems = []
    rate = canary.error_rate_pct
    if rate > policy.error_threshold_pct:
        problems.append(f"canary error rate {rate:.1f}% > {policy.error_threshold_pct:g}%")
    if canary.p99_ms is not None and canary.p99_ms > policy.latency_threshold_ms:
        problems.append(f"canary p99 latency {_fmt_ms(canary.p99_ms)} > {policy.latency_threshold_ms:g} ms")
    if stable.requests >= policy.min_requests:  # relative checks only where the absolute ones passed
        if not problems and rate > stable.error_rate_pct + policy.stable_error_margin_pct:
            problems.append(f"canary error rate {rate:.1f}% exceeds stable's {stable.error_rate_pct:.1f}% "
                            f"by more than {policy.stable_error_margin_pct:g} points")
        slow = canary.p99_ms is not None and canary.p99_ms > policy.latency_threshold_ms
        if not slow and canary.p99_ms is not None and stable.p99_ms is not None and \
                canary.p99_ms > stable.p99_ms * (1 + policy.stable_latency_margin_pct / 100) and \
                canary.p99_ms - stable.p99_ms > policy.stable_latency_floor_ms:
            problems.append(f"canary p99 {_fmt_ms(canary.p99_ms)} exceeds stable's {_fmt_ms(stable.p99_ms)} "
                            f"by more than {policy.stable_latency_margin_pct:g}%")
    return problems


def decide(policy: CanaryPolicy, observation: Observation, now: float) -> Decision:
    """One step of the canary: advance, hold, promote, or roll back, with the reason."""
    obs = observation
    if obs.phase in TERMINAL:
        return Decision(obs.phase, obs.weight, f"Canary already {obs.phase.value.lower()}", obs.failed_checks)
    if policy.paused or obs.phase is Phase.PAUSED:
        return Decision(Phase.PAUSED, obs.weight, f"Paused at {obs.weight}%: no analysis until resumed",
                        obs.failed_checks)
    if obs.phase is Phase.INITIALIZING:
        first = policy.steps[0]
        return Decision(Phase.PROGRESSING, first, f"Starting canary at {first}%")
    if obs.phase is Phase.PROMOTING:
        return Decision(Phase.SUCCEEDED, 100, "Promotion complete: the canary is the only backend")
    if now - obs.started_at > policy.max_duration_s:
        return Decision(Phase.FAILED, 0, f"Rollback: canary still at {obs.weight}% after the maximum duration of "
                                         f"{policy.max_duration_s:g} s", obs.failed_checks)
    if now - obs.last_step_at < policy.interval_s:
        wait = policy.interval_s - (now - obs.last_step_at)
        return Decision(Phase.PROGRESSING, obs.weight, f"Waiting {wait:.0f} s for the next evaluation",
                        obs.failed_checks, early=True)
    canary = obs.canary
    if canary.requests < policy.min_requests:
        windows = obs.no_data_windows + 1
        served = f"the canary served {canary.requests} of the {policy.min_requests} requests an evaluation needs"
        if windows >= policy.max_no_data_windows:
            return Decision(Phase.FAILED, 0, f"Rollback: inconclusive: {served} in {windows} windows of "
                                             f"{policy.interval_s:g} s", obs.failed_checks, no_data=True)
        return Decision(Phase.PROGRESSING, obs.weight, f"No data yet: {served} (window {windows} of "
                                                       f"{policy.max_no_data_windows})",
                        obs.failed_checks, no_data=True)
    problems = _problems(policy, canary, obs.stable)
    if problems:
        failed = obs.failed_checks + 1
        if failed >= policy.failed_checks_before_rollback:
            return Decision(Phase.FAILED, 0, f"Rollback: {'; '.join(problems)}", failed, evaluated=True)
        return Decision(Phase.PROGRESSING, obs.weight, f"Halt advancement: {'; '.join(problems)} (failed check "
                                                       f"{failed} of {policy.failed_checks_before_rollback})",
                        failed, evaluated=True)
    if obs.gate_open is False:
        return Decision(Phase.PROGRESSING, obs.weight, "Halt advancement: the confirm-promotion gate did not "
                                                       "answer 2xx", obs.failed_checks, evaluated=True)
    target = next_weight(policy, obs.weight)
    figures = (f"error rate {canary.error_rate_pct:.1f}% <= {policy.error_threshold_pct:g}%, "
               f"p99 {_fmt_ms(canary.p99_ms)} <= {policy.latency_threshold_ms:g} ms, {canary.requests} requests")
    if target >= 100:
        return Decision(Phase.PROMOTING, 100, f"Promoting: {figures}", 0, evaluated=True)
    return Decision(Phase.PROGRESSING, target, f"Advance canary weight {obs.weight}% -> {target}%: {figures}", 0,
                    evaluated=True)


def after(decision: Decision, observation: Observation, now: float) -> Observation:
    """The observation state carried into the next evaluation: the next one is due an interval after this one,
    whatever it decided (an early ask changes nothing); the window starts again when it was judged or the weight
    moved, and grows on while there was no data."""
    if decision.early:
        return observation
    moved = decision.weight != observation.weight or decision.evaluated
    return replace(observation, phase=decision.phase, weight=decision.weight, failed_checks=decision.failed_checks,
                   last_step_at=now, canary=TargetStats() if moved else observation.canary,
                   stable=TargetStats() if moved else observation.stable,
                   no_data_windows=observation.no_data_windows + 1 if decision.no_data else 0)


# --- a persisted canary (baton.state.CanaryRecord) advanced one evaluation at a time -------------------------


def policy_of(record: CanaryRecord) -> CanaryPolicy:
    return CanaryPolicy(**{**record.policy, "steps": tuple(record.policy["steps"])})


def policy_fields(policy: CanaryPolicy) -> dict[str, object]:
    """A policy as plain JSON fields (persisted in the record, passed to tasks)."""
    return {**asdict(policy), "steps": list(policy.steps)}


def new_record(policy: CanaryPolicy, command: str, counters: dict[str, dict[str, object]], now: float, *,
               gate_url: str | None = None, keep_warm_s: float = 0.0, actor: str = "") -> CanaryRecord:
    """A canary that has just started at the policy's first step; its first window begins now."""
    return CanaryRecord(command=command, policy=policy_fields(policy), gate_url=gate_url, keep_warm_s=keep_warm_s,
                        phase=Phase.PROGRESSING.value, weight=policy.steps[0], started_at=now, last_step_at=now,
                        baseline=counters, actor=actor,
                        decisions=[{"at": now, "phase": Phase.PROGRESSING.value, "weight": policy.steps[0],
                                    "reason": f"Starting canary at {policy.steps[0]}%"}])


def window(before: dict[str, object] | None, now: dict[str, object]) -> TargetStats:
    """What a target served between two readings of its cumulative counters (a restarted adapter starts from 0)."""
    before = before or {}
    base_requests, base_errors = int(before.get("requests") or 0), int(before.get("errors") or 0)
    requests, errors = int(now.get("requests") or 0), int(now.get("errors") or 0)
    if requests < base_requests or errors < base_errors:  # counters were reset: the whole reading is the window
        base_requests = base_errors = 0
    p99 = now.get("p99_ms")
    return TargetStats(requests=requests - base_requests, errors=errors - base_errors,
                       p99_ms=float(p99) if p99 is not None else None)


def due(record: CanaryRecord, now: float) -> bool:
    """An evaluation is due: the canary is in flight and one interval has passed since its window began."""
    if record.concluded:
        return False
    if Phase(record.phase) in TERMINAL:  # decided but not yet concluded: conclude at once
        return True
    return now - record.last_step_at >= float(record.policy["interval_s"])


def next_due_at(record: CanaryRecord) -> float:
    return record.last_step_at + float(record.policy["interval_s"])


def earliest_due(state: CircuitState, now: float) -> float | None:
    """When the conductor next has canary work: the earliest evaluation of an in-flight canary, or the end of a
    version kept warm; None when there is nothing to do (no tick runs, nothing is spawned)."""
    moments = [next_due_at(n.canary) for n in state.adapters.values() if n.canary is not None and n.canary.in_flight]
    moments += [n.warm_until for n in state.adapters.values() if n.warm is not None]
    return min(moments) if moments else None


def no_data_windows(record: CanaryRecord) -> int:
    """How many evaluations in a row, the latest last, found too few requests to judge."""
    count = 0
    for entry in reversed(record.decisions):
        if not entry.get("no_data"):
            break
        count += 1
    return count


def observe(record: CanaryRecord, counters: dict[str, dict[str, object]], gate_open: bool | None) -> Observation:
    return Observation(phase=Phase(record.phase), weight=record.weight,
                       canary=window(record.baseline.get("canary"), counters["canary"]),
                       stable=window(record.baseline.get("stable"), counters["stable"]),
                       started_at=record.started_at, last_step_at=record.last_step_at,
                       failed_checks=record.failed_checks, gate_open=gate_open,
                       no_data_windows=no_data_windows(record))


def advanced(record: CanaryRecord, decision: Decision, counters: dict[str, dict[str, object]],
             now: float) -> CanaryRecord:
    """The record after one evaluation. Whatever it decided, the next one is due an interval from now (``last_step_at``);
    the window (``baseline``) starts again when the figures were judged or the weight or phase moved, and grows on
    while there was no data. An early ask (before the interval was up) changes nothing."""
    if decision.early:
        return record
    moved = decision.evaluated or decision.weight != record.weight or decision.phase.value != record.phase
    entry = {"at": now, "phase": decision.phase.value, "weight": decision.weight, "reason": decision.reason,
             **({"no_data": True} if decision.no_data else {})}
    return record.model_copy(update={
        "phase": decision.phase.value, "weight": decision.weight, "failed_checks": decision.failed_checks,
        "last_step_at": now, "baseline": counters if moved else record.baseline,
        "decisions": [*record.decisions, entry][-DECISIONS_KEPT:],
    })


def in_flight_refusal(node: str, record: CanaryRecord, action: str) -> str:
    """Why ``action`` may not change ``node`` while its canary is in flight, and how to go on (one sentence)."""
    return (f"{node} has a canary in flight ({record.phase} at {record.weight}%) that {action} would undo; end it "
            f"with `baton route revert {node}`, or add --end-canary to roll it back first.")


def aborted(record: CanaryRecord, reason: str, now: float) -> CanaryRecord:
    """A canary stopped by hand (``baton route revert``): it rolls back."""
    entry = {"at": now, "phase": Phase.FAILED.value, "weight": 0, "reason": reason}
    return record.model_copy(update={"phase": Phase.FAILED.value, "weight": 0,
                                     "decisions": [*record.decisions, entry][-DECISIONS_KEPT:]})
