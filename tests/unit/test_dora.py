"""DORA metrics from fixed run records: deployments per day by kind, lead times (a canary's from its start to its
promotion, also when a scheduled tick promoted it), change failure rate (failed and crashed change runs, canary
rollbacks, reverts; capped at 100 %), time to restore (from the custodian's first failure to healthy, or from
the heal runs alone), and "no data" said plainly."""

from __future__ import annotations

import pytest

from baton.telemetry.dora import (
    ActionRun,
    CanaryOutcome,
    CustodianEvent,
    canary_outcome,
    dora_report,
    outcome_from_artifact,
)

DAY = 86400.0
T0 = 1_700_000_000.0


def run(i: int, action: str, state: str = "Completed", start: float = 0.0, took: float = 10.0,
        node: str = "api") -> ActionRun:
    return ActionRun(f"r{i}", action, node, state, T0 + start, T0 + start + took if state != "Running" else None,
                     f"{action}-{node}")


def test_nothing_in_the_window_is_said_plainly() -> None:
    report = dora_report([], [], [], since=T0, until=T0 + 7 * DAY)
    data = report.to_json()
    assert data["deployment_frequency"] == {"deployments": 0, "per_day": 0.0, "by_kind": {}}
    assert data["lead_time"]["count"] == 0 and data["lead_time"]["median_s"] is None
    assert data["change_failure_rate"]["rate"] is None and data["time_to_restore"]["count"] == 0
    assert any(n.startswith("no deployments in the window") for n in data["notes"])
    assert any(n.startswith("no changes in the window") for n in data["notes"])
    assert any(n.startswith("no failures repaired by the custodian") for n in data["notes"])


def test_deployment_frequency_and_lead_time_of_completed_changes() -> None:
    runs = [run(1, "slot", took=4), run(2, "swap", start=100, took=6), run(3, "swap", start=200, took=8),
            run(4, "deploy", start=300, took=60), run(5, "apply", start=400, took=2),
            run(6, "swap", "Failed", start=500), run(7, "route-split", start=600), run(8, "up", start=700),
            run(9, "slot", "Running", start=800), run(10, "slot", start=-DAY)]  # the last one before the window
    report = dora_report(runs, [], [], since=T0 - 1, until=T0 + 2 * DAY - 1)
    data = report.to_json()
    assert data["deployment_frequency"]["by_kind"] == {"apply": 1, "deploy": 1, "slot": 1, "swap": 2}
    assert data["deployment_frequency"]["deployments"] == 5 and data["deployment_frequency"]["per_day"] == 2.5
    assert sorted(report.lead_times_s) == [2.0, 4.0, 6.0, 8.0, 60.0]
    assert data["lead_time"] == {"count": 5, "median_s": 6.0, "mean_s": 16.0, "max_s": 60.0}


def test_a_canary_counts_when_promoted_with_its_lead_time_from_its_start() -> None:
    canary = run(1, "route-canary", start=0, took=5)  # --detach: the run ends at once, the canary goes on
    tick = run(2, "canary-tick", start=300, took=1)
    foreground = run(3, "route-canary", start=1000, took=400, node="web")
    outcomes = [canary_outcome(tick, "Promotion complete: the canary is the only backend (canary ...)", T0 + 301),
                canary_outcome(foreground, "Rollback: error rate 12.0% > 5% (canary ...)", T0 + 1390)]
    assert canary_outcome(tick, "Advance canary weight 10% -> 25%: ...", T0) is None
    report = dora_report([canary, tick, foreground], outcomes, [], since=T0 - 1, until=T0 + DAY)
    data = report.to_json()
    assert data["deployment_frequency"]["by_kind"] == {"canary-promotion": 1}
    assert report.lead_times_s == (301.0,)
    assert data["change_failure_rate"] == {"changes": 2, "failures": 1, "rate": 0.5,
                                           "by_kind": {"canary-rollbacks": 1}}


def test_a_canary_outcome_is_read_from_its_runs_artifact() -> None:
    import json

    tick = run(2, "canary-tick", start=300, took=1)
    table = [{"node": "api", "outcome": "promoted", "at": T0 + 301, "weight": 100}]
    assert outcome_from_artifact(tick, json.dumps(table)) == CanaryOutcome("r2", "api", T0 + 301, True)
    assert outcome_from_artifact(tick, [{**table[0], "outcome": "rolled-back"}]).promoted is False  # type: ignore[union-attr]
    for broken in ("not json", "[]", json.dumps([{"outcome": "promoted"}]), json.dumps([{**table[0], "outcome": "?"}]),
                   None, 42):
        assert outcome_from_artifact(tick, broken) is None


def test_change_failure_rate_counts_failed_crashed_rollbacks_and_reverts_once_each() -> None:
    runs = [run(1, "slot"), run(2, "swap", start=10), run(3, "swap", "Failed", start=20),
            run(4, "deploy", "Crashed", start=30), run(5, "route-revert", start=40), run(6, "route-canary", "Failed",
                                                                                         start=50),
            run(7, "route-revert", "Failed", start=60), run(8, "cert-check", "Failed", start=70)]
    rollback_in_failed_run = CanaryOutcome("r6", "api", T0 + 55, promoted=False)
    report = dora_report(runs, [rollback_in_failed_run], [], since=T0 - 1, until=T0 + DAY)
    data = report.to_json()["change_failure_rate"]
    assert data["changes"] == 5  # slot, swap, failed swap, crashed deploy, failed canary
    assert data["by_kind"] == {"crashed-runs": 1, "failed-runs": 2, "reverts": 1}
    assert data["failures"] == 4 and data["rate"] == 0.8


def test_the_rate_never_passes_100_percent() -> None:
    runs = [run(1, "swap"), *(run(i, "route-revert", start=10 * i) for i in range(2, 6))]
    assert dora_report(runs, [], [], since=T0 - 1, until=T0 + DAY).change_failure_rate == 1.0


def test_time_to_restore_from_the_custodians_first_failure_to_healthy() -> None:
    events = [CustodianEvent("api", s, T0 + at) for s, at in [
        ("healthy", 0), ("failing", 100), ("failing", 105), ("failing", 110), ("restarting", 111),
        ("failing", 130), ("restarting", 131), ("restarted", 140), ("healthy", 145),  # two repairs, one failure
        ("failing", 1000), ("mocking", 1030), ("mocked", 1040),  # served from its mock: restored
        ("failing", 5000), ("restarting", 5010)]]  # still failing at the end of the window
    runs = [run(1, "heal-restart", start=111, took=5), run(2, "heal-restart", start=131, took=5),
            run(3, "heal-mock", start=1030, took=8), run(4, "heal-restart", "Failed", start=5010, took=3)]
    other = [CustodianEvent("web", "failing", T0 + 50), CustodianEvent("web", "healthy", T0 + 60)]  # not repaired
    report = dora_report(runs, [], events + other, since=T0 - 1, until=T0 + DAY)
    data = report.to_json()["time_to_restore"]
    assert sorted(report.restore_times_s) == [40.0, 45.0]
    assert data["count"] == 2 and data["open"] == ["api"] and data["median_s"] == 42.5


def test_without_the_custodians_decisions_the_heal_runs_durations_are_used() -> None:
    runs = [run(1, "heal-restart", start=10, took=7), run(2, "heal-adapter", start=50, took=3, node=""),
            run(3, "heal-mock", "Failed", start=90, took=2, node="web")]
    report = dora_report(runs, [], [CustodianEvent("api", "failing", T0)], since=T0 - 1, until=T0 + DAY,
                         events_known=False)
    assert sorted(report.restore_times_s) == [3.0, 7.0] and report.open_incidents == ("web",)
    assert any("restore times are the heal runs' durations" in n for n in report.notes)


@pytest.mark.parametrize("window_days", [1, 7, 30])
def test_per_day_divides_by_the_window(window_days: int) -> None:
    runs = [run(i, "swap", start=i * 60) for i in range(14)]
    data = dora_report(runs, [], [], since=T0 - 1, until=T0 - 1 + window_days * DAY).to_json()
    assert data["deployment_frequency"]["per_day"] == round(14 / window_days, 3)


def test_prefect_times_read_as_epoch_seconds() -> None:
    from baton.history import epoch

    assert epoch("2024-01-01T00:00:00Z") == 1704067200.0
    assert epoch("2024-01-01T00:00:00.500000+00:00") == 1704067200.5
    assert epoch("2024-01-01T00:00:00") == 1704067200.0  # no zone: UTC, as the API means it
    assert epoch("") is None and epoch(None) is None and epoch("yesterday") is None
