"""Per-node counters, latency histograms and the bounded ring of recent requests (signals).

Everything here has a fixed size: a histogram is a fixed list of bucket counters, the signal ring is a
``deque(maxlen=N)``, and per-target entries are capped. Signals are numbered (``seq``, from 1 for the life of
the process) without storing the number: the ring holds consecutive ones, so the oldest's number follows from
the newest's and the ring's length, and a reader pages with ``signals_since``.

The Prometheus text exposition (format 0.0.4) is rendered only when scraped, by prometheus_client's writer
from a collector built over these counters (:mod:`.exposition`); nothing of it touches the request path.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from collections import deque
from typing import Any

from .grpc_call import CODES as GRPC_CODES
from .grpc_call import HTTP_STATUS as GRPC_HTTP_STATUS
from .streams import StreamTelemetry

__all__ = ["LATENCY_BOUNDS", "MAX_SIGNAL_PAGE", "NodeTelemetry", "TargetStats", "status_class"]

LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
MAX_TARGETS = 64
MAX_SIGNAL_PAGE = 1_000  # signals per GET /signals?since= answer


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
                 "bytes_out", "grpc_codes", "soap_faults")

    def __init__(self) -> None:
        self.requests = 0
        self.failed = 0
        self.classes = [0] * len(OUTCOME_NAMES)
        self.attempt_counts = [0] * len(OUTCOME_NAMES)
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.grpc_codes: list[int] | None = None  # gRPC calls by status code (grpc nodes only)
        self.soap_faults = 0  # responses carrying a soap:Fault (soap nodes only)

    @property
    def by_grpc_code(self) -> dict[str, int]:
        """Finished gRPC calls by status name, e.g. ``{"OK": 90, "UNAVAILABLE": 2}`` (empty unless a grpc node)."""
        codes = self.grpc_codes
        return {GRPC_CODES[i]: n for i, n in enumerate(codes) if n} if codes else {}

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
            **({"grpc_status": self.by_grpc_code} if self.grpc_codes else {}),
            **({"soap_faults": self.soap_faults} if self.soap_faults else {}),
        }


class NodeTelemetry:
    """Counters and recent-request ring of one node."""

    def __init__(self, node: str, role: str, signals_size: int = 1000) -> None:
        self.node = node
        self.role = role
        self.started = time.time()
        self.targets: dict[str, TargetStats] = {}
        self.signals: deque[tuple[Any, ...]] = deque(maxlen=signals_size)
        self.signal_seq = 0  # the number of the newest signal (0: none yet)
        self.active_connections = 0
        self.active_requests = 0
        self.requests_total = 0
        self.requests_failed = 0
        self.soap_faults = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.streams = StreamTelemetry()  # stream connections of tcp and protobuf nodes

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
        span_id: str = "",
    ) -> None:
        """Count one finished client request and append it to the signal ring (``span_id``: the adapter's span,
        the parent id it sent upstream)."""
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
        self.signal_seq += 1
        self.signals.append((time.time(), method, path, status, latency_s, bytes_out, trace_id, target, span_id))

    def record_call(self, target: str, path: bytes, code: int, latency_s: float, bytes_in: int, bytes_out: int,
                    trace_id: str, span_id: str = "") -> None:
        """Count one finished gRPC call with its status ``code``: a signal like a request's (method ``GRPC``,
        status the code's HTTP reading), counted by code, and every non-OK code a failed request."""
        status = GRPC_HTTP_STATUS[code] if 0 <= code < len(GRPC_CODES) else 500
        self.record(target, b"GRPC", path, status, latency_s, bytes_in, bytes_out, trace_id, span_id)
        stats = self.targets[target]
        codes = stats.grpc_codes
        if codes is None:
            codes = stats.grpc_codes = [0] * len(GRPC_CODES)
        codes[code if 0 <= code < len(GRPC_CODES) else 2] += 1
        if code and status < 500:  # record counted a 5xx reading already
            stats.failed += 1
            self.requests_failed += 1

    def record_fault(self, target: str, code: str) -> None:
        """Count the ``soap:Fault`` (``code``: its faultcode or Code/Value, may be empty) of the request recorded
        last: a failed request of ``target`` (unless its 5xx status made it one already), and a SOAP fault. Its
        signal reads status 500 (the SOAP HTTP binding's status of a Fault) and keeps the status sent as
        ``http_status``, with ``soap_fault`` naming the code."""
        stats = self.targets.get(target) or self._stats(target)
        stats.soap_faults += 1
        self.soap_faults += 1
        last = self.signals[-1] if self.signals else None
        status = last[3] if last is not None else 500
        if 100 <= status < 500:
            stats.failed += 1
            self.requests_failed += 1
        if last is not None:
            self.signals[-1] = (*last[:3], max(status, 500), *last[4:9], code or "Fault", status)

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
        """The node's counters (``GET /metrics``); ``streams`` only once the node has had stream connections."""
        total = self.requests_total
        data = {
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
        if self.soap_faults:
            data["soap_faults"] = self.soap_faults
        if self.streams.targets or self.streams.open:
            data["streams"] = self.streams.to_json()
        return data

    def signals_json(self, last_n: int | None = None) -> list[dict[str, Any]]:
        """The ring's newest ``last_n`` signals (all when None), oldest first (``GET /signals``)."""
        items = list(self.signals)
        if last_n is not None:
            items = items[-last_n:] if last_n > 0 else []
        return [self._signal(item) for item in items]

    def signals_since(self, since: int, limit: int = MAX_SIGNAL_PAGE) -> tuple[list[dict[str, Any]], int, int]:
        """Up to ``limit`` signals numbered above ``since``, oldest first, each with its ``seq``; the number to ask
        after next time; and how many numbered above ``since`` the ring no longer holds (``GET /signals?since=``)."""
        ring = self.signals
        first = self.signal_seq - len(ring) + 1  # the number of the oldest signal held
        start = max(0, since - first + 1)
        page = [self._signal(item) | {"seq": first + start + i}
                for i, item in enumerate(itertools.islice(ring, start, start + limit))]
        return page, page[-1]["seq"] if page else max(since, 0), max(0, min(first, self.signal_seq + 1) - since - 1)

    def _signal(self, item: tuple[Any, ...]) -> dict[str, Any]:
        ts, method, path, status, latency, nbytes, trace_id, target, span_id = item[:9]
        signal = {
            "node_name": self.node,
            "direction": "inbound",
            "method": method.decode("latin-1"),
            "path": path.decode("latin-1"),
            "status_code": status,
            "body_bytes": nbytes,
            "latency_ms": round(1000 * latency, 3),
            "timestamp": ts,
            "trace_id": trace_id,
            "span_id": span_id,
            "target": target,
        }
        if len(item) > 9:  # a soap:Fault (see record_fault)
            signal["soap_fault"], signal["http_status"] = item[9], item[10]
        return signal

    def prometheus(self, breakers: dict[str, str] | None = None, extra: Any = None) -> str:
        """The node's metrics in Prometheus text exposition format 0.0.4 (``extra``: more metric families, e.g.
        the tracer's)."""
        from .exposition import render

        return render(self, breakers or {}, LATENCY_BOUNDS, extra)
