"""Signals: one record per request an adapter served, in the original Baton's shape, and what ``baton signals``
computes from them (pure).

A record of ``.baton/signals.jsonl``::

    {node_name, direction, method, path, status_code, body_bytes, latency_ms, timestamp, trace_id, span_id,
     target}

``target`` (the routing target that served it: stable/canary, a/b) is ours; the rest are the original's names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SIGNAL_FIELDS", "PathStats", "is_error", "percentile", "select_signals", "signal_stats", "to_signal"]

SIGNAL_FIELDS = ("node_name", "direction", "method", "path", "status_code", "body_bytes", "latency_ms", "timestamp",
                 "trace_id", "span_id")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def to_signal(raw: Any, node: str) -> dict[str, Any] | None:
    """One adapter signal (``GET /signals``) in the file's shape; None when it is not one (no timestamp)."""
    if not isinstance(raw, dict):
        return None
    timestamp = _number(raw.get("timestamp"))
    if timestamp is None:
        return None
    status = raw.get("status_code")
    latency = _number(raw.get("latency_ms"))
    body = raw.get("body_bytes")
    record = {
        "node_name": str(raw.get("node_name") or node),
        "direction": str(raw.get("direction") or "inbound"),
        "method": str(raw.get("method") or ""),
        "path": str(raw.get("path") or ""),
        "status_code": status if isinstance(status, int) and not isinstance(status, bool) else 0,
        "body_bytes": body if isinstance(body, int) and not isinstance(body, bool) else 0,
        "latency_ms": latency if latency is not None else 0.0,
        "timestamp": timestamp,
        "trace_id": str(raw.get("trace_id") or ""),
        "span_id": str(raw.get("span_id") or ""),
    }
    if raw.get("target"):
        record["target"] = str(raw["target"])
    return record


def is_error(record: dict[str, Any]) -> bool:
    """A 5xx, or no HTTP status at all (a connection failure or a timeout)."""
    status = record.get("status_code")
    return not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599 or status >= 500


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``ordered`` (sorted); None when empty."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _path_matches(path: str, wanted: str) -> bool:
    """``wanted`` ending in ``*`` is a prefix; otherwise the path itself or anything under it (``/users`` matches
    ``/users/42``; the query string is not part of the comparison)."""
    path = path.split("?", 1)[0]
    if wanted.endswith("*"):
        return path.startswith(wanted[:-1])
    return path == wanted or path.startswith(wanted.rstrip("/") + "/")


def select_signals(records: Iterable[dict[str, Any]], *, node: str | None = None, path: str | None = None,
                   last: int | None = None) -> list[dict[str, Any]]:
    """The records of ``node`` under ``path`` (see :func:`_path_matches`), the ``last`` newest of them."""
    chosen = [r for r in records if (node is None or r.get("node_name") == node)
              and (path is None or _path_matches(str(r.get("path") or ""), path))]
    return chosen[-last:] if last is not None and last > 0 else ([] if last == 0 else chosen)


@dataclass(frozen=True)
class PathStats:
    """What ``baton signals --stats`` shows for one node and path."""

    node: str
    path: str
    count: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        """Errors over requests, 0..1 (each request counts once, so never above 1)."""
        return self.errors / self.count if self.count else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "path": self.path, "count": self.count, "errors": self.errors,
                "error_rate": round(self.error_rate, 4), "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
                "p99_ms": self.p99_ms}


def signal_stats(records: Iterable[dict[str, Any]]) -> list[PathStats]:
    """Per node and path (query string left out): count, errors (5xx and connection failures), latency
    percentiles; sorted by node, then by count (most first)."""
    groups: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
    for record in records:
        key = (str(record.get("node_name") or ""), str(record.get("path") or "").split("?", 1)[0])
        latencies, counts = groups.setdefault(key, ([], [0, 0]))
        latency = _number(record.get("latency_ms"))
        if latency is not None:
            latencies.append(latency)
        counts[0] += 1
        counts[1] += is_error(record)
    found = []
    for (node, path), (latencies, (count, errors)) in groups.items():
        latencies.sort()
        found.append(PathStats(node, path, count, errors, percentile(latencies, 0.5), percentile(latencies, 0.95),
                               percentile(latencies, 0.99)))
    return sorted(found, key=lambda s: (s.node, -s.count, s.path))
