"""Service events: structured reports from slotted services, kept in a bounded ring and a JSONL file.

A service POSTs ``{type, message, severity, data}`` to its node's management API; the adapter stamps it
with the node name and time, appends one JSON line to the events file (read by the control plane) and keeps
the most recent events in memory for ``GET /events``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from typing import Any, Mapping

from .errors import AdapterError

__all__ = ["EventError", "EventLog", "SEVERITIES"]

SEVERITIES = ("debug", "info", "warning", "error", "critical")
MAX_EVENT_BYTES = 64 * 1024
log = logging.getLogger(__name__)


class EventError(AdapterError, ValueError):
    """An event payload was rejected; the message says what was expected and what arrived."""


def validate_event(payload: Any) -> dict[str, Any]:
    """Normalise ``{type, message, severity, data}``; raise ``EventError`` on the first problem."""
    if not isinstance(payload, Mapping):
        raise EventError(f"an event must be an object {{type, message, severity, data}}, got {type(payload).__name__}.")
    unknown = sorted(set(payload) - {"type", "message", "severity", "data"})
    if unknown:
        raise EventError(f"an event accepts type, message, severity, data; got unknown key(s) {unknown}.")
    etype = payload.get("type")
    if not isinstance(etype, str) or not etype or len(etype) > 128:
        raise EventError(f"event type must be a non-empty string of at most 128 characters, got {etype!r}.")
    message = payload.get("message", "")
    if not isinstance(message, str):
        raise EventError(f"event message must be a string, got {message!r}.")
    severity = payload.get("severity", "info")
    if severity not in SEVERITIES:
        raise EventError(f"event severity must be one of {list(SEVERITIES)}, got {severity!r}.")
    data = payload.get("data", {})
    if not isinstance(data, Mapping):
        raise EventError(f"event data must be an object, got {type(data).__name__}.")
    return {"type": etype, "message": message, "severity": severity, "data": dict(data)}


class EventLog:
    """Events of all nodes of one adapter process: a bounded ring per node plus an optional JSONL file."""

    def __init__(self, path: str | None = None, ring_size: int = 200) -> None:
        self.path = path
        self.ring_size = ring_size
        self.rings: dict[str, deque[dict[str, Any]]] = {}
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)

    def append(self, node: str, payload: Any) -> dict[str, Any]:
        """Validate, stamp, persist and remember one event; return the stored record."""
        event = validate_event(payload)
        record = {"node_name": node, "timestamp": time.time(), **event}
        line = json.dumps(record, separators=(",", ":"), default=str)
        if len(line) > MAX_EVENT_BYTES:
            raise EventError(f"an event must serialise to at most {MAX_EVENT_BYTES} bytes, got {len(line)}.")
        if self.path:
            # one write of one line with O_APPEND: concurrent writers never interleave lines
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        ring = self.rings.get(node)
        if ring is None:
            ring = self.rings[node] = deque(maxlen=self.ring_size)
        ring.append(record)
        return record

    def recent(self, node: str, last_n: int | None = None) -> list[dict[str, Any]]:
        items = list(self.rings.get(node, ()))
        if last_n is not None:
            items = items[-last_n:] if last_n > 0 else []
        return items
