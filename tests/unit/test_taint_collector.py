"""The collector against real HTTP servers on 127.0.0.1: small aiohttp stand-ins of the adapter's ``/taint`` API
(the management API as the issue specifies it). Loads canaries where the generation differs, reads sightings
once (also across a new cursor store: a restarted conductor), reads an adapter that restarted from its start,
pages, skips what does not answer, reads the log pump's sightings through a rotation."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from baton.config import CircuitConfig
from baton.control import ensure_token_file
from baton.state import AdapterHost, CircuitState, StateStore
from baton.taint import append_canaries, generation, load_violations, plan_seed
from baton.taint.collector import CURSORS_FILE, AdapterReport, CursorStore, collect_once
from baton.taint.sighting import SIGHTINGS_FILE


class StandIn:
    """One node's management API, as far as ``/taint`` goes: bearer token, instance id, a seq per sighting for the
    life of the process, a new ring of sightings when another generation is loaded."""

    def __init__(self, node: str, token: str) -> None:
        self.node, self.token = node, token
        self.instance = secrets.token_hex(4)
        self.state: dict[str, Any] = {"enabled": False, "generation": None, "canaries": [], "seed": []}
        self.sightings: list[dict[str, Any]] = []
        self.seq = itertools.count(1)
        self.puts: list[dict[str, Any]] = []
        self.scanned = 0  # requests scanned by the current scanning state
        self.runner: web.AppRunner | None = None
        self.port = 0

    def restart(self, instance: str | None = None) -> None:
        """What a custodian's restart leaves: no canaries, no sightings, seq from 1, counters from 0; another
        instance unless ``instance`` (the local provider names none: every process reports "")."""
        self.instance = secrets.token_hex(4) if instance is None else instance
        self.state = {"enabled": False, "generation": None, "canaries": [], "seed": []}
        self.sightings, self.seq, self.scanned = [], itertools.count(1), 0

    def see(self, fingerprint: str, direction: str = "request", **extra: Any) -> None:
        self.scanned += 1
        self.sightings.append({"seq": next(self.seq), "fingerprint": fingerprint, "kind": "email", "node": self.node,
                               "direction": direction, "part": "body", "header": "", "trace_id": extra.pop("trace", ""),
                               "method": "POST", "path": "/orders", "target": "primary", "status": 200,
                               "time": 1.0, **extra})

    async def start(self, port: int = 0) -> None:
        app = web.Application()

        async def get(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"error": "unauthorized"}, status=401)
            since = int(request.query.get("since", "0"))
            newer = [s for s in self.sightings if s["seq"] > since][:1000]
            return web.json_response({
                "node": self.node, "instance": self.instance, "enabled": self.state["enabled"],
                "generation": self.state["generation"], "canaries": len(self.state["canaries"]),
                "seeded": len(self.state["seed"]), "sightings": newer,
                "next": newer[-1]["seq"] if newer else since, "dropped": 0,
                "scanned": {"requests": self.scanned, "responses": 0, "bytes": 0}})

        async def put(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"error": "unauthorized"}, status=401)
            body = await request.json()
            self.puts.append(body)
            if body["generation"] != self.state["generation"]:
                self.sightings, self.scanned = [], 0  # as the adapter does: a new ring, numbers continuing
            self.state = {k: body[k] for k in ("enabled", "generation", "canaries", "seed")}
            return web.json_response({"node": self.node, "enabled": True, "generation": body["generation"],
                                      "canaries": len(body["canaries"]), "seeded": len(body["seed"])})

        app.router.add_get("/taint", get)
        app.router.add_put("/taint", put)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(ports: dict[str, int]) -> CircuitConfig:
    """gateway (ingress) -> users [PII]; gateway -> payments [FINANCIAL]; the adapters' management ports are the
    stand-ins'."""
    return CircuitConfig.model_validate({
        "name": "shop", "version": 2, "taint": {"enabled": True},
        "nodes": [{"name": n, "port": _free_port(), "management_port": p, **({"role": "ingress"} if n == "gateway"
                                                                              else {})} for n, p in ports.items()],
        "edges": [{"source": "gateway", "target": "users", "data_tiers_in_flight": ["PII"]},
                  {"source": "gateway", "target": "payments", "data_tiers_in_flight": ["FINANCIAL"]}],
    })


def _running(state_dir: Path, nodes: list[str]) -> None:
    state = CircuitState(hosts={"h1": AdapterHost(host_id="h1", nodes=nodes)})
    for name in nodes:
        state.node(name).host_id = "h1"
    StateStore(state_dir).save(state)


@pytest.fixture
def circuit(tmp_path: Path):
    """Three stand-ins on free ports, a project state directory that says they run, and one email canary seeded
    at users."""
    state_dir = tmp_path / ".baton"
    state_dir.mkdir()
    token = ensure_token_file(state_dir)
    stand_ins = {n: StandIn(n, token) for n in ("gateway", "users", "payments")}
    loop = asyncio.new_event_loop()
    for one in stand_ins.values():
        loop.run_until_complete(one.start())
    config = _config({n: s.port for n, s in stand_ins.items()})
    _running(state_dir, list(stand_ins))
    canaries = plan_seed(config, nodes=["users"], kinds=["email"])
    append_canaries(state_dir, canaries)
    try:
        yield loop, config, state_dir, stand_ins, canaries[0]
    finally:
        for one in stand_ins.values():
            loop.run_until_complete(one.stop())
        loop.close()


def test_adapters_get_the_canaries_and_violations_are_recorded_once(circuit) -> None:
    loop, config, state_dir, stand_ins, canary = circuit
    reports: list[AdapterReport] = []
    assert loop.run_until_complete(collect_once(config, state_dir, reports=reports)) == []
    wanted = generation([canary])
    assert all(r.answered and r.pushed and r.generation == wanted for r in reports), reports
    assert stand_ins["users"].puts[0]["seed"] == [{"fingerprint": canary.fingerprint, "kind": "email"}]
    assert stand_ins["payments"].puts[0]["seed"] == [] and len(stand_ins["payments"].puts[0]["canaries"]) == 1

    stand_ins["users"].see(canary.fingerprint, "response")  # back to gateway, in scope, over a PII edge: fine
    stand_ins["payments"].see(canary.fingerprint, trace="trace-1")  # outside the scope, over a FINANCIAL edge
    stand_ins["payments"].see("0badf00d")  # not an active canary (an earlier generation's)
    found = loop.run_until_complete(collect_once(config, state_dir))
    assert [(v.node, v.edge, v.trace_id) for v in found] == [("payments", "gateway -> payments", "trace-1")]
    assert found[0].reasons == [f"PII canary of users seen at payments, outside its scope users, gateway",
                                "edge gateway -> payments carries FINANCIAL, not PII"]
    assert all(len(s.puts) == 1 for s in stand_ins.values())  # generations match now: nothing pushed again
    events = [json.loads(line) for line in (state_dir / "events.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["node_name"], e["status"], e["edge"]) for e in events] == [
        ("taint", "payments", "violation", "gateway -> payments")]

    assert loop.run_until_complete(collect_once(config, state_dir)) == []  # nothing new
    assert loop.run_until_complete(collect_once(config, state_dir, CursorStore(state_dir))) == []  # a new conductor
    assert len(load_violations(state_dir)[0]) == 1


def test_a_restarted_adapter_is_loaded_again_and_read_from_its_start(circuit) -> None:
    loop, config, state_dir, stand_ins, canary = circuit
    payments = stand_ins["payments"]
    for _ in range(3):
        payments.see(canary.fingerprint)
    assert len(loop.run_until_complete(collect_once(config, state_dir))) == 3
    payments.restart()
    payments.see(canary.fingerprint, trace="after-restart")  # seq 1 again: below the old cursor
    found = loop.run_until_complete(collect_once(config, state_dir))
    assert [v.trace_id for v in found] == ["after-restart"]
    assert len(payments.puts) == 2 and payments.state["generation"] == generation([canary])


def test_a_restarted_adapter_reporting_the_same_instance_is_read_from_its_start(circuit) -> None:
    loop, config, state_dir, stand_ins, canary = circuit
    payments = stand_ins["payments"]
    payments.restart(instance="")
    loop.run_until_complete(collect_once(config, state_dir))  # loads it
    for _ in range(3):
        payments.see(canary.fingerprint)
    assert len(loop.run_until_complete(collect_once(config, state_dir))) == 3
    payments.restart(instance="")  # seq starts again at 1, below the cursor; the collector loads it again
    assert loop.run_until_complete(collect_once(config, state_dir)) == []
    payments.see(canary.fingerprint, trace="after")
    assert [v.trace_id for v in loop.run_until_complete(collect_once(config, state_dir))] == ["after"]
    for _ in range(2):
        payments.see(canary.fingerprint)
    assert len(loop.run_until_complete(collect_once(config, state_dir))) == 2
    # restarted again and loaded with the same generation by someone else before the collector looked: its
    # counters went back, so its ring is read from the start
    payments.restart(instance="")
    payments.state = dict(payments.puts[-1])
    payments.see(canary.fingerprint, trace="reloaded elsewhere")
    assert [v.trace_id for v in loop.run_until_complete(collect_once(config, state_dir))] == ["reloaded elsewhere"]


def test_a_flood_is_read_page_by_page(circuit) -> None:
    loop, config, state_dir, stand_ins, canary = circuit
    for i in range(2500):
        stand_ins["payments"].see(canary.fingerprint, trace=f"t{i}")
    found = loop.run_until_complete(collect_once(config, state_dir))
    assert len(found) == 2500 and found[-1].trace_id == "t2499"
    assert loop.run_until_complete(collect_once(config, state_dir)) == []


def test_an_adapter_that_does_not_answer_is_skipped_and_read_later(circuit) -> None:
    loop, config, state_dir, stand_ins, canary = circuit
    payments = stand_ins["payments"]
    port = payments.port
    loop.run_until_complete(payments.stop())
    reports: list[AdapterReport] = []
    assert loop.run_until_complete(collect_once(config, state_dir, reports=reports)) == []
    down = next(r for r in reports if r.node == "payments")
    assert not down.answered and "does not answer" in down.error
    payments.see(canary.fingerprint)
    loop.run_until_complete(payments.start(port))
    assert len(loop.run_until_complete(collect_once(config, state_dir))) == 1


def test_log_sightings_are_read_once_through_a_rotation(circuit) -> None:
    loop, config, state_dir, _, canary = circuit
    path = state_dir / SIGHTINGS_FILE

    def line(part: str) -> str:
        return json.dumps({"fingerprint": canary.fingerprint, "kind": "email", "node": "users", "direction": "log",
                           "part": part, "time": 2.0, "pid": 42}) + "\n"

    path.write_text(line("stdout") + "garbage\n" + line("stderr")[:20])  # the last line is still being written
    found = loop.run_until_complete(collect_once(config, state_dir))
    assert [(v.edge, v.source) for v in found] == [("users -> log", "log")]
    with path.open("a") as handle:
        handle.write(line("stderr")[20:] + line("stdout"))
    path.rename(path.with_name(SIGHTINGS_FILE + ".1"))  # the pump rotated: the end of the old file, then the new
    path.write_text(line("stderr"))
    found = loop.run_until_complete(collect_once(config, state_dir))
    assert [v.reasons[0].split(" printed to the ")[1].split(" ")[0] for v in found] == ["stderr", "stdout", "stderr"]
    assert loop.run_until_complete(collect_once(config, state_dir)) == []


def test_nothing_is_asked_while_no_canary_is_active_and_a_corrupt_cursor_file_starts_afresh(circuit) -> None:
    loop, config, state_dir, stand_ins, canary = circuit
    (state_dir / "taint_canaries.jsonl").write_text("")
    assert loop.run_until_complete(collect_once(config, state_dir)) == []
    assert all(not s.puts for s in stand_ins.values())
    append_canaries(state_dir, [canary])
    (state_dir / CURSORS_FILE).write_text("{not json")
    stand_ins["payments"].see(canary.fingerprint)
    assert len(loop.run_until_complete(collect_once(config, state_dir))) == 1
    saved = json.loads((state_dir / CURSORS_FILE).read_text())["adapters"]["payments"]
    assert saved["generation"] == generation([canary])
    assert loop.run_until_complete(collect_once(config, state_dir)) == []
