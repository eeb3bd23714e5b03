"""Per-node counters, latency histograms and the bounded ring of recent requests (signals).

Everything here has a fixed size: a histogram is a fixed list of bucket counters, the signal ring is a
``deque(maxlen=N)``, and per-target entries are capped. The Prometheus text exposition is rendered here
directly (HELP and TYPE for every family) rather than through prometheus_client: a registry per hosted node
would cost memory and start-up time in local mode (100 nodes in one process), and the format is small.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from typing import Any

__all__ = ["LATENCY_BOUNDS", "NodeTelemetry", "TargetStats", "status_class"]

LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
MAX_TARGETS = 64


def status_class(status: int) -> str:
    """'2xx' for 200..299 and so on; 'error' outside 100..599."""
    return CLASSES[status // 100 - 1] if 100 <= status < 600 else "error"


# counter slots of a TargetStats: index status // 100 for 1xx..5xx, then 'error' and 'timeout'
OUTCOME_NAMES: tuple[str, ...] = ("", "1xx", "2xx", "3xx", "4xx", "5xx", "error", "timeout")
_ERROR = 6
_TIMEOUT = 7


class TargetStats:
    """Counters of one routing target (e.g. stable/canary, a/b); fixed-size lists, no per-request allocation."""

    __slots__ = ("requests", "failed", "classes", "attempt_counts", "buckets", "latency_sum", "bytes_in",
                 "bytes_out")

    def __init__(self) -> None:
        self.requests = 0
        self.failed = 0
        self.classes = [0] * len(OUTCOME_NAMES)
        self.attempt_counts = [0] * len(OUTCOME_NAMES)
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def by_class(self) -> dict[str, int]:
        """Finished requests by status class, e.g. ``{"2xx": 10, "5xx": 1}``."""
        return {OUTCOME_NAMES[i]: n for i, n in enumerate(self.classes) if n}

    @property
    def attempts(self) -> dict[str, int]:
        """Attempts by outcome: status class, 'error' (connection failure) or 'timeout'."""
        return {OUTCOME_NAMES[i]: n for i, n in enumerate(self.attempt_counts) if n}

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "error_rate": round(self.failed / self.requests, 4) if self.requests else 0.0,
            "status": self.by_class,
            "attempts": self.attempts,
            "latency_ms_avg": round(1000 * self.latency_sum / self.requests, 3) if self.requests else None,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


class NodeTelemetry:
    """Counters and recent-request ring of one node."""

    def __init__(self, node: str, role: str, signals_size: int = 1000) -> None:
        self.node = node
        self.role = role
        self.started = time.time()
        self.targets: dict[str, TargetStats] = {}
        self.signals: deque[tuple[Any, ...]] = deque(maxlen=signals_size)
        self.active_connections = 0
        self.active_requests = 0
        self.requests_total = 0
        self.requests_failed = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def _stats(self, target: str) -> TargetStats:
        stats = self.targets.get(target)
        if stats is None:
            if len(self.targets) >= MAX_TARGETS:
                self.targets.pop(next(iter(self.targets)))
            stats = self.targets[target] = TargetStats()
        return stats

    def attempt(self, target: str, status: int) -> None:
        """Count one attempt against ``target`` that got a response with ``status``."""
        stats = self.targets.get(target) or self._stats(target)
        c = status // 100
        stats.attempt_counts[c if 1 <= c <= 5 else _ERROR] += 1

    def attempt_failed(self, target: str, timed_out: bool) -> None:
        """Count one attempt against ``target`` that got no response (connection failure or timeout)."""
        self._stats(target).attempt_counts[_TIMEOUT if timed_out else _ERROR] += 1

    def record(
        self,
        target: str,
        method: bytes,
        path: bytes,
        status: int,
        latency_s: float,
        bytes_in: int,
        bytes_out: int,
        trace_id: str,
    ) -> None:
        """Count one finished client request and append it to the signal ring."""
        stats = self.targets.get(target) or self._stats(target)
        stats.requests += 1
        c = status // 100
        stats.classes[c if 1 <= c <= 5 else _ERROR] += 1
        stats.buckets[bisect_left(LATENCY_BOUNDS, latency_s)] += 1
        stats.latency_sum += latency_s
        if bytes_in:
            stats.bytes_in += bytes_in
            self.bytes_in += bytes_in
        stats.bytes_out += bytes_out
        self.requests_total += 1
        self.bytes_out += bytes_out
        if c >= 5 or c < 1:
            stats.failed += 1
            self.requests_failed += 1
        self.signals.append((time.time(), method, path, status, latency_s, bytes_out, trace_id, target))

    # -- views --------------------------------------------------------------------------------------------

    def latency_percentiles(self, target: str | None = None) -> dict[str, float | None]:
        """p50/p95/p99/mean in ms over the signal ring (the most recent requests), of one target if given."""
        values = sorted(s[4] for s in self.signals if target is None or s[7] == target)
        if not values:
            return {"p50": None, "p95": None, "p99": None, "mean": None, "window": 0}

        def pick(q: float) -> float:
            return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 3)

        return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99),
                "mean": round(1000 * sum(values) / len(values), 3), "window": len(values)}

    def targets_json(self) -> dict[str, dict[str, Any]]:
        """Per-target counters plus recent latency percentiles (what a canary judge compares)."""
        return {name: {**s.to_json(), "latency_ms": self.latency_percentiles(name)}
                for name, s in self.targets.items()}

    def snapshot(self) -> dict[str, Any]:
        total = self.requests_total
        return {
            "node": self.node,
            "role": self.role,
            "requests_total": total,
            "requests_failed": self.requests_failed,
            "error_rate": round(self.requests_failed / total, 4) if total else 0.0,
            "latency_ms": self.latency_percentiles(),
            "active_connections": self.active_connections,
            "active_requests": self.active_requests,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "uptime_s": round(time.time() - self.started, 3),
            "targets": self.targets_json(),
        }

    def signals_json(self, last_n: int | None = None) -> list[dict[str, Any]]:
        items = list(self.signals)
        if last_n is not None:
            items = items[-last_n:] if last_n > 0 else []
        return [
            {
                "node_name": self.node,
                "direction": "inbound",
                "method": method.decode("latin-1"),
                "path": path.decode("latin-1"),
                "status_code": status,
                "body_bytes": nbytes,
                "latency_ms": round(1000 * latency, 3),
                "timestamp": ts,
                "trace_id": trace_id,
                "target": target,
            }
            for ts, method, path, status, latency, nbytes, trace_id, target in items
        ]

    def prometheus(self, breakers: dict[str, str] | None = None) -> str:
        """The node's metrics in Prometheus text exposition format 0.0.4."""
        node, role = _esc(self.node), _esc(self.role)
        base = f'node="{node}",role="{role}"'
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family("baton_requests_total", "counter", "Client requests finished, by target and status class.")
        for tname, s in self.targets.items():
            for cls, n in s.by_class.items():
                out.append(f'baton_requests_total{{{base},target="{_esc(tname)}",status_class="{cls}"}} {n}')
        family("baton_requests_failed", "counter", "Client requests that ended in a 5xx or a connection error.")
        out.append(f"baton_requests_failed_total{{{base}}} {self.requests_failed}")
        family("baton_attempts_total", "counter", "Upstream attempts by target and outcome (retries included).")
        for tname, s in self.targets.items():
            for outcome, n in s.attempts.items():
                out.append(f'baton_attempts_total{{{base},target="{_esc(tname)}",outcome="{outcome}"}} {n}')
        family("baton_latency_seconds", "histogram", "Client request latency through the adapter.")
        for tname, s in self.targets.items():
            labels = f'{base},target="{_esc(tname)}"'
            cumulative = 0
            for bound, count in zip(LATENCY_BOUNDS, s.buckets[:-1], strict=True):
                cumulative += count
                out.append(f'baton_latency_seconds_bucket{{{labels},le="{bound}"}} {cumulative}')
            cumulative += s.buckets[-1]
            out.append(f'baton_latency_seconds_bucket{{{labels},le="+Inf"}} {cumulative}')
            out.append(f"baton_latency_seconds_sum{{{labels}}} {s.latency_sum:.6f}")
            out.append(f"baton_latency_seconds_count{{{labels}}} {cumulative}")
        family("baton_active_connections", "gauge", "Open client connections on the data port.")
        out.append(f"baton_active_connections{{{base}}} {self.active_connections}")
        family("baton_active_requests", "gauge", "Client requests in flight.")
        out.append(f"baton_active_requests{{{base}}} {self.active_requests}")
        family("baton_bytes_received", "counter", "Request body bytes received from clients.")
        out.append(f"baton_bytes_received_total{{{base}}} {self.bytes_in}")
        family("baton_bytes_sent", "counter", "Response body bytes sent to clients.")
        out.append(f"baton_bytes_sent_total{{{base}}} {self.bytes_out}")
        if breakers:
            family("baton_breaker_open", "gauge", "1 when a target's circuit breaker is open or half-open.")
            for tname, state in breakers.items():
                value = 0 if state == "closed" else 1
                out.append(f'baton_breaker_open{{{base},target="{_esc(tname)}",state="{state}"}} {value}')
        out.append("")
        return "\n".join(out)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
