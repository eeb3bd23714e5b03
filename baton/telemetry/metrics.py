"""Metric snapshots: every adapter's ``GET /metrics`` at one moment, as a line of ``.baton/metrics.jsonl``
(``{timestamp, nodes: {name: {...}}}``, the original Baton's shape), and the summary row ``baton metrics`` shows
per node (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["metrics_row", "select_snapshots", "snapshot_record"]


def snapshot_record(timestamp: float, nodes: Mapping[str, Any], unreachable: Iterable[str] = ()) -> dict[str, Any]:
    """One line of metrics.jsonl; ``unreachable``: nodes whose adapter did not answer (left out of ``nodes``)."""
    record: dict[str, Any] = {"timestamp": timestamp, "nodes": {name: nodes[name] for name in sorted(nodes)}}
    missing = sorted(unreachable)
    if missing:
        record["unreachable"] = missing
    return record


def select_snapshots(records: Iterable[dict[str, Any]], *, node: str | None = None,
                     last: int | None = None) -> list[dict[str, Any]]:
    """The ``last`` newest snapshots (of ``node`` alone: its entry only, snapshots without it left out)."""
    chosen = []
    for record in records:
        nodes = record.get("nodes")
        if not isinstance(nodes, dict) or not isinstance(record.get("timestamp"), (int, float)):
            continue
        if node is not None:
            if node not in nodes:
                continue
            record = {**record, "nodes": {node: nodes[node]}}
        chosen.append(record)
    if last is None:
        return chosen
    return chosen[-last:] if last > 0 else []


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metrics_row(node: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one node's ``/metrics`` that ``baton metrics`` shows: requests, failures, error rate (0..1),
    latency percentiles (ms, over the adapter's recent requests), open connections, bytes in and out."""
    latency = metrics.get("latency_ms") if isinstance(metrics.get("latency_ms"), dict) else {}
    requests = _num(metrics.get("requests_total")) or 0
    failed = _num(metrics.get("requests_failed")) or 0
    return {"node": node, "role": metrics.get("role") or "", "requests": requests, "failed": failed,
            "error_rate": round(min(1.0, failed / requests), 4) if requests else 0.0,
            "p50_ms": _num(latency.get("p50")), "p95_ms": _num(latency.get("p95")),
            "p99_ms": _num(latency.get("p99")), "active_connections": _num(metrics.get("active_connections")) or 0,
            "bytes_in": _num(metrics.get("bytes_in")) or 0, "bytes_out": _num(metrics.get("bytes_out")) or 0,
            "uptime_s": _num(metrics.get("uptime_s"))}
