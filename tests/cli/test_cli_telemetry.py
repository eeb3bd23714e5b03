"""``baton metrics``, ``baton signals``, ``baton events`` and ``baton dora`` on a project whose circuit is not
running: what they read from ``.baton/`` (files written here as the conductor's pipelines write them), one JSON
document with ``--json``, tables otherwise, refusals in one sentence with exit 2, never a traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from baton_cli import ok, run_baton

CIRCUIT = """\
name: shop
version: 2
nodes:
  - {name: gateway, port: 20011, role: ingress}
  - {name: api, port: 20012}
edges:
  - {source: gateway, target: api}
"""


@pytest.fixture
def project(project_dir: Path) -> Path:
    (project_dir / "baton.yaml").write_text(CIRCUIT)
    return project_dir


def _write(project: Path, name: str, records: list[dict]) -> None:
    with (project / ".baton" / name).open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def _signal(i: int, node: str = "api", path: str = "/users", status: int = 200, latency: float = 1.0) -> dict:
    return {"node_name": node, "direction": "inbound", "method": "GET", "path": path, "status_code": status,
            "body_bytes": 10, "latency_ms": latency, "timestamp": 1_700_000_000.0 + i, "trace_id": f"t{i}",
            "span_id": "", "target": "primary"}


def _refused(result, sentence: str) -> None:
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    assert sentence in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(("args", "sentence"), [
    (["signals", "--node", "billing"], "no node named 'billing' in baton.yaml; known nodes: gateway, api."),
    (["events", "--node", "billing"], "no node named 'billing' in baton.yaml; known nodes: gateway, api."),
    (["metrics", "--node", "billing"], "no node named 'billing' in baton.yaml; known nodes: gateway, api."),
    (["signals", "--path", "users"], "--path expects a path starting with /, found 'users'."),
    (["metrics", "--prometheus", "--json"], "--prometheus prints the running adapters' text exposition; drop "
                                            "--json and --last."),
    (["metrics", "--prometheus", "--last", "2"], "drop --json and --last."),
    (["metrics", "--last", "0"], "Invalid value for '--last'"),
    (["signals", "--last", "-3"], "Invalid value for '--last'"),
    (["events", "--last", "many"], "Invalid value for '--last'"),
    (["dora", "--window", "7x"], "expected a duration like 30s, 5m, 2h or a number of seconds, found '7x'"),
    (["dora", "--window", "0"], "expected a duration above zero"),
])
def test_bad_input_is_refused_in_one_sentence(project: Path, args: list[str], sentence: str) -> None:
    _refused(run_baton(*args, cwd=project), sentence)


def test_with_nothing_recorded_each_command_says_so(project: Path) -> None:
    assert "No signals recorded yet: the conductor writes .baton/signals.jsonl" in ok(
        run_baton("signals", cwd=project)).stdout
    assert "No service events yet" in ok(run_baton("events", cwd=project)).stdout
    shown = ok(run_baton("metrics", cwd=project)).stdout
    assert "The circuit is not running, and no metric snapshot is recorded yet" in shown
    assert ok(run_baton("signals", "--json", cwd=project)).json() == {"signals": [], "dropped": {},
                                                                      "corrupt_lines": 0}
    assert ok(run_baton("signals", "--stats", "--json", cwd=project)).json()["stats"] == []
    assert ok(run_baton("events", "--json", cwd=project)).json() == {"events": [], "corrupt_lines": 0}
    assert ok(run_baton("metrics", "--json", cwd=project)).json() == {"source": "metrics.jsonl", "running": False,
                                                                      "timestamp": None, "nodes": {}}
    assert ok(run_baton("metrics", "--last", "5", "--json", cwd=project)).json() == {"source": "metrics.jsonl",
                                                                                     "snapshots": []}


def test_signals_list_filter_and_stats_through_rotated_files(project: Path) -> None:
    _write(project, "signals.jsonl.1", [_signal(i, latency=float(i)) for i in range(1, 51)])
    _write(project, "signals.jsonl", [_signal(50 + i, status=503 if i <= 10 else 200, latency=50.0 + i)
                                      for i in range(1, 51)])
    _write(project, "signals.jsonl", [_signal(200 + i, node="gateway", path=f"/orders/{i}", status=0, latency=0.0)
                                      for i in range(4)])
    with (project / ".baton" / "signals.jsonl").open("a") as handle:
        handle.write("{not json\n")
    listed = ok(run_baton("signals", "--json", cwd=project)).json()
    assert len(listed["signals"]) == 50 and listed["corrupt_lines"] == 1
    assert listed["signals"][-1]["node_name"] == "gateway"
    api = ok(run_baton("signals", "--node", "api", "--last", "200", "--json", cwd=project)).json()["signals"]
    assert [s["trace_id"] for s in api] == [f"t{i}" for i in range(1, 101)]  # the rotated file first, in order
    orders = ok(run_baton("signals", "--path", "/orders", "--json", cwd=project)).json()["signals"]
    assert len(orders) == 4
    stats = ok(run_baton("signals", "--stats", "--json", cwd=project)).json()
    by_key = {(s["node"], s["path"]): s for s in stats["stats"]}
    assert stats["signals"] == 104
    assert by_key[("api", "/users")] == {"node": "api", "path": "/users", "count": 100, "errors": 10,
                                         "error_rate": 0.1, "p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0}
    assert by_key[("gateway", "/orders/0")]["error_rate"] == 1.0
    table = ok(run_baton("signals", "--stats", "--node", "api", cwd=project)).stdout
    assert "/users" in table and "10.0 %" in table and "gateway" not in table
    listing = ok(run_baton("signals", "--last", "3", cwd=project)).stdout
    assert "/orders/3" in listing and "/users" not in listing


def test_events_filter_by_node_and_type(project: Path) -> None:
    now = time.time()
    _write(project, "service_events.jsonl", [
        {"node_name": n, "type": t, "message": m, "severity": s, "data": {"k": i}, "timestamp": now + i}
        for i, (n, t, m, s) in enumerate([("api", "deploy", "v2 ready", "info"), ("gateway", "cache", "cold", "warning"),
                                          ("api", "job", "batch failed", "error")])])
    everything = ok(run_baton("events", "--json", cwd=project)).json()["events"]
    assert [e["message"] for e in everything] == ["v2 ready", "cold", "batch failed"]
    assert [e["type"] for e in ok(run_baton("events", "--node", "api", "--json", cwd=project)).json()["events"]] == [
        "deploy", "job"]
    assert [e["node_name"] for e in ok(run_baton("events", "--type", "cache", "--json",
                                                 cwd=project)).json()["events"]] == ["gateway"]
    table = ok(run_baton("events", "--last", "1", cwd=project)).stdout
    assert "batch failed" in table and "error" in table and "v2 ready" not in table


def test_metrics_show_the_last_snapshot_when_down_and_the_last_n_with_last(project: Path) -> None:
    def node(requests: int) -> dict:
        return {"node": "api", "role": "internal", "requests_total": requests, "requests_failed": requests // 10,
                "latency_ms": {"p50": 1.5, "p95": 4.0, "p99": 9.0}, "active_connections": 0, "bytes_in": 0,
                "bytes_out": 100 * requests, "uptime_s": 10.0}

    _write(project, "metrics.jsonl", [{"timestamp": 1_700_000_000.0 + 10 * i, "nodes": {"api": node(10 * i),
                                                                                         "gateway": node(i)}}
                                      for i in range(1, 6)])
    latest = ok(run_baton("metrics", "--json", cwd=project)).json()
    assert latest["running"] is False and latest["nodes"]["api"]["requests_total"] == 50
    shown = ok(run_baton("metrics", cwd=project)).stdout
    assert "The circuit is not running: its last recorded snapshot." in shown and "10.0 %" in shown
    last = ok(run_baton("metrics", "--last", "2", "--node", "gateway", "--json", cwd=project)).json()["snapshots"]
    assert [list(s["nodes"]) for s in last] == [["gateway"], ["gateway"]]
    assert [s["nodes"]["gateway"]["requests_total"] for s in last] == [4, 5]


def test_prometheus_needs_a_running_circuit(project: Path) -> None:
    result = run_baton("metrics", "--prometheus", cwd=project)
    assert result.code == 1 and "Traceback" not in result.stderr
    assert result.stderr == ("error: the circuit is not running: `baton metrics --prometheus` reads the running "
                             "adapters' /metrics/prometheus; run `baton up` first.\n")


def test_dora_with_no_runs_says_there_is_no_data(project: Path, prefect_api: str) -> None:
    data = ok(run_baton("dora", "--window", "24h", "--json", cwd=project)).json()
    assert data["deployment_frequency"]["deployments"] == 0 and data["change_failure_rate"]["rate"] is None
    assert round(data["window"]["days"], 3) == 1.0
    assert any(note.startswith("no deployments in the window") for note in data["notes"])
    shown = ok(run_baton("dora", cwd=project)).stdout
    assert "deployment frequency" in shown and "no deployments in the window" in shown
