"""Service events: what slotted services report about themselves (``POST /events`` on their node's adapter,
``{type, message, severity, data}``), kept apart from Baton's own decisions (``events.jsonl``).

A record of ``.baton/service_events.jsonl``: ``{node_name, type, message, severity, data, timestamp}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["SEVERITIES", "select_events", "to_service_event"]

SEVERITIES = ("debug", "info", "warning", "error", "critical")


def to_service_event(raw: Any, node: str) -> dict[str, Any] | None:
    """One event of an adapter's ring (``GET /events``) in the file's shape; None when it is not one."""
    if not isinstance(raw, dict):
        return None
    timestamp = raw.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
        return None
    severity = raw.get("severity")
    data = raw.get("data")
    return {"node_name": str(raw.get("node_name") or node), "type": str(raw.get("type") or ""),
            "message": str(raw.get("message") or ""),
            "severity": severity if severity in SEVERITIES else "info",
            "data": data if isinstance(data, dict) else {}, "timestamp": float(timestamp)}


def select_events(records: Iterable[dict[str, Any]], *, node: str | None = None, type_: str | None = None,
                  last: int | None = None) -> list[dict[str, Any]]:
    """The events of ``node`` of type ``type_``, the ``last`` newest of them."""
    chosen = [r for r in records if (node is None or r.get("node_name") == node)
              and (type_ is None or r.get("type") == type_)]
    if last is None:
        return chosen
    return chosen[-last:] if last > 0 else []
