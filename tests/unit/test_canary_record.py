"""The persisted canary record advanced one evaluation at a time (pure functions of baton.canary)."""

from __future__ import annotations

from baton.canary import (
    CanaryPolicy,
    Decision,
    Phase,
    aborted,
    advanced,
    decide,
    due,
    new_record,
    next_due_at,
    observe,
    policy_of,
    window,
)

POLICY = CanaryPolicy(steps=(20, 50, 100), interval_s=10.0, min_requests=5)
ZERO = {"stable": {"requests": 0, "errors": 0, "p99_ms": None}, "canary": {"requests": 0, "errors": 0, "p99_ms": None}}


def counters(stable: int, canary: int, canary_errors: int = 0, p99: float = 10.0) -> dict:
    return {"stable": {"requests": stable, "errors": 0, "p99_ms": p99},
            "canary": {"requests": canary, "errors": canary_errors, "p99_ms": p99}}


def test_a_new_record_starts_at_the_first_step_with_its_window_open() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0, keep_warm_s=30, actor="ann")
    assert (record.phase, record.weight, record.last_step_at, record.keep_warm_s) == ("Progressing", 20, 100.0, 30)
    assert policy_of(record) == POLICY
    assert record.decisions[0]["reason"] == "Starting canary at 20%"


def test_an_evaluation_is_due_one_interval_after_the_window_opened() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    assert not due(record, 109.9) and due(record, 110.0) and next_due_at(record) == 110.0
    assert not due(record.model_copy(update={"concluded": True}), 500.0)
    decided = record.model_copy(update={"phase": "Failed"})
    assert due(decided, 100.0)  # decided but not concluded: conclude at once


def test_the_window_is_the_difference_of_cumulative_counters() -> None:
    stats = window({"requests": 100, "errors": 2}, {"requests": 160, "errors": 5, "p99_ms": 12})
    assert (stats.requests, stats.errors, stats.p99_ms) == (60, 3, 12.0)


def test_a_restarted_adapter_counts_from_zero() -> None:
    stats = window({"requests": 500, "errors": 9}, {"requests": 40, "errors": 1, "p99_ms": None})
    assert (stats.requests, stats.errors) == (40, 1)


def test_advancing_opens_a_new_window_and_keeps_the_reason() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    now_counters = counters(80, 20)
    decision = decide(POLICY, observe(record, now_counters, None), 110.0)
    assert decision.weight == 50
    updated = advanced(record, decision, now_counters, 110.0)
    assert (updated.weight, updated.last_step_at, updated.baseline) == (50, 110.0, now_counters)
    assert updated.decisions[-1]["reason"].startswith("Advance canary weight 20% -> 50%")


def test_no_data_keeps_the_window_open() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    decision = decide(POLICY, observe(record, counters(8, 2), None), 110.0)
    assert decision.reason.startswith("No data yet")
    updated = advanced(record, decision, counters(8, 2), 110.0)
    assert updated.last_step_at == 100.0 and updated.baseline == ZERO


def test_a_failing_window_rolls_back() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    decision = decide(POLICY, observe(record, counters(80, 20, canary_errors=20), None), 110.0)
    updated = advanced(record, decision, counters(80, 20, 20), 110.0)
    assert (updated.phase, updated.weight) == ("Failed", 0)


def test_the_decision_log_is_bounded() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    for i in range(200):
        record = advanced(record, Decision(Phase.PROGRESSING, 20, f"No data yet {i}"), ZERO, 100.0 + i)
    assert len(record.decisions) == 50 and record.decisions[-1]["reason"] == "No data yet 199"


def test_a_revert_by_hand_rolls_back() -> None:
    record = aborted(new_record(POLICY, "cmd", ZERO, 100.0), "Rollback: reverted by ann at 20%", 105.0)
    assert (record.phase, record.weight, record.in_flight) == ("Failed", 0, True)
    assert record.decisions[-1]["reason"] == "Rollback: reverted by ann at 20%"
