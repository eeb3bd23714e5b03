"""Counters of a node's stream connections (``tcp`` and ``protobuf`` modes), per routing target.

Per target: connections opened (connected to it) and closed, the bytes each way, a histogram of connection
durations, frames each way (``protobuf``) and stream errors by reason. "In" is what clients sent (towards the
backend), "out" what they were sent, as in ``telemetry``. Fixed size like the rest of the node's telemetry:
per-target entries are capped and a histogram is a fixed list of buckets. They are read through
``NodeTelemetry.snapshot()`` (``GET /metrics``, key ``streams``) and the Prometheus exposition.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

__all__ = ["DURATION_BOUNDS", "ERRORS", "StreamStats", "StreamTelemetry"]

DURATION_BOUNDS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0)
# why a stream ended badly (or, for the frame limits, why the adapter ended it)
ERRORS: tuple[str, ...] = (
    "client_frame_too_large",  # a client's frame header declared more than limits.max_frame_bytes
    "backend_frame_too_large",  # ... a backend's
    "frame_cut",  # the connection ended inside a frame (counted per direction)
    "idle_timeout",  # no byte either way for limits.stream_idle_s
    "cut_at_shutdown",  # still open when the shutdown's grace ended
)
_INDEX = {name: i for i, name in enumerate(ERRORS)}
MAX_TARGETS = 64


class StreamStats:
    """Counters of one target's stream connections."""

    __slots__ = ("opened", "closed", "bytes_in", "bytes_out", "frames_in", "frames_out", "error_counts", "buckets",
                 "duration_sum")

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.frames_in = 0
        self.frames_out = 0
        self.error_counts = [0] * len(ERRORS)
        self.buckets = [0] * (len(DURATION_BOUNDS) + 1)
        self.duration_sum = 0.0

    @property
    def active(self) -> int:
        return self.opened - self.closed

    @property
    def errors(self) -> dict[str, int]:
        """Stream errors by reason (those that happened)."""
        return {ERRORS[i]: n for i, n in enumerate(self.error_counts) if n}

    def error(self, reason: str) -> None:
        self.error_counts[_INDEX[reason]] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "active": self.active,
            "closed": self.closed,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "errors": self.errors,
            "duration_s_avg": round(self.duration_sum / self.closed, 3) if self.closed else None,
        }


class StreamTelemetry:
    """The stream counters of one node: per-target ``StreamStats`` and how many stream connections are open."""

    def __init__(self) -> None:
        self.targets: dict[str, StreamStats] = {}
        self.open = 0  # stream connections open on the data port, those still connecting included

    def stats(self, target: str) -> StreamStats:
        """The counters of ``target`` ("-": connections that reached no target)."""
        stats = self.targets.get(target)
        if stats is None:
            if len(self.targets) >= MAX_TARGETS:
                self.targets.pop(next(iter(self.targets)))
            stats = self.targets[target] = StreamStats()
        return stats

    def closed(self, stats: StreamStats, duration_s: float) -> None:
        """Count the end of a connection opened on ``stats``'s target after ``duration_s``."""
        stats.closed += 1
        stats.buckets[bisect_left(DURATION_BOUNDS, duration_s)] += 1
        stats.duration_sum += duration_s

    def to_json(self) -> dict[str, Any]:
        return {"open": self.open, "targets": {name: s.to_json() for name, s in self.targets.items()}}
