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
    in_flight_refusal,
    new_record,
    next_due_at,
    no_data_windows,
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


def test_no_data_waits_an_interval_and_the_window_grows() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    decision = decide(POLICY, observe(record, counters(8, 2), None), 110.0)
    assert decision.reason.startswith("No data yet")
    updated = advanced(record, decision, counters(8, 2), 110.0)
    assert updated.baseline == ZERO  # the window goes on: requests of the next interval add up
    assert not due(updated, 110.0) and not due(updated, 119.9) and due(updated, 120.0)
    assert no_data_windows(updated) == 1
    later = decide(POLICY, observe(updated, counters(30, 6), None), 120.0)
    assert later.weight == 50 and later.evaluated  # 6 requests over two intervals are enough to judge


def drive(record, policy: CanaryPolicy, readings, until: float, every: float = 0.01):
    """A driver as eager as possible: asks at every ``every`` s, evaluates whenever ``due`` says so."""
    now, evaluations = record.started_at, 0
    while now < until and record.in_flight and record.phase not in ("Failed", "Succeeded"):
        if due(record, now):
            reading = readings(evaluations)
            record = advanced(record, decide(policy, observe(record, reading, None), now), reading, now)
            evaluations += 1
        now = round(now + every, 2)
    return record, evaluations


def test_a_canary_without_traffic_is_evaluated_once_per_interval() -> None:
    record, evaluations = drive(new_record(POLICY, "cmd", ZERO, 100.0), POLICY, lambda _: ZERO, until=135.0)
    assert evaluations == 3  # at 110, 120 and 130, however often the driver asked
    assert [d["at"] for d in record.decisions[1:]] == [110.0, 120.0, 130.0]
    assert record.phase == "Progressing" and no_data_windows(record) == 3


def test_a_canary_that_never_gets_traffic_rolls_back_as_inconclusive() -> None:
    policy = CanaryPolicy(steps=(20, 50, 100), interval_s=10.0, min_requests=5, max_no_data_windows=3)
    record, evaluations = drive(new_record(policy, "cmd", ZERO, 100.0), policy, lambda _: counters(50, 1),
                                until=1000.0)
    assert evaluations == 3
    assert (record.phase, record.weight) == ("Failed", 0)
    assert record.last_reason == ("Rollback: inconclusive: the canary served 1 of the 5 requests an evaluation "
                                  "needs in 3 windows of 10 s")


def test_data_between_quiet_windows_starts_the_count_again() -> None:
    policy = CanaryPolicy(steps=(20, 50, 100), interval_s=10.0, min_requests=5, max_no_data_windows=2)
    readings = [ZERO, counters(50, 10), counters(50, 10), counters(50, 10)]
    record, evaluations = drive(new_record(policy, "cmd", ZERO, 100.0), policy, lambda i: readings[i], until=1000.0)
    assert evaluations == 4  # no data, advance to 50 %, no data, inconclusive at the second quiet window
    assert [d["weight"] for d in record.decisions] == [20, 20, 50, 50, 0]
    assert record.last_reason.startswith("Rollback: inconclusive") and "in 2 windows" in record.last_reason


def test_a_paused_canary_is_still_asked_once_per_interval() -> None:
    paused = CanaryPolicy(steps=(20, 50, 100), interval_s=10.0, paused=True)
    record, evaluations = drive(new_record(paused, "cmd", ZERO, 100.0), paused, lambda _: ZERO, until=135.0)
    assert evaluations == 3 and record.phase == "Paused"


def test_an_early_ask_changes_nothing() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    decision = decide(POLICY, observe(record, counters(80, 20), None), 105.0)
    assert decision.early and decision.reason == "Waiting 5 s for the next evaluation"
    assert advanced(record, decision, counters(80, 20), 105.0) == record


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


def test_an_old_record_without_the_no_data_limit_gets_the_default() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    fields = {k: v for k, v in record.policy.items() if k != "max_no_data_windows"}
    assert policy_of(record.model_copy(update={"policy": fields})).max_no_data_windows == 10


def test_the_refusal_names_the_canary_and_how_to_end_it() -> None:
    record = new_record(POLICY, "cmd", ZERO, 100.0)
    message = in_flight_refusal("api", record, "slot api")
    assert message == ("api has a canary in flight (Progressing at 20%) that slot api would undo; end it with "
                       "`baton route revert api`, or add --end-canary to roll it back first.")
