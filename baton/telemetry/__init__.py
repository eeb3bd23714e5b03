"""Telemetry in the control plane: the conductor's pipelines that pull every running adapter's signals, service
events and metrics into ``.baton/`` (:mod:`.pipelines`, bounded files), what the commands compute from those
files (:mod:`.signals`, :mod:`.service_events`, :mod:`.metrics`, pure), the circuit's merged Prometheus
exposition (:mod:`.exposition`) and the DORA metrics of the run history (:mod:`.dora`, pure)."""

from __future__ import annotations

from baton.telemetry.cursor import RingCursor, Split, split_window
from baton.telemetry.metrics import metrics_row, select_snapshots, snapshot_record
from baton.telemetry.service_events import select_events, to_service_event
from baton.telemetry.settings import (
    CURSORS_FILE,
    INTERVAL_ENV,
    METRICS_FILE,
    SERVICE_EVENTS_FILE,
    SIGNALS_FILE,
    TelemetrySettings,
    read_recent,
    read_records,
)
from baton.telemetry.signals import SIGNAL_FIELDS, PathStats, is_error, select_signals, signal_stats, to_signal

__all__ = [
    "CURSORS_FILE",
    "INTERVAL_ENV",
    "METRICS_FILE",
    "SERVICE_EVENTS_FILE",
    "SIGNALS_FILE",
    "SIGNAL_FIELDS",
    "PathStats",
    "RingCursor",
    "Split",
    "TelemetrySettings",
    "is_error",
    "metrics_row",
    "read_recent",
    "read_records",
    "select_events",
    "select_signals",
    "select_snapshots",
    "signal_stats",
    "snapshot_record",
    "split_window",
    "to_service_event",
    "to_signal",
]
