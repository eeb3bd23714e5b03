"""Leases record a process before it exists and until it has stopped; reconciling decides, from leases, state
and what the adapters route to, what to adopt, stop and forget."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from baton import leases
from baton.config import NodeConfig
from baton.processes import ProcessRecord, process_start_ticks, spawn, stop_group
from baton.state import AdapterHost, CircuitState, NodeState, ProcessInfo, ServiceSlot
from providers.local import LocalProvider
from tasks.reconcile import Route, decide, named_leases, retire

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / ".baton"
    path.mkdir()
    return path


@pytest.fixture
def running(state_dir: Path):
    """Start leased sleepers (stopped afterwards, whatever the test did)."""
    started: list[ProcessRecord] = []

    def start(lease: leases.Lease) -> ProcessRecord:
        record = spawn(SLEEPER, env={**os.environ, leases.LEASE_ENV: str(lease.path)}, cwd=state_dir)
        started.append(record)
        return record

    yield start
    for record in started:
        stop_group(record, timeout=2)


def test_a_lease_is_written_before_the_spawn_and_completed_after(state_dir: Path, running) -> None:
    lease = leases.create(state_dir, leases.SERVICE, node="api", argv=["app", "--port", "1"], purpose="slot")
    data = json.loads(lease.path.read_text())
    assert lease.path.parent == state_dir / "leases" and lease.path.name == f"{lease.id}.json"
    assert data["id"] == lease.id and data["kind"] == "service" and data["node"] == "api"
    assert data["purpose"] == "slot" and data["argv"] == ["app", "--port", "1"] and data["created_at"]
    assert data["pid"] == 0 and not lease.attached and lease.record is None
    record = running(lease)
    attached = leases.attach(lease, record, {"port": 1234})
    reread = leases.load(lease.path)
    assert reread == attached and reread.pid == record.pid and reread.start_ticks == record.start_ticks
    assert reread.details == {"port": 1234} and leases.process_of(reread) == record
    assert [found.id for found in leases.all(state_dir)] == [lease.id]
    assert leases.describe(lease.path, {"port": 99}).details == {"port": 99}
    assert leases.release(lease.path) is True and leases.release(lease.path) is False
    assert leases.all(state_dir) == [] and leases.load(lease.path) is None
    assert leases.describe(lease.path, {}) is None


def test_an_adapter_host_lease_names_its_host(state_dir: Path) -> None:
    lease = leases.create(state_dir, leases.ADAPTER_HOST, host_id="host-gateway", argv=["adapter"])
    data = json.loads(lease.path.read_text())
    assert data["kind"] == "adapter-host" and data["host_id"] == "host-gateway" and "node" not in data
    assert data["purpose"] == "manual" and data["flow_run_id"] == ""  # outside a flow run
    with pytest.raises(ValueError, match="kind"):
        leases.create(state_dir, "daemon", node="api")
    with pytest.raises(ValueError, match="plain name"):
        leases.create(state_dir, leases.SERVICE, node="../x")


def test_a_process_never_attached_is_found_by_its_environment(state_dir: Path, running) -> None:
    lease = leases.create(state_dir, leases.SERVICE, node="api")
    other = leases.create(state_dir, leases.SERVICE, node="api")
    record = running(lease)  # the starter was "killed" before attach: the lease has no pid
    _wait_for(lambda: str(lease.path) in leases.carriers(state_dir))
    found = leases.process_of(lease)
    assert found is not None and (found.pid, found.pgid) == (record.pid, record.pid)
    assert found.start_ticks == process_start_ticks(record.pid)
    assert leases.process_of(other) is None  # nothing carries that one
    stop_group(found, timeout=2)
    assert leases.process_of(lease) is None and str(lease.path) not in leases.carriers(state_dir)


def test_a_recycled_pid_is_not_the_leased_process(state_dir: Path, running) -> None:
    lease = leases.create(state_dir, leases.SERVICE, node="api")
    record = running(lease)
    stale = leases.attach(lease, ProcessRecord(record.pid, record.pid, record.start_ticks + 1, ()))
    # The recorded identity is wrong, but the process carrying the lease is still found, by its environment.
    assert leases.process_of(stale).pid == record.pid
    unrelated = leases.attach(leases.create(state_dir, leases.SERVICE, node="api"),
                              ProcessRecord(record.pid, record.pid, record.start_ticks + 1, ()))
    assert leases.process_of(unrelated) is None


def test_unreadable_lease_files_are_skipped(state_dir: Path) -> None:
    lease = leases.create(state_dir, leases.SERVICE, node="api")
    (state_dir / "leases" / "broken.json").write_text("{not json")
    (state_dir / "leases" / ".x.json.123.tmp").write_text("{}")
    assert [found.id for found in leases.all(state_dir)] == [lease.id]


def test_the_local_provider_leases_every_process_until_it_is_stopped(tmp_path: Path, state_dir: Path) -> None:
    provider = LocalProvider()
    node = NodeConfig(name="api", port=18080)
    slot = provider.start_service(tmp_path, state_dir, node, SLEEPER, {"BATON_SERVICE_PORT": "1"}, 1)
    try:
        lease = leases.load(slot.lease)
        assert lease is not None and lease.kind == "service" and lease.node == "api"
        assert lease.pid == slot.process.pid and lease.details["port"] == 1
        assert "--lease" in lease.argv and str(lease.path) in lease.argv
        environ = Path(f"/proc/{slot.process.pid}/environ").read_bytes().split(b"\0")
        assert f"{leases.LEASE_ENV}={lease.path}".encode() in environ
    finally:
        assert provider.stop_service(slot) is True
    assert not Path(slot.lease).exists() and leases.all(state_dir) == []
    assert provider.stop_service(slot) is False  # idempotent


# -- deciding ----------------------------------------------------------------------------------------------------


def _slot(port: int, pid: int, lease: leases.Lease | None = None) -> ServiceSlot:
    return ServiceSlot(command=f"app {port}", is_mock=False, port=port, lease=str(lease.path) if lease else "",
                       process=ProcessInfo(pid=pid, pgid=pid, start_ticks=pid * 10))


def _service_lease(state_dir: Path, port: int, pid: int, node: str = "api") -> leases.Lease:
    lease = leases.create(state_dir, leases.SERVICE, node=node)
    return leases.attach(lease, ProcessRecord(pid, pid, pid * 10, ()), _slot(port, pid, lease).model_dump())


def _process(lease: leases.Lease) -> ProcessRecord:
    return lease.record


def test_leases_state_names_are_left_alone(state_dir: Path) -> None:
    service = _service_lease(state_dir, 1001, 11)
    host = leases.attach(leases.create(state_dir, leases.ADAPTER_HOST, host_id="host-api"),
                         ProcessRecord(12, 12, 120, ()))
    state = CircuitState(adapters={"api": NodeState(node_name="api", service=_slot(1001, 11, service))},
                         hosts={"host-api": AdapterHost(host_id="host-api", nodes=["api"], lease=str(host.path))})
    assert named_leases(state) == {service.id, host.id}
    plan = decide(state, [service, host], {}, {})  # even when their processes are gone: the custodian's business
    assert plan.empty


def test_a_process_the_adapter_routes_to_is_adopted_and_the_one_it_replaced_retired(state_dir: Path) -> None:
    old = _service_lease(state_dir, 1001, 11)
    new = _service_lease(state_dir, 1002, 12)
    stray = _service_lease(state_dir, 1003, 13)
    gone = _service_lease(state_dir, 1004, 14)
    state = CircuitState(adapters={"api": NodeState(node_name="api", service=_slot(1001, 11, old))})
    found = [old, new, stray, gone]
    processes = {new.id: _process(new), stray.id: _process(stray), gone.id: None}
    plan = decide(state, found, processes, {"api": [Route("", "127.0.0.1", 1002)]})
    assert [(a.node, a.target, a.slot.port, a.lease.id) for a in plan.adopt] == [("api", "", 1002, new.id)]
    assert plan.adopt[0].slot.process.pid == 12 and plan.adopt[0].slot.lease == str(new.path)
    assert [lease.id for lease, _ in plan.stop] == [stray.id]
    assert [lease.id for lease in plan.forget] == [gone.id]


def test_a_routing_target_is_adopted_under_its_name(state_dir: Path) -> None:
    canary = _service_lease(state_dir, 1002, 12)
    state = CircuitState(adapters={"api": NodeState(node_name="api", service=_slot(1001, 11))})
    routes = [Route("stable", "127.0.0.1", 1001), Route("canary", "127.0.0.1", 1002)]
    plan = decide(state, [canary], {canary.id: _process(canary)}, {"api": routes})
    assert [(a.target, a.slot.port) for a in plan.adopt] == [("canary", 1002)]
    stable = _service_lease(state_dir, 1003, 13)
    routes = [Route("stable", "127.0.0.1", 1003), Route("canary", "127.0.0.1", 1004)]
    plan = decide(state, [stable], {stable.id: _process(stable)}, {"api": routes})
    assert [(a.target, a.slot.port) for a in plan.adopt] == [("", 1003)]  # the primary of a split: the service


def test_without_an_answer_from_the_adapter_nothing_is_adopted(state_dir: Path) -> None:
    new = _service_lease(state_dir, 1002, 12)
    never_described = leases.attach(leases.create(state_dir, leases.SERVICE, node="api"), ProcessRecord(13, 13, 1, ()))
    host = leases.attach(leases.create(state_dir, leases.ADAPTER_HOST, host_id="host-x"), ProcessRecord(14, 14, 1, ()))
    processes = {lease.id: _process(lease) for lease in (new, never_described, host)}
    plan = decide(CircuitState(), [new, never_described, host], processes, {"api": None})
    assert plan.adopt == [] and {lease.id for lease, _ in plan.stop} == {new.id, never_described.id, host.id}


def test_pending_slots_are_settled(state_dir: Path) -> None:
    leased = _service_lease(state_dir, 1002, 12)
    recorded = _slot(1001, 11)
    container = ServiceSlot(is_mock=False, port=8080, container="svc-b")
    state = CircuitState(adapters={"api": NodeState(node_name="api", service=recorded)},
                         pending=[_slot(1002, 12, leased), recorded.model_copy(), container])
    plan = decide(state, [leased], {leased.id: _process(leased)}, {"api": [Route("", "127.0.0.1", 1001)]})
    assert len(plan.settle) == 3
    assert [lease.id for lease, _ in plan.stop] == [leased.id]  # through its lease
    assert plan.stop_slots == [container]  # no lease of its own: stopped through the provider, as before


def test_retiring_keeps_a_replaced_service_pending(state_dir: Path) -> None:
    old, new = _slot(1001, 11), _slot(1002, 12)
    state = CircuitState(adapters={"api": NodeState(node_name="api", service=new, warm=_slot(1003, 13))})
    assert retire(state, old) is True and state.pending == [old]
    assert retire(state, old) is False  # once
    assert retire(state, new.model_copy()) is False  # still named
    assert retire(state, ServiceSlot()) is False and retire(state, None) is False
    state.settle(old)
    assert state.pending == []
