"""The custodian core driven by synthetic events and an injected clock (no sleeps)."""

from __future__ import annotations

import asyncio
import json

import pytest

from baton.custodian import Command, CustodianCore, CustodyPolicy, ProbeResult, RepairFinished, Status, Tick
from baton.custodian.events import RoutingSeen
from baton.custodian.core import ProviderGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(deps=None, **kwargs):
    clock = Clock()
    launched = []
    saved = []
    core = CustodianCore(deps or {"api": [], "db": []}, clock=clock, launch=launched.append,
                         save=lambda snap: saved.append(json.loads(json.dumps(snap))), **kwargs)
    return core, clock, launched, saved


def fail(core, node="api", n=1, detail="connection refused"):
    for _ in range(n):
        core.step(ProbeResult(node, ok=False, detail=detail, incarnation="p1", command="run api"))


def ok(core, node="api"):
    core.step(ProbeResult(node, ok=True, incarnation="p2", command="run api"))


def finish(core, order, ok_=True, detail="", blame="service"):
    core.step(RepairFinished(order.node, order.kind, order.repair_id, ok_, detail, blame))


def mocked(core, launched) -> None:
    """Drive ``api`` to mocked: a restart that fails, then the mock."""
    fail(core, n=3)
    finish(core, launched[-1], ok_=False)
    fail(core, n=3)
    finish(core, launched[-1])
    assert core.nodes["api"].status is Status.MOCKED


def test_a_healthy_node_stays_healthy() -> None:
    core, _, launched, _ = make()
    ok(core)
    assert core.nodes["api"].status is Status.HEALTHY and not launched


def test_failures_below_the_threshold_only_mark_it_failing() -> None:
    core, _, launched, _ = make()
    ok(core)
    fail(core, n=2)
    custody = core.nodes["api"]
    assert custody.status is Status.FAILING and custody.failures == 2 and not launched
    assert "(2 in a row)" in custody.reason


def test_three_failures_restart_and_a_healthy_probe_confirms() -> None:
    core, _, launched, _ = make()
    fail(core, n=3)
    assert [o.kind for o in launched] == ["restart"] and launched[0].command == "run api"
    assert core.nodes["api"].status is Status.RESTARTING
    fail(core, n=2)  # the old instance's probes while it is replaced say nothing
    assert core.nodes["api"].failures == 3
    finish(core, launched[0])
    assert core.nodes["api"].status is Status.RESTARTED
    ok(core)
    custody = core.nodes["api"]
    assert custody.status is Status.HEALTHY and custody.reason == "recovered"
    assert custody.failures == 0 and custody.failed_restarts == 0


def test_a_restart_that_fails_backs_off_doubling_then_mocks_at_six() -> None:
    core, clock, launched, _ = make()
    fail(core, n=3)
    finish(core, launched[0], ok_=False, detail="exited before it was ready")
    custody = core.nodes["api"]
    assert custody.failed_restarts == 1 and custody.backoff_s == 1.0 and custody.next_attempt_at == clock.now + 1
    assert "next attempt in 1 s" in custody.reason
    fail(core)  # 4: backoff not over
    assert len(launched) == 1
    clock.advance(1.0)
    fail(core)  # 5: restart 2
    assert [o.kind for o in launched] == ["restart", "restart"]
    finish(core, launched[1], ok_=False, detail="exited")
    assert custody.backoff_s == 2.0
    fail(core)  # 6 failures and failed restarts: the counter was not reset by the restarts
    assert [o.kind for o in launched] == ["restart", "restart", "mock"]
    assert custody.status is Status.MOCKING
    finish(core, launched[2])
    assert custody.status is Status.MOCKED and "after 2 failed restarts" in custody.reason


def test_backoff_is_capped_and_resets_after_ten_healthy_minutes() -> None:
    core, clock, launched, _ = make(policy=CustodyPolicy(mock_after=100))
    fail(core, n=3)
    for _ in range(12):
        order = launched[-1]
        finish(core, order, ok_=False, detail="exited")
        clock.advance(core.nodes["api"].backoff_s)
        fail(core)
    assert core.nodes["api"].backoff_s == 300.0
    finish(core, launched[-1])
    ok(core)
    custody = core.nodes["api"]
    assert custody.status is Status.HEALTHY and custody.backoff_s == 300.0
    clock.advance(599)
    core.step(Tick())
    assert custody.backoff_s == 300.0
    clock.advance(1)
    core.step(Tick())
    assert custody.backoff_s == 0.0 and custody.next_attempt_at == 0.0


def test_a_restarted_service_that_fails_again_counts_as_a_failed_restart() -> None:
    core, _, launched, _ = make()
    fail(core, n=3)
    finish(core, launched[0])
    fail(core)
    custody = core.nodes["api"]
    assert custody.failed_restarts == 1 and custody.backoff_s == 1.0 and custody.status is Status.FAILING


def test_a_failure_explained_by_a_dependency_is_not_restarted() -> None:
    core, _, launched, _ = make({"web": ["api"], "api": []})
    ok(core, "web")
    fail(core, "api", n=1)
    fail(core, "web", n=5)
    web = core.nodes["web"]
    assert web.status is Status.WAITING and web.waiting_on == "api" and "dependency api is failing" in web.reason
    assert [o.node for o in launched] == []
    fail(core, "api", n=2)  # api itself reaches its threshold
    assert [o.node for o in launched] == ["api"]
    finish(core, launched[0])
    ok(core, "api")
    assert web.status is Status.FAILING and web.failures == 0  # what failed while api failed does not count
    fail(core, "web", n=2)
    assert [o.node for o in launched] == ["api"]
    fail(core, "web")  # three of its own
    assert [o.node for o in launched] == ["api", "web"]


def test_dependents_of_a_faulted_node_are_degraded_not_restarted() -> None:
    core, _, launched, _ = make({"web": ["api"], "api": []})
    ok(core, "web")
    fail(core, "api", n=3)
    finish(core, launched[0], ok_=False, detail="exited")
    fail(core, "api", n=3)
    mock = launched[-1]
    assert mock.kind == "mock"
    finish(core, mock, ok_=False, detail="adapter unreachable")
    assert core.nodes["api"].status is Status.FAULTED and "escalated" in core.nodes["api"].reason
    assert core.nodes["web"].status is Status.DEGRADED and "faulted api" in core.nodes["web"].reason


def test_pause_holds_repairs_and_resume_releases_them() -> None:
    core, _, launched, _ = make()
    core.step(Command("pause", "api"))
    fail(core, n=5)
    assert not launched and core.nodes["api"].paused and core.nodes["api"].failures == 5
    core.step(Command("resume", "api"))
    assert [o.kind for o in launched] == ["restart"]


def test_resume_of_a_mocked_node_tries_again_from_the_start() -> None:
    core, _, launched, _ = make()
    mocked(core, launched)
    core.step(Command("resume", "api"))
    assert launched[-1].kind == "restart" and core.nodes["api"].failed_restarts == 0


def test_the_provider_breaker_stops_dispatch_and_half_opens_after_the_cooldown() -> None:
    gate = ProviderGate(breaker_after=2, breaker_cooldown_s=60, concurrency=5)
    core, clock, launched, _ = make({"a": [], "b": [], "c": []}, gate=gate)
    for name in ("a", "b"):
        fail(core, name, n=3)
    for order in list(launched):
        finish(core, order, ok_=False, detail="engine unreachable", blame="provider")
    assert gate.to_json(clock.now)["breaker"] == "open"
    fail(core, "c", n=3)
    assert [o.node for o in launched] == ["a", "b"] and "breaker is open" in core.nodes["c"].reason
    clock.advance(60)
    core.step(Tick())
    assert launched[-1].node in ("a", "b", "c") and len(launched) > 2  # half-open: repairs go again


def test_concurrency_and_rate_limits_hold_repairs() -> None:
    core, clock, launched, _ = make({n: [] for n in "abc"}, gate=ProviderGate(concurrency=1, rate=2, window_s=60))
    for name in "abc":
        fail(core, name, n=3)
    assert [o.node for o in launched] == ["a"] and "1 repairs already running" in core.nodes["b"].reason
    finish(core, launched[0])
    assert [o.node for o in launched] == ["a", "b"]
    finish(core, launched[1])
    assert len(launched) == 2 and "rate limit of 2 repairs" in core.nodes["c"].reason
    clock.advance(60)
    core.step(Tick())
    assert [o.node for o in launched] == ["a", "b", "c"]


def test_a_handler_exception_never_stops_the_loop(caplog) -> None:
    core, _, launched, _ = make()
    core.step(RepairFinished("api", "restart", "unknown-id", True))  # stale result: ignored
    core.dependencies = None  # type: ignore[assignment]  # break propagation
    core.step(ProbeResult("api", ok=False))
    core.dependencies = {"api": []}
    fail(core, n=2)
    assert [o.kind for o in launched] == ["restart"]
    assert "handling" in caplog.text


def test_state_round_trips_and_a_restart_mid_backoff_does_not_repeat_the_repair() -> None:
    core, clock, launched, saved = make()
    fail(core, n=3)
    finish(core, launched[0], ok_=False, detail="exited")
    snapshot = saved[-1]
    assert snapshot["nodes"]["api"]["next_attempt_at"] == clock.now + 1.0
    again, _, relaunched, _ = make()
    again.clock.now = clock.now + 0.5  # restarted within the backoff
    again.restore(snapshot)
    assert again.nodes["api"].to_json() == core.nodes["api"].to_json()
    fail(again)
    assert relaunched == []  # still backing off: no duplicate
    again.clock.advance(0.5)
    fail(again)
    assert [o.kind for o in relaunched] == ["restart"]


def test_a_repair_cut_short_by_a_restart_is_reobserved_first() -> None:
    core, clock, launched, saved = make()
    fail(core, n=3)
    assert saved[-1]["nodes"]["api"]["repair"]["kind"] == "restart"
    again, _, relaunched, _ = make()
    again.clock.now = clock.now
    again.restore(saved[-1])
    custody = again.nodes["api"]
    assert custody.repair is None and custody.failed_restarts == 1 and "cut short" in custody.reason
    again.step(Tick())
    assert relaunched == []  # nothing decided before a fresh probe
    again.clock.advance(1)
    ok(again)
    assert custody.status is Status.HEALTHY and relaunched == []


def test_the_inbox_and_histories_are_bounded() -> None:
    async def flood() -> CustodianCore:
        core, _, _, _ = make(inbox_size=10, policy=CustodyPolicy(history=5))
        for i in range(1000):
            core.post(ProbeResult("api", ok=i % 2 == 0, detail=f"d{i}"))
        assert core.inbox.qsize() == 10 and core.dropped == 990
        while not core.inbox.empty():
            core.step(core.inbox.get_nowait())
        return core

    core = asyncio.run(flood())
    assert len(core.nodes["api"].history) == 5
    assert len(core.decisions) <= 500


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        CustodyPolicy(restart_after=7, mock_after=6)


def test_an_exited_service_is_restarted_at_once() -> None:
    core, _, launched, _ = make()
    ok(core)
    core.step(ProbeResult("api", ok=False, detail="the service exited", incarnation="p1", exited=True))
    assert [(o.kind, o.reason) for o in launched] == [("restart", "the service exited")]


def test_a_service_that_crashes_on_start_is_mocked_after_the_thresholds() -> None:
    core, clock, launched, _ = make()
    for _ in range(6):
        core.step(ProbeResult("api", ok=False, detail="the service exited", incarnation="p1", exited=True))
        if launched and core.nodes["api"].repair:
            finish(core, launched[-1], ok_=False, detail="exited before it was ready")
        clock.advance(core.nodes["api"].backoff_s)
    kinds = [o.kind for o in launched]
    assert kinds[-1] == "mock" and kinds.count("restart") >= 2


def test_a_failed_restart_after_resume_leaves_the_node_mocked() -> None:
    core, _, launched, _ = make()
    mocked(core, launched)
    core.step(Command("resume", "api"))
    assert core.nodes["api"].incarnation == ""  # the restart does not insist on the old instance
    finish(core, launched[2], ok_=False, detail="exited before it was ready")
    custody = core.nodes["api"]
    assert custody.status is Status.MOCKED and "still served from its mock" in custody.reason
    assert not custody.from_mock


def test_a_new_instance_slotted_onto_a_mocked_node_is_watched_afresh() -> None:
    core, _, launched, _ = make()
    mocked(core, launched)
    core.step(ProbeResult("api", ok=False, detail="no answer", incarnation="p9"))
    custody = core.nodes["api"]
    assert custody.status is Status.FAILING and custody.failures == 1 and custody.failed_restarts == 0


def test_a_node_no_longer_slotted_leaves_custody_but_an_escalated_one_stays_while_the_circuit_runs() -> None:
    from baton.custodian.events import ProbeRound

    core, _, launched, _ = make({"api": [], "db": []})
    ok(core, "db")
    mocked(core, launched)
    core.step(ProbeRound(watched=(), running=True))
    assert set(core.nodes) == {"api"}  # db was unslotted; api is mocked and stays so
    core.step(ProbeRound(watched=(), running=False))
    assert core.nodes == {}


def test_cancel_aborts_the_repair_in_flight_once_and_pauses() -> None:
    clock = Clock()
    launched, aborted = [], []
    core = CustodianCore({"api": []}, clock=clock, launch=launched.append, abort=aborted.append)
    fail(core, n=3)
    core.step(Command("cancel", "api"))
    core.step(Tick())
    assert aborted == [launched[0].repair_id]  # asked once, not at every turn
    core.step(RepairFinished("api", "restart", launched[0].repair_id, False, "cancelled by hand", cancelled=True))
    custody = core.nodes["api"]
    assert custody.paused and custody.failed_restarts == 0 and custody.repair is None
    assert "cancelled by hand; healing paused" in custody.reason
    fail(core, n=3)
    assert len(launched) == 1  # paused: nothing more until resumed


def test_a_change_made_outside_baton_is_reported_once_confirmed_and_when_it_ends() -> None:
    core, _, launched, saved = make()
    told = []
    core.listeners.append(told.append)
    core.step(RoutingSeen("api", "changed outside Baton: adapter routes to 127.0.0.1:9, state says its mock"))
    assert told == [] and core.drift == {}  # one look is not enough
    core.step(RoutingSeen("api", "changed outside Baton: adapter routes to 127.0.0.1:9, state says its mock"))
    core.step(RoutingSeen("api", "changed outside Baton: adapter routes to 127.0.0.1:9, state says its mock"))
    assert [(d["node"], d["status"]) for d in told] == [("api", "drift")]  # reported once
    assert saved[-1]["drift"] == {"api": "changed outside Baton: adapter routes to 127.0.0.1:9, state says its mock"}
    core.step(RoutingSeen("api", "changed outside Baton: adapter routes to 127.0.0.1:7, state says its mock"))
    assert len(told) == 1  # a different change starts counting again
    core.step(RoutingSeen("api", "changed outside Baton: adapter routes to 127.0.0.1:7, state says its mock"))
    assert told[-1]["reason"].endswith("127.0.0.1:7, state says its mock")
    core.step(RoutingSeen("api", ""))
    assert told[-1]["status"] == "routing-restored" and core.drift == {} and saved[-1]["drift"] == {}
    core.step(RoutingSeen("api", ""))
    assert len(told) == 3 and launched == []  # nothing repeated, nothing repaired: the custodian only reports
