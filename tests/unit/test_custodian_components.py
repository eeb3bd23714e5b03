"""Baton's own parts under custody: the Prefect API and adapter hosts, driven by synthetic events."""

from __future__ import annotations

from baton.custodian import CustodianCore, ProbeResult, RepairFinished, Status
from baton.custodian.events import PREFECT, ComponentProbe, ProbeRound, adapter_component


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make():
    clock, launched = Clock(), []
    core = CustodianCore({"api": []}, clock=clock, launch=launched.append)
    return core, clock, launched


HOST = adapter_component("host-api")


def test_an_exited_adapter_host_is_restarted_at_once_and_confirmed() -> None:
    core, _, launched = make()
    core.step(ComponentProbe(HOST, True))
    core.step(ComponentProbe(HOST, False, "the adapter host exited", exited=True))
    assert [(o.node, o.kind) for o in launched] == [(HOST, "restart-adapter")]
    assert core.components[HOST].status is Status.RESTARTING
    core.step(RepairFinished(HOST, "restart-adapter", launched[0].repair_id, True, "1 nodes answering"))
    assert core.components[HOST].status is Status.RESTARTED
    core.step(ComponentProbe(HOST, True))
    assert core.components[HOST].status is Status.HEALTHY and core.components[HOST].reason == "recovered"


def test_a_failed_restart_backs_off_and_is_never_mocked() -> None:
    core, clock, launched = make()
    core.step(ComponentProbe(HOST, False, exited=True))
    core.step(RepairFinished(HOST, "restart-adapter", launched[0].repair_id, False, "port taken"))
    custody = core.components[HOST]
    assert custody.status is Status.FAILING and custody.backoff_s == 1.0 and len(launched) == 1
    core.step(ComponentProbe(HOST, False, exited=True))  # within the backoff: nothing new
    assert len(launched) == 1
    clock.now += 1.5
    core.step(ComponentProbe(HOST, False, exited=True))
    assert [o.kind for o in launched] == ["restart-adapter", "restart-adapter"]


def test_a_prefect_api_that_stops_answering_is_restarted_after_two_looks() -> None:
    core, _, launched = make()
    core.step(ComponentProbe(PREFECT, False, "does not answer"))
    assert not launched  # one slow answer on a busy machine is not enough
    core.step(ComponentProbe(PREFECT, False, "does not answer"))
    assert [o.kind for o in launched] == ["restart-prefect"]


def test_service_repairs_wait_for_the_prefect_api_and_for_their_adapter_host() -> None:
    core, _, launched = make()
    core.host_of = {"api": HOST}
    core.step(ComponentProbe(PREFECT, False, exited=True))
    prefect_order = launched[-1]
    core.step(ComponentProbe(HOST, False, exited=True))
    for _ in range(3):
        core.step(ProbeResult("api", False, "refused", "p1", "run api"))
    assert [o.kind for o in launched] == ["restart-prefect"]  # every other repair is a flow: they wait
    assert "Prefect API is down" in core.nodes["api"].reason
    core.step(RepairFinished(PREFECT, "restart-prefect", prefect_order.repair_id, True))
    core.step(ComponentProbe(PREFECT, True))
    assert [o.kind for o in launched] == ["restart-prefect", "restart-adapter"]  # the host first; api waits on it
    assert "adapter host" in core.nodes["api"].reason


def test_a_host_gone_from_the_circuit_leaves_custody_and_state_survives_a_restart() -> None:
    core, clock, launched = make()
    core.step(ComponentProbe(HOST, False, exited=True))
    snapshot = core.snapshot()
    assert HOST in snapshot["components"]
    again = CustodianCore({"api": []}, clock=clock)
    again.restore(snapshot)  # the restart in flight died with the old conductor: counted, observed again
    assert again.components[HOST].repair is None and again.components[HOST].reobserve
    core.step(RepairFinished(HOST, "restart-adapter", launched[0].repair_id, True))
    core.step(ProbeRound((), running=True, components=(PREFECT,)))
    assert HOST not in core.components
