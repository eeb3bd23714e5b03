"""The conductor's telemetry pipelines end to end on real processes on 127.0.0.1 (free ports): traffic through a
mocked circuit lands in ``.baton/signals.jsonl`` once per request (none twice, none lost, also across a
conductor stopped and started again meanwhile), metric snapshots accumulate in ``metrics.jsonl``, a service event
posted to an adapter shows in ``baton events``, ``baton metrics --prometheus`` passes ``promtool check metrics``;
the three files stay bounded under sustained load; and ``baton dora`` counts the slots, swaps, promotions,
failed runs and reverts made on a circuit."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from baton_cli import free_port, ok, processes_under, run_baton, wait_for
from load import Load

pytestmark = pytest.mark.integration

SERVICE = f"{sys.executable} {Path(__file__).resolve().parent / 'services' / 'versioned.py'}"
# the conductor serves its tickers (telemetry every 0.3 s); no custodian (nothing here fails on purpose)
ENV = {"BATON_NO_SCHEDULES": "0", "BATON_NO_CUSTODIAN": "1", "BATON_TELEMETRY_INTERVAL_S": "0.3"}


def _circuit(project: Path, observability: str = "") -> dict[str, dict[str, int]]:
    """gateway (ingress) -> api, on free ports."""
    ports = {name: {"port": free_port(), "management_port": free_port()} for name in ("gateway", "api")}
    nodes = "\n".join(f"  - {{name: {name}, port: {p['port']}, management_port: {p['management_port']}"
                      f"{', role: ingress' if name == 'gateway' else ''}}}" for name, p in ports.items())
    (project / "baton.yaml").write_text(f"""\
name: telemetry
version: 2
{observability}nodes:
{nodes}
edges:
  - {{source: gateway, target: api}}
""")
    return ports


@pytest.fixture
def project(tmp_path: Path):
    project = tmp_path / "telemetry"
    ok(run_baton("init", str(project), "--name", "telemetry"))
    try:
        yield project
    finally:
        run_baton("down", "--all", cwd=project, env=ENV, timeout=120)
        assert not processes_under(project)


def _send(port: int, paths: list[str], workers: int = 8) -> dict[int, int]:
    """GET each path once through the data port (kept-alive connections); the statuses seen."""
    statuses: dict[int, int] = {}

    async def run() -> None:
        queue = list(paths)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def worker() -> None:
                while queue:
                    path = queue.pop()
                    async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1

            await asyncio.gather(*(worker() for _ in range(workers)))

    asyncio.run(run())
    return statuses


def _management(project: Path, port: int, path: str, body: dict | None = None) -> dict | list:
    token = (project / ".baton" / "control_token").read_text().strip()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _records(project: Path, name: str) -> list[dict]:
    state = project / ".baton"
    found = []
    for path in sorted(state.glob(name + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0):
        if path.suffix[1:].isdigit():
            found += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if (state / name).exists():
        found += [json.loads(line) for line in (state / name).read_text().splitlines() if line.strip()]
    return found


def _paths(project: Path, node: str) -> list[str]:
    return [r["path"] for r in _records(project, "signals.jsonl") if r["node_name"] == node]


def _conductor_pid(project: Path) -> int | None:
    try:
        return json.loads((project / ".baton" / "conductor.json").read_text())["process"]["pid"]
    except (OSError, ValueError, KeyError):
        return None


def test_signals_metrics_and_events_are_recorded_once_across_a_conductor_restart(project: Path) -> None:
    ports = _circuit(project)
    ok(run_baton("up", "--mock", cwd=project, env=ENV, timeout=180))
    gateway, api = ports["gateway"], ports["api"]

    # 1. traffic: every request once in signals.jsonl, in the adapter's count too
    first = [f"/r/{i}" for i in range(300)]
    _send(gateway["port"], first)
    _send(api["port"], [f"/api/{i}" for i in range(40)])
    wait_for(lambda: len(_paths(project, "gateway")) >= 300 and len(_paths(project, "api")) >= 40, 30,
             "the conductor to record 340 signals")
    recorded = _paths(project, "gateway")
    assert sorted(recorded) == sorted(first)  # each once: none twice, none lost
    assert sorted(_paths(project, "api")) == sorted(f"/api/{i}" for i in range(40))
    signal_record = next(r for r in _records(project, "signals.jsonl") if r["node_name"] == "gateway")
    assert set(signal_record) == {"node_name", "direction", "method", "path", "status_code", "body_bytes",
                                  "latency_ms", "timestamp", "trace_id", "span_id", "target"}
    assert _management(project, gateway["management_port"], "/metrics")["requests_total"] == 300

    # 2. the conductor stops; requests meanwhile are read by the next one, and nothing is written twice
    pid = _conductor_pid(project)
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _conductor_pid(project) != pid, 30,
             "the conductor to stop")
    meanwhile = [f"/m/{i}" for i in range(120)]
    _send(gateway["port"], meanwhile)
    ok(run_baton("status", cwd=project, env=ENV, timeout=60))  # a running circuit without a conductor: restarted
    wait_for(lambda: len(_paths(project, "gateway")) >= 420, 60, "the new conductor to record what it missed")
    assert sorted(_paths(project, "gateway")) == sorted(first + meanwhile)
    listed = ok(run_baton("signals", "--node", "gateway", "--path", "/m", "--last", "1000", "--json", cwd=project,
                          env=ENV)).json()
    assert len(listed["signals"]) == 120 and listed["dropped"] == {}
    stats = ok(run_baton("signals", "--stats", "--json", cwd=project, env=ENV)).json()
    assert stats["signals"] == 460 and all(0 <= s["error_rate"] <= 1 for s in stats["stats"])

    # 3. metric snapshots accumulate (the first pass takes one, then every metrics_interval_s: here 10 s)
    snapshots = wait_for(lambda: len(_records(project, "metrics.jsonl")) >= 2 and _records(project, "metrics.jsonl"),
                         40, "two metric snapshots")
    assert set(snapshots[-1]["nodes"]) == {"gateway", "api"}
    last = ok(run_baton("metrics", "--last", "1", "--json", cwd=project, env=ENV)).json()["snapshots"]
    assert len(last) == 1 and "gateway" in last[0]["nodes"]
    live = ok(run_baton("metrics", "--node", "gateway", "--json", cwd=project, env=ENV)).json()
    assert live["source"] == "live" and live["nodes"]["gateway"]["requests_total"] == 420

    # 4. a service event on the api's adapter: in its own file and in `baton events`, not in events.jsonl
    posted = _management(project, api["management_port"], "/events",
                         {"type": "cache-warm", "message": "warmed 42 keys", "severity": "info", "data": {"keys": 42}})
    assert posted["node_name"] == "api"
    shown = wait_for(lambda: ok(run_baton("events", "--node", "api", "--json", cwd=project, env=ENV)).json()["events"],
                     30, "the event in baton events")
    assert [(e["type"], e["message"], e["data"]) for e in shown] == [("cache-warm", "warmed 42 keys", {"keys": 42})]
    decisions = project / ".baton" / "events.jsonl"
    assert not decisions.exists() or "cache-warm" not in decisions.read_text()

    # 5. one exposition of the whole circuit, valid for promtool
    exposition = ok(run_baton("metrics", "--prometheus", cwd=project, env=ENV)).stdout
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    by_node: dict[str, float] = {}
    for sample in families["baton_requests"].samples:
        by_node[sample.labels["node"]] = by_node.get(sample.labels["node"], 0) + sample.value
    assert by_node == {"gateway": 420.0, "api": 40.0}
    promtool = shutil.which("promtool")
    if promtool is None and (os.environ.get("BATON_REQUIRE_PROMETHEUS") or os.environ.get("BATON_REQUIRE_PROMTOOL")):
        pytest.fail("BATON_REQUIRE_PROMETHEUS is set but promtool is not installed (Debian: prometheus)")
    if promtool is not None:
        import subprocess

        check = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr


def test_the_files_stay_bounded_under_sustained_load(project: Path) -> None:
    cap = 4096
    ports = _circuit(project, "observability: {file_max_bytes: 4096, file_keep: 2, metrics_interval_s: 0.3}\n")
    ok(run_baton("up", "--mock", cwd=project, env=ENV, timeout=180))
    state = project / ".baton"

    def files(name: str) -> list[Path]:
        return sorted(p for p in state.iterdir() if p.name.startswith(name) and not p.name.endswith(".lock"))

    for round_ in range(6):
        _send(ports["gateway"]["port"], [f"/load/{round_}/{i}" for i in range(400)])
        _send(ports["api"]["port"], [f"/load/{round_}/{i}" for i in range(100)])
        for i in range(10):
            _management(project, ports["api"]["management_port"], "/events",
                        {"type": "tick", "message": f"round {round_} event {i} " + "x" * 100})
    wait_for(lambda: [p.name for p in files("service_events.jsonl")] == [
        "service_events.jsonl", "service_events.jsonl.1", "service_events.jsonl.2"]
        and any("round 5 event 9" in r["message"] for r in _records(project, "service_events.jsonl")), 60,
             "the service events of the last round, rotated twice")
    wait_for(lambda: any(r["path"] == "/load/5/0" for r in _records(project, "signals.jsonl")), 60,
             "the signals of the last round")
    wait_for(lambda: len(files("metrics.jsonl")) == 3, 60, "metric snapshots rotated twice (one every 0.3 s)")
    for name in ("signals.jsonl", "metrics.jsonl", "service_events.jsonl"):
        kept = files(name)
        assert [p.name for p in kept] == [name, f"{name}.1", f"{name}.2"], (name, kept)
        assert all(p.stat().st_size <= cap for p in kept), [(p.name, p.stat().st_size) for p in kept]
    paths = [r["path"] for r in _records(project, "signals.jsonl")]
    assert len(paths) == len(set(paths)) and len(paths) > 20  # what is kept holds no record twice
    events = [r["message"] for r in _records(project, "service_events.jsonl")]
    assert len(events) == len(set(events)) and events[-1].startswith("round 5 event 9")


def test_dora_counts_the_changes_made_to_a_circuit(project: Path) -> None:
    ports = _circuit(project)
    ok(run_baton("up", "--mock", cwd=project, env=ENV, timeout=180))
    api = ports["api"]["port"]
    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=project, env=ENV, timeout=120))
    ok(run_baton("swap", "api", f"{SERVICE} v2", cwd=project, env=ENV, timeout=120))
    crashing = f"{sys.executable} -c \"import sys; sys.exit(3)\""
    assert run_baton("swap", "api", crashing, cwd=project, env=ENV, timeout=120).code == 1
    with Load(f"http://127.0.0.1:{api}/") as load:
        load.flowing()
        promoted = ok(run_baton("route", "canary", "api", f"{SERVICE} v3", "--promote", "--steps", "50,100",
                                "--eval-interval", "0.5", "--min-requests", "5", "--json", cwd=project, env=ENV,
                                timeout=180)).json()
    assert promoted["outcome"] == "Succeeded", promoted
    ok(run_baton("route", "canary", "api", f"{SERVICE} v4", "--promote", "--detach", cwd=project, env=ENV,
                 timeout=120))
    ok(run_baton("route", "revert", "api", cwd=project, env=ENV, timeout=120))

    def report() -> dict | None:
        data = ok(run_baton("dora", "--window", "1h", "--json", cwd=project, env=ENV)).json()
        # the promotion is read from the canary run's logs, which Prefect ships in batches
        return data if data["deployment_frequency"]["by_kind"].get("canary-promotion") else None

    data = wait_for(report, 60, "the promotion in baton dora")
    assert data["deployment_frequency"]["by_kind"] == {"canary-promotion": 1, "slot": 1, "swap": 1}
    assert data["deployment_frequency"]["deployments"] == 3
    assert data["lead_time"]["count"] == 3 and data["lead_time"]["median_s"] > 0
    assert data["change_failure_rate"] == {"changes": 5, "failures": 2, "rate": 0.4,
                                           "by_kind": {"failed-runs": 1, "reverts": 1}}
    assert data["time_to_restore"]["count"] == 0
    shown = ok(run_baton("dora", "--window", "1h", cwd=project, env=ENV)).stdout
    assert "40.0 %" in shown and "2 of 5 changes failed" in shown
