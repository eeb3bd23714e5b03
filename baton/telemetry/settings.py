"""Where the telemetry pipelines write and how often: the file names under ``.baton/`` and the settings read from
``observability`` in baton.yaml (``BATON_TELEMETRY_INTERVAL_S`` overrides the pull interval)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.jsonl import Lines, read_lines, rotated_paths

__all__ = ["CURSORS_FILE", "INTERVAL_ENV", "METRICS_FILE", "SERVICE_EVENTS_FILE", "SIGNALS_FILE",
           "TelemetrySettings", "read_recent", "read_records"]

log = logging.getLogger(__name__)
SIGNALS_FILE = "signals.jsonl"
METRICS_FILE = "metrics.jsonl"
SERVICE_EVENTS_FILE = "service_events.jsonl"
CURSORS_FILE = "telemetry_cursors.json"
INTERVAL_ENV = "BATON_TELEMETRY_INTERVAL_S"


@dataclass(frozen=True)
class TelemetrySettings:
    """How the conductor's telemetry pipelines run (see ``ObservabilityConfig`` for each field's meaning)."""

    enabled: bool = True
    pull_interval_s: float = 1.0
    metrics_interval_s: float = 10.0
    max_bytes: int = 10 * 1024 * 1024
    keep: int = 3

    @classmethod
    def from_config(cls, config: Any, environ: Mapping[str, str] | None = None) -> TelemetrySettings:
        section = config.observability
        pull = float(section.pull_interval_s)
        raw = (os.environ if environ is None else environ).get(INTERVAL_ENV, "").strip()
        if raw:
            try:
                pull = max(0.05, float(raw))
            except ValueError:
                log.warning("%s expects seconds, found %r: pulling every %g s", INTERVAL_ENV, raw, pull)
        return cls(enabled=bool(section.pipelines), pull_interval_s=pull,
                   metrics_interval_s=float(section.metrics_interval_s), max_bytes=int(section.file_max_bytes),
                   keep=int(section.file_keep))


def read_records(state_dir: Path, name: str, keep: int) -> Lines:
    """Every record of ``.baton/<name>`` and of its ``keep`` rotated files, oldest first."""
    return read_lines(Path(state_dir) / name, rotated=keep)


def read_recent(state_dir: Path, name: str, keep: int, last: int,
                select: Callable[[tuple[dict[str, Any], ...]], list[dict[str, Any]]]) -> Lines:
    """The ``last`` newest records that ``select`` keeps of ``.baton/<name>`` and its rotated files, reading the
    newest file first and older ones only while fewer were found."""
    path = Path(state_dir) / name
    chosen: list[dict[str, Any]] = []
    corrupt = 0
    for one in [path, *reversed(rotated_paths(path, keep))]:
        lines = read_lines(one)
        chosen = select(lines.records) + chosen
        corrupt += lines.corrupt
        if len(chosen) >= last:
            break
    return Lines(tuple(chosen[-last:] if last > 0 else ()), corrupt)
