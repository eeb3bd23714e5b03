"""Table tests of the canary decision: every phase transition, no data, threshold edges, stable comparison."""

from __future__ import annotations

import pytest

from baton.canary import CanaryPolicy, Decision, Observation, Phase, TargetStats, after, decide, next_weight

P = CanaryPolicy()
NOW = 1000.0


def obs(phase=Phase.PROGRESSING, weight=10, canary=(100, 0, 100.0), stable=(900, 0, 100.0), started=900.0,
        last=900.0, failed=0, gate=None, no_data=0) -> Observation:
    return Observation(phase, weight, TargetStats(*canary), TargetStats(*stable), started, last, failed, gate, no_data)


CASES = [
    # name, policy, observation, expected phase, weight, reason fragment
    ("initializing starts at the first step", P, obs(Phase.INITIALIZING, 0), Phase.PROGRESSING, 10,
     "Starting canary at 10%"),
    ("healthy advances to the next step", P, obs(), Phase.PROGRESSING, 25, "Advance canary weight 10% -> 25%"),
    ("healthy at 50 promotes", P, obs(weight=50), Phase.PROMOTING, 100, "Promoting"),
    ("promoting succeeds", P, obs(Phase.PROMOTING, 100), Phase.SUCCEEDED, 100, "Promotion complete"),
    ("succeeded stays", P, obs(Phase.SUCCEEDED, 100), Phase.SUCCEEDED, 100, "already succeeded"),
    ("failed stays", P, obs(Phase.FAILED, 0), Phase.FAILED, 0, "already failed"),
    ("paused holds the weight", CanaryPolicy(paused=True), obs(weight=25), Phase.PAUSED, 25, "Paused at 25%"),
    ("no data is not failing", P, obs(canary=(19, 19, None)), Phase.PROGRESSING, 10, "No data yet"),
    ("no data counts its windows", P, obs(canary=(3, 0, None), no_data=8), Phase.PROGRESSING, 10,
     "served 3 of the 20 requests an evaluation needs (window 9 of 10)"),
    ("the last window without data is inconclusive", P, obs(canary=(3, 0, None), no_data=9), Phase.FAILED, 0,
     "Rollback: inconclusive: the canary served 3 of the 20 requests an evaluation needs in 10 windows of 30 s"),
    ("a lower limit of windows without data", CanaryPolicy(max_no_data_windows=1), obs(canary=(0, 0, None)),
     Phase.FAILED, 0, "inconclusive"),
    ("error rate over the threshold rolls back", P, obs(canary=(100, 9, 100.0)), Phase.FAILED, 0,
     "Rollback: canary error rate 9.0% > 5%"),
    ("error rate at the threshold passes", P, obs(canary=(100, 5, 100.0), stable=(900, 45, 100.0)),
     Phase.PROGRESSING, 25, "error rate 5.0% <= 5%"),
    ("refused connections are errors", P, obs(canary=(40, 40, None)), Phase.FAILED, 0,
     "canary error rate 100.0% > 5%"),
    ("p99 over the threshold rolls back", P, obs(canary=(100, 0, 501.0), stable=(900, 0, 480.0)), Phase.FAILED, 0,
     "canary p99 latency 501 ms > 500 ms"),
    ("p99 at the threshold passes", P, obs(canary=(100, 0, 500.0), stable=(900, 0, 450.0)), Phase.PROGRESSING, 25,
     "Advance"),
    ("worse than stable by more than the margin", P, obs(canary=(100, 4, 100.0), stable=(900, 9, 100.0)),
     Phase.FAILED, 0, "exceeds stable's 1.0% by more than 2 points"),
    ("slower than stable by more than the margin", P, obs(canary=(100, 0, 400.0), stable=(900, 0, 100.0)),
     Phase.FAILED, 0, "exceeds stable's 100 ms by more than 50%"),
    ("a few milliseconds slower than stable is noise", P, obs(canary=(100, 0, 5.0), stable=(900, 0, 1.0)),
     Phase.PROGRESSING, 25, "Advance"),
    ("stable without data is not compared", P, obs(canary=(100, 4, 400.0), stable=(5, 0, 1.0)), Phase.PROGRESSING,
     25, "Advance"),
    ("a failed check holds before the rollback", CanaryPolicy(failed_checks_before_rollback=2),
     obs(canary=(100, 50, 100.0)), Phase.PROGRESSING, 10, "Halt advancement: canary error rate 50.0% > 5% "
                                                          "(failed check 1 of 2)"),
    ("the second failed check rolls back", CanaryPolicy(failed_checks_before_rollback=2),
     obs(canary=(100, 50, 100.0), failed=1), Phase.FAILED, 0, "Rollback"),
    ("before the interval it waits", P, obs(last=990.0), Phase.PROGRESSING, 10, "Waiting 20 s"),
    ("past the maximum duration it rolls back", P, obs(started=NOW - 3601), Phase.FAILED, 0,
     "maximum duration of 3600 s"),
    ("a closed gate halts", P, obs(gate=False), Phase.PROGRESSING, 10, "confirm-promotion gate"),
    ("an open gate advances", P, obs(gate=True), Phase.PROGRESSING, 25, "Advance"),
    ("custom steps", CanaryPolicy(steps=(5, 50)), obs(weight=5), Phase.PROGRESSING, 50, "5% -> 50%"),
]


@pytest.mark.parametrize(("name", "policy", "observation", "phase", "weight", "reason"), CASES, ids=[c[0] for c in CASES])
def test_decide(name, policy, observation, phase, weight, reason) -> None:
    decision = decide(policy, observation, NOW)
    assert (decision.phase, decision.weight) == (phase, weight), decision.reason
    assert reason in decision.reason


def test_steps_are_targets_and_end_at_100() -> None:
    assert next_weight(P, 0) == 10 and next_weight(P, 10) == 25 and next_weight(P, 60) == 100
    assert CanaryPolicy(steps=(20, 40)).steps == (20, 40, 100)
    with pytest.raises(ValueError, match="steps must rise strictly within 1-100 like 10,25,50,100, found 50,20"):
        CanaryPolicy(steps=(50, 20))


@pytest.mark.parametrize(("fields", "message"), [
    ({"interval_s": 0}, "interval_s 0 must be positive"),
    ({"latency_threshold_ms": -1}, "latency_threshold_ms -1 must be positive"),
    ({"error_threshold_pct": -5}, "error_threshold_pct must lie within 0-100, found -5"),
    ({"max_no_data_windows": 0}, "max_no_data_windows must lie within 1-40, found 0"),
    ({"steps": (0, 50)}, "found 0,50"),
])
def test_a_policy_refuses_what_cannot_work(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        CanaryPolicy(**fields)


def test_a_no_data_window_waits_an_interval_and_keeps_counting() -> None:
    quiet = obs(canary=(0, 0, None))
    carried = after(decide(P, quiet, NOW), quiet, NOW)
    assert (carried.last_step_at, carried.no_data_windows, carried.weight) == (NOW, 1, 10)
    assert decide(P, carried, NOW + 1).early  # asked again at once: nothing is evaluated
    assert after(decide(P, carried, NOW + 1), carried, NOW + 1) == carried


def test_a_judged_window_starts_a_new_one_and_waiting_keeps_it() -> None:
    start = obs()
    moved = after(decide(P, start, NOW), start, NOW)
    assert (moved.weight, moved.last_step_at, moved.canary.requests) == (25, NOW, 0)
    waiting = obs(last=990.0)
    kept = after(decide(P, waiting, NOW), waiting, NOW)
    assert kept == waiting


def test_a_full_healthy_run_promotes_in_order() -> None:
    state, now, weights = obs(Phase.INITIALIZING, 0, started=0.0, last=0.0), 0.0, []
    for _ in range(10):
        decision: Decision = decide(P, state, now)
        weights.append(decision.weight)
        state = after(decision, state, now)
        if decision.done:
            break
        now += P.interval_s
        state = Observation(state.phase, state.weight, TargetStats(100, 0, 50.0), TargetStats(100, 0, 50.0),
                            state.started_at, state.last_step_at, state.failed_checks)
    assert weights == [10, 25, 50, 100, 100] and state.phase is Phase.SUCCEEDED
