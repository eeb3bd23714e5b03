"""The conductor's telemetry pass against real HTTP servers on 127.0.0.1: stand-ins of the adapters' management
API built on the adapter's own ring classes (``baton_adapter.telemetry.NodeTelemetry``,
``baton_adapter.events.EventLog``). Every signal is written once and in order, across passes, a restarted
conductor (a new pump), a stop between an append and the cursors' save, and a restarted adapter; what fell off a
ring is counted as dropped; service events land in their own file; metric snapshots at their interval; a node that
does not answer is reported and the others go on; nothing is asked while the circuit is down."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
from aiohttp import web

from baton.config import CircuitConfig
from baton.control import ensure_token_file
from baton.state import AdapterHost, CircuitState, StateStore
from baton.jsonl import read_lines
from baton.telemetry import CURSORS_FILE, METRICS_FILE, SERVICE_EVENTS_FILE, SIGNALS_FILE, TelemetrySettings
from baton.telemetry.pipelines import CursorStore, TelemetryPump
from baton_adapter.events import EventLog
from baton_adapter.telemetry import NodeTelemetry

SETTINGS = TelemetrySettings(pull_interval_s=1.0, metrics_interval_s=3600.0, max_bytes=10 * 1024 * 1024, keep=3)


class StandIn:
    """One node's management API as far as telemetry goes: /metrics, /signals?since, /events?last_n, token."""

    def __init__(self, node: str, token: str, ring: int = 1000) -> None:
        self.node, self.token, self.ring = node, token, ring
        self.telemetry = NodeTelemetry(node, "internal", ring)
        self.events = EventLog(None, ring_size=20)
        self.instance = f"{node}-1"
        self.asked = 0
        self.sent = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    def traffic(self, n: int) -> None:
        for _ in range(n):
            status = 500 if self.sent % 10 == 9 else 200
            self.telemetry.record("primary", b"GET", f"/r/{self.sent}".encode(), status, 0.002, 0, 10, f"t{self.sent}")
            self.sent += 1

    def restart(self) -> None:
        """What a restarted adapter process shows: counters from 0, empty rings, a later start."""
        self.telemetry = NodeTelemetry(self.node, "internal", self.ring)
        self.events = EventLog(None, ring_size=20)
        self.instance = f"{self.node}-{int(self.instance.rsplit('-', 1)[1]) + 1}"

    async def start(self) -> None:
        app = web.Application()

        def authorised(request: web.Request) -> bool:
            self.asked += 1
            return request.headers.get("Authorization") == f"Bearer {self.token}"

        def last_n(request: web.Request) -> int | None:
            raw = request.query.get("last_n")
            return None if raw is None else int(raw)

        async def metrics(request: web.Request) -> web.Response:
            if not authorised(request):
                return web.json_response({"error": "unauthorized"}, status=401)
            return web.json_response(self.telemetry.snapshot())

        async def signals(request: web.Request) -> web.Response:
            if not authorised(request):
                return web.json_response({"error": "unauthorized"}, status=401)
            if "since" not in request.query:
                return web.json_response(self.telemetry.signals_json(last_n(request)))
            signals, after, dropped = self.telemetry.signals_since(int(request.query["since"]))
            return web.json_response({"node": self.node, "instance": self.instance, "signals": signals,
                                      "next": after, "dropped": dropped})

        async def events(request: web.Request) -> web.Response:
            if not authorised(request):
                return web.json_response({"error": "unauthorized"}, status=401)
            return web.json_response(self.events.recent(self.node, last_n(request)))

        app.router.add_get("/metrics", metrics)
        app.router.add_get("/signals", signals)
        app.router.add_get("/events", events)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _running(state_dir: Path, nodes: list[str], running: bool = True) -> None:
    state = CircuitState(hosts={"h1": AdapterHost(host_id="h1", nodes=nodes)} if running else {})
    for name in nodes:
        state.node(name).host_id = "h1"
    StateStore(state_dir).save(state)


@pytest.fixture
def circuit(tmp_path: Path):
    state_dir = tmp_path / ".baton"
    state_dir.mkdir()
    token = ensure_token_file(state_dir)
    stand_ins = {"gateway": StandIn("gateway", token), "api": StandIn("api", token, ring=50)}
    loop = asyncio.new_event_loop()
    for one in stand_ins.values():
        loop.run_until_complete(one.start())
    config = CircuitConfig.model_validate({
        "name": "shop", "version": 2,
        "nodes": [{"name": n, "port": _free_port(), "management_port": s.port} for n, s in stand_ins.items()],
        "edges": [{"source": "gateway", "target": "api"}]})
    _running(state_dir, list(stand_ins))
    pumps: list[TelemetryPump] = []

    def run(settings: TelemetrySettings = SETTINGS, fresh: bool = False, now: float | None = None):
        if fresh or not pumps:
            if pumps:
                loop.run_until_complete(pumps[-1].close())
            pumps.append(TelemetryPump(state_dir))
        return loop.run_until_complete(pumps[-1].pass_once(config, settings, now=now))

    try:
        yield run, state_dir, stand_ins, loop
    finally:
        for pump in pumps:
            loop.run_until_complete(pump.close())
        for one in stand_ins.values():
            loop.run_until_complete(one.stop())
        loop.close()


def _signals(state_dir: Path, node: str | None = None) -> list[dict]:
    records = read_lines(state_dir / SIGNALS_FILE, rotated=3).records
    return [r for r in records if node is None or r["node_name"] == node]


def _paths(state_dir: Path, node: str) -> list[int]:
    return [int(r["path"].rsplit("/", 1)[1]) for r in _signals(state_dir, node)]


def _dropped(state_dir: Path) -> dict[str, int]:
    return CursorStore(state_dir).load().dropped()


def test_every_signal_is_written_once_in_order_across_passes_and_a_restarted_pump(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    gateway = stand_ins["gateway"]
    gateway.traffic(30)
    first = run()
    assert first.signals == 30 and first.unreachable == {}
    assert run().signals == 0  # nothing new: nothing written
    gateway.traffic(45)
    run()
    gateway.traffic(5)
    run(fresh=True)  # a conductor that started again: the cursors come from the file
    assert _paths(state_dir, "gateway") == list(range(80))
    record = _signals(state_dir, "gateway")[9]
    assert {k: record[k] for k in ("node_name", "direction", "method", "status_code", "body_bytes", "trace_id",
                                   "span_id", "target")} == {
        "node_name": "gateway", "direction": "inbound", "method": "GET", "status_code": 500, "body_bytes": 10,
        "trace_id": "t9", "span_id": "", "target": "primary"}
    assert _dropped(state_dir) == {}


def test_a_stop_between_the_append_and_the_cursors_save_writes_nothing_twice(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    gateway = stand_ins["gateway"]
    gateway.traffic(10)
    run()
    saved = (state_dir / CURSORS_FILE).read_text()
    gateway.traffic(10)
    run()
    (state_dir / CURSORS_FILE).write_text(saved)  # as if the process died before saving the second pass's cursors
    gateway.traffic(3)
    run(fresh=True)
    assert _paths(state_dir, "gateway") == list(range(23))
    (state_dir / CURSORS_FILE).unlink()  # cursors lost altogether: the file's end still says how far it got
    gateway.traffic(2)
    run(fresh=True)
    assert _paths(state_dir, "gateway") == list(range(25))


def test_what_fell_off_a_ring_is_counted_as_dropped_and_nothing_else_is(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    api = stand_ins["api"]  # a ring of 50
    api.traffic(20)
    run()
    api.traffic(120)  # 70 of these are gone from the ring before the next read
    report = run()
    assert report.signals == 50 and report.dropped == 70
    api.traffic(10)
    assert run().dropped == 0
    assert _paths(state_dir, "api") == [*range(20), *range(90, 150)]
    assert _dropped(state_dir) == {"api": 70}


def test_a_restarted_adapter_is_read_from_its_start(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    gateway = stand_ins["gateway"]
    gateway.traffic(40)
    run()
    gateway.restart()  # another adapter process: another instance, numbers from 1 again
    gateway.traffic(5)
    assert run().signals == 5 and _paths(state_dir, "gateway") == list(range(45))
    gateway.restart()  # restarted again, with more requests than the first one counted before the read
    gateway.traffic(8)
    assert run().signals == 8 and _paths(state_dir, "gateway") == list(range(53))
    gateway.restart()
    gateway.traffic(3)
    assert run().signals == 3 and _paths(state_dir, "gateway") == list(range(56))
    assert _dropped(state_dir) == {}


def test_service_events_land_in_their_own_file_once(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    api = stand_ins["api"]
    api.events.append("api", {"type": "deploy", "message": "v2 ready", "severity": "info", "data": {"v": 2}})
    run()
    run()
    for i in range(3):
        api.events.append("api", {"type": "job", "message": f"batch {i}", "severity": "warning"})
    run(fresh=True)
    records = read_lines(state_dir / SERVICE_EVENTS_FILE, rotated=3).records
    assert [(r["node_name"], r["type"], r["message"]) for r in records] == [
        ("api", "deploy", "v2 ready"), ("api", "job", "batch 0"), ("api", "job", "batch 1"), ("api", "job", "batch 2")]
    assert set(records[0]) == {"node_name", "type", "message", "severity", "data", "timestamp"}
    assert records[0]["data"] == {"v": 2} and records[1]["severity"] == "warning"
    assert not (state_dir / "events.jsonl").exists()  # Baton's own decisions file is not touched


def test_metric_snapshots_at_their_interval(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    every = TelemetrySettings(metrics_interval_s=100.0)
    stand_ins["gateway"].traffic(7)
    start = time.time()
    assert run(every, now=start).snapshot  # the first pass takes one
    assert not run(every, now=start + 60).snapshot
    stand_ins["gateway"].traffic(2)
    assert run(every, now=start + 100).snapshot
    assert not run(every, now=start + 150).snapshot
    snapshots = read_lines(state_dir / METRICS_FILE, rotated=3).records
    assert [s["timestamp"] - start for s in snapshots] == [0, 100]
    assert set(snapshots[0]) == {"timestamp", "nodes"} and set(snapshots[0]["nodes"]) == {"api", "gateway"}
    assert [s["nodes"]["gateway"]["requests_total"] for s in snapshots] == [7, 9]
    assert _paths(state_dir, "gateway") == list(range(9))  # a clock that jumps writes no signal twice


def test_a_node_that_does_not_answer_is_reported_and_the_others_go_on(circuit) -> None:
    run, state_dir, stand_ins, loop = circuit
    loop.run_until_complete(stand_ins["api"].stop())
    stand_ins["gateway"].traffic(4)
    report = run()
    assert report.signals == 4 and set(report.unreachable) == {"api"}
    assert "does not answer" in report.unreachable["api"]
    snapshot = read_lines(state_dir / METRICS_FILE).records[-1]
    assert snapshot["unreachable"] == ["api"] and list(snapshot["nodes"]) == ["gateway"]


def test_nothing_is_asked_while_the_circuit_is_down(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    _running(state_dir, list(stand_ins), running=False)
    stand_ins["gateway"].traffic(3)
    report = run()
    assert report.signals == 0 and not report.snapshot
    assert all(s.asked == 0 for s in stand_ins.values())
    assert not (state_dir / SIGNALS_FILE).exists() and not (state_dir / CURSORS_FILE).exists()


def test_files_stay_bounded_under_sustained_traffic(circuit) -> None:
    run, state_dir, stand_ins, _ = circuit
    small = TelemetrySettings(metrics_interval_s=0.0, max_bytes=8192, keep=2)
    gateway = stand_ins["gateway"]
    rotations = 0
    for _ in range(40):
        gateway.traffic(50)
        rotations += run(small).rotations
    assert rotations >= 20
    for name in (SIGNALS_FILE, METRICS_FILE):
        files = sorted(p.name for p in state_dir.iterdir() if p.name.startswith(name) and not p.name.endswith("lock"))
        assert files == [name, f"{name}.1", f"{name}.2"]
        assert all((state_dir / f).stat().st_size <= 8192 for f in files)
    kept = _paths(state_dir, "gateway")
    assert kept == list(range(kept[0], 2000)) and len(kept) > 50  # the newest, none missing, none twice
    json.loads((state_dir / CURSORS_FILE).read_text())


def test_a_ring_longer_than_a_page_is_read_a_page_at_a_time_in_one_pass(circuit) -> None:
    run, state_dir, stand_ins, loop = circuit
    gateway = stand_ins["gateway"]
    gateway.ring = 5000
    gateway.restart()
    gateway.traffic(2500)  # three pages of GET /signals?since= (at most 1,000 each)
    asked = gateway.asked
    assert run().signals == 2500 and _paths(state_dir, "gateway") == list(range(2500))
    assert gateway.asked - asked == 1 + 3 + 1  # /metrics, three pages of signals, /events?last_n=1
    assert _dropped(state_dir) == {}
