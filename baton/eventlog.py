"""``.baton/events.jsonl``: what Baton decided or noticed, one JSON line each (the custodian's decisions, the
certificate checks' warnings), bounded: past 5 MiB the file becomes ``events.jsonl.1`` and a new one starts."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["EVENTS_FILE", "EVENTS_MAX_BYTES", "append_event"]

EVENTS_FILE = "events.jsonl"
EVENTS_MAX_BYTES = 5 * 1024 * 1024


def append_event(state_dir: Path, kind: str, node: str, status: str, reason: str, *, at: float | None = None,
                 **extra: Any) -> None:
    """Append one event; an unwritable file loses it silently (events inform, they never stop Baton)."""
    path = Path(state_dir) / EVENTS_FILE
    record = {"kind": kind, "timestamp": time.time() if at is None else at, "node_name": node, "status": status,
              "reason": reason, **extra}
    with contextlib.suppress(OSError):
        if path.exists() and path.stat().st_size > EVENTS_MAX_BYTES:
            path.replace(path.with_suffix(".jsonl.1"))
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
