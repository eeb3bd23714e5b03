"""Signals in the original's shape, and ``baton signals --stats`` arithmetic: errors are 5xx and connection
failures, each request counts once (the error rate never passes 100 %), nearest-rank percentiles, paths grouped
without their query string; metric rows and snapshot selection; service events normalised."""

from __future__ import annotations

import pytest

from baton.telemetry import (
    SIGNAL_FIELDS,
    is_error,
    metrics_row,
    select_events,
    select_signals,
    select_snapshots,
    signal_stats,
    snapshot_record,
    to_service_event,
    to_signal,
)
from baton.telemetry.signals import percentile


def _adapter_signal(**over):
    """As the adapter's ``GET /signals`` answers (baton_adapter.telemetry.NodeTelemetry.signals_json)."""
    return {"node_name": "api", "direction": "inbound", "method": "GET", "path": "/users/1", "status_code": 200,
            "body_bytes": 12, "latency_ms": 3.5, "timestamp": 1000.0, "trace_id": "abc", "target": "stable", **over}


def test_a_signal_carries_the_original_field_names_and_its_target() -> None:
    record = to_signal(_adapter_signal(), "api")
    assert tuple(record)[:len(SIGNAL_FIELDS)] == SIGNAL_FIELDS
    assert record["span_id"] == "" and record["target"] == "stable" and record["latency_ms"] == 3.5
    assert to_signal(_adapter_signal(span_id="00f067aa0ba902b7"), "api")["span_id"] == "00f067aa0ba902b7"
    assert to_signal({"path": "/"}, "api") is None and to_signal("junk", "api") is None
    odd = to_signal(_adapter_signal(status_code="200", latency_ms=float("nan"), node_name=None), "api")
    assert (odd["status_code"], odd["latency_ms"], odd["node_name"]) == (0, 0.0, "api")


@pytest.mark.parametrize(("status", "error"), [(200, False), (404, False), (499, False), (500, True), (503, True),
                                               (0, True), (None, True), (600, True), (True, True)])
def test_errors_are_5xx_and_requests_without_a_status(status, error) -> None:
    assert is_error({"status_code": status}) is error


def test_stats_per_node_and_path_never_pass_100_percent() -> None:
    records = [to_signal(_adapter_signal(latency_ms=float(i), status_code=500 if i % 4 == 0 else 200,
                                         path=f"/users?page={i}"), "api") for i in range(1, 101)]
    records += [{"node_name": "api", "path": "/down", "status_code": 0}] * 3  # connection failures, no latency
    records += [to_signal(_adapter_signal(node_name="gateway", path="/"), "gateway")]
    stats = {(s.node, s.path): s for s in signal_stats(records)}
    users = stats[("api", "/users")]
    assert (users.count, users.errors, users.error_rate) == (100, 25, 0.25)
    assert (users.p50_ms, users.p95_ms, users.p99_ms) == (50.0, 95.0, 99.0)
    down = stats[("api", "/down")]
    assert (down.count, down.errors, down.error_rate, down.p50_ms) == (3, 3, 1.0, None)
    assert down.to_json()["error_rate"] == 1.0
    assert [s.node for s in signal_stats(records)] == ["api", "api", "gateway"]


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 0.75) == 3.0


def test_selection_by_node_path_and_last() -> None:
    records = [{"node_name": n, "path": p} for n, p in [("api", "/users"), ("api", "/users/42"), ("api", "/usersx"),
                                                         ("web", "/users"), ("api", "/orders?id=1")]]
    assert len(select_signals(records, node="api")) == 4
    assert [r["path"] for r in select_signals(records, node="api", path="/users")] == ["/users", "/users/42"]
    assert [r["path"] for r in select_signals(records, path="/users*")] == ["/users", "/users/42", "/usersx",
                                                                             "/users"]
    assert select_signals(records, path="/orders") == [records[4]]
    assert select_signals(records, last=2) == records[-2:] and select_signals(records, last=0) == []


def test_metric_rows_and_snapshots() -> None:
    metrics = {"role": "ingress", "requests_total": 10, "requests_failed": 2, "latency_ms": {"p50": 1.0, "p95": 2.0,
               "p99": 3.0}, "active_connections": 1, "bytes_in": 5, "bytes_out": 7, "uptime_s": 9.0}
    row = metrics_row("gateway", metrics)
    assert (row["requests"], row["failed"], row["error_rate"], row["p99_ms"]) == (10, 2, 0.2, 3.0)
    assert metrics_row("x", {})["error_rate"] == 0.0
    snaps = [snapshot_record(float(t), {"b": {"t": t}, "a": {"t": t}}, ["c"] if t == 2 else []) for t in range(4)]
    assert list(snaps[0]["nodes"]) == ["a", "b"] and snaps[2]["unreachable"] == ["c"] and "unreachable" not in snaps[0]
    assert [s["timestamp"] for s in select_snapshots(snaps, last=2)] == [2.0, 3.0]
    assert select_snapshots(snaps, node="a", last=1) == [{"timestamp": 3.0, "nodes": {"a": {"t": 3}}}]
    assert select_snapshots([*snaps, {"junk": 1}], node="zz") == []


def test_service_events_normalised_and_selected() -> None:
    raw = {"node_name": "api", "timestamp": 5.0, "type": "deploy", "message": "v2", "severity": "loud",
           "data": [1]}
    event = to_service_event(raw, "api")
    assert event == {"node_name": "api", "type": "deploy", "message": "v2", "severity": "info", "data": {},
                     "timestamp": 5.0}
    assert to_service_event({"type": "x"}, "api") is None
    events = [{**event, "type": t, "node_name": n} for n, t in [("api", "a"), ("web", "a"), ("api", "b")]]
    assert select_events(events, node="api", type_="a") == [events[0]]
    assert select_events(events, last=1) == [events[2]]
