"""The conductor's telemetry pipelines: one pass pulls every running adapter's new signals and service events
and, when due, a snapshot of its metrics, and appends them to ``.baton/signals.jsonl``,
``service_events.jsonl`` and ``metrics.jsonl`` (each bounded: rotated at ``file_max_bytes``, ``file_keep``
rotated files kept).

Per node a pass asks ``GET /metrics`` (for the snapshots), then the signals numbered after the last one read
(``GET /signals?since=SEQ``, a page of at most 1,000 at a time; the adapter says which process numbered them, and
another process is read from its first), then service events: the newest one, and the ring when it is new.
Cursors (:mod:`.cursor`) are kept in ``.baton/telemetry_cursors.json``, saved after each append; a conductor
that starts again resumes from them, and on its first pass also skips what the files' ends already hold (a stop
between an append and the cursors' save writes nothing twice). Signals an adapter's ring no longer held when
read are counted per node (``dropped``, as the adapter reports them), never guessed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from baton.config.document import atomic_write_text
from baton.errors import BatonError
from baton.state import StateStore
from baton.jsonl import append_lines, tail_lines
from baton.telemetry.cursor import RingCursor, split_window
from baton.telemetry.metrics import snapshot_record
from baton.telemetry.service_events import to_service_event
from baton.telemetry.settings import CURSORS_FILE, METRICS_FILE, SERVICE_EVENTS_FILE, SIGNALS_FILE, TelemetrySettings
from baton.telemetry.signals import to_signal
from baton.telemetry.sources import CONCURRENCY, AdapterReader, ReadError, running_nodes

__all__ = ["Cursors", "CursorStore", "PassReport", "TelemetryPump", "pump_forever"]

log = logging.getLogger(__name__)
MAX_SIGNAL_PAGE = 1_000  # what the adapter answers at most per page (baton_adapter.telemetry.MAX_SIGNAL_PAGE)
MAX_PAGES = 100  # pages of signals read from one node in one pass (1,000 each); the rest waits for the next
TAIL_BYTES = 1024 * 1024  # of each file's end read at start to move the cursors past what was appended


@dataclass
class Cursors:
    """How far each node's rings were read, and when the last metric snapshot was taken."""

    signals: dict[str, RingCursor] = field(default_factory=dict)
    events: dict[str, RingCursor] = field(default_factory=dict)
    metrics_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"signals": {n: c.to_json() for n, c in self.signals.items()},
                "events": {n: c.to_json() for n, c in self.events.items()}, "metrics_at": self.metrics_at}

    def dropped(self) -> dict[str, int]:
        return {n: c.dropped for n, c in sorted(self.signals.items()) if c.dropped}


def _newest(records: tuple[dict[str, Any], ...]) -> dict[str, tuple[float, int]]:
    """Per node: the newest timestamp among ``records`` and how many carry it."""
    found: dict[str, tuple[float, int]] = {}
    for record in records:
        node, ts = record.get("node_name"), record.get("timestamp")
        if not isinstance(node, str) or isinstance(ts, bool) or not isinstance(ts, (int, float)):
            continue
        best = found.get(node)
        if best is None or ts > best[0]:
            found[node] = (float(ts), 1)
        elif ts == best[0]:
            found[node] = (best[0], best[1] + 1)
    return found


class CursorStore:
    """``.baton/telemetry_cursors.json`` (an unreadable one starts afresh, with a warning)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / CURSORS_FILE

    def load(self) -> Cursors:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            cursors = Cursors({str(n): RingCursor.from_json(c) for n, c in dict(data.get("signals") or {}).items()},
                              {str(n): RingCursor.from_json(c) for n, c in dict(data.get("events") or {}).items()},
                              float(data.get("metrics_at") or 0.0))
        except FileNotFoundError:
            cursors = Cursors()
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            log.warning("telemetry: %s is unreadable (%s); reading every adapter's rings from their start",
                        self.path, exc)
            cursors = Cursors()
        for name, rings in ((SIGNALS_FILE, cursors.signals), (SERVICE_EVENTS_FILE, cursors.events)):
            for node, (ts, same) in _newest(tail_lines(self.state_dir / name, TAIL_BYTES).records).items():
                rings[node] = rings.get(node, RingCursor()).ahead(ts, same)
        return cursors

    def save(self, cursors: Cursors) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(cursors.to_json(), indent=1) + "\n", mode=0o644)


@dataclass
class NodePull:
    """What one node gave in a pass."""

    node: str
    metrics: dict[str, Any] | None = None
    signals: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    signal_cursor: RingCursor | None = None
    event_cursor: RingCursor | None = None
    dropped: int = 0
    error: str = ""


@dataclass
class PassReport:
    """What a pass wrote: counts per file, rotations, nodes that did not answer."""

    signals: int = 0
    events: int = 0
    snapshot: bool = False
    rotations: int = 0
    dropped: int = 0
    unreachable: dict[str, str] = field(default_factory=dict)


async def _pull_signals(reader: AdapterReader, cursor: RingCursor,
                        guard: bool = False) -> tuple[list[dict[str, Any]], RingCursor, int]:
    """The node's signals numbered after the cursor's, its cursor after them, and how many of those its ring no
    longer held (``guard``: also skip records the cursor's timestamp says are written, on a pump's first pass)."""
    since, raw, lost, recorded = cursor.seq, [], 0, cursor
    for _ in range(MAX_PAGES):
        answer = await reader.json(f"/signals?since={since}")
        page = answer.get("signals") if isinstance(answer, dict) else None
        after, dropped = (answer.get("next"), answer.get("dropped")) if isinstance(answer, dict) else (None, None)
        if not isinstance(page, list) or not isinstance(after, int) or not isinstance(dropped, int):
            raise ReadError(f"node {reader.node}: GET /signals?since= answered without signals, next and dropped; "
                            "is its adapter older than the conductor? Restart the circuit (`baton down`, `baton up`).")
        instance = str(answer.get("instance") or "")
        if instance != cursor.instance:  # another adapter process (or the first read): its numbers start at 1
            cursor = replace(cursor, instance=instance, seq=0)
            if since:
                since = 0
                continue
        raw += [r for r in page if isinstance(r, dict)]
        lost += dropped
        cursor = replace(cursor, seq=after)
        if len(page) < MAX_SIGNAL_PAGE or after <= since:
            break
        since = after
    new = split_window(recorded, raw).new if guard else tuple(raw)
    records = [s for s in (to_signal(r, reader.node) for r in new) if s is not None]
    moved = replace(cursor.after(new), dropped=cursor.dropped + lost)
    return records, moved, lost


async def _pull_events(reader: AdapterReader, cursor: RingCursor) -> tuple[list[dict[str, Any]], RingCursor]:
    newest = await reader.records("/events?last_n=1")
    if not split_window(cursor, newest).new:
        return [], cursor
    ring = await reader.records("/events")
    split = split_window(cursor, ring)
    if not split.covered:
        log.warning("telemetry: the event ring of %s moved on past the last event read; older events are lost",
                    reader.node)
    records = [e for e in (to_service_event(r, reader.node) for r in split.new) if e is not None]
    return records, cursor.after(split.new)


class TelemetryPump:
    """The pipelines of one project: :meth:`pass_once` per tick (cursors kept in memory, saved after appends)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.store = CursorStore(self.state_dir)
        self.cursors: Cursors | None = None
        self.session: aiohttp.ClientSession | None = None
        self.checked: set[str] = set()  # nodes read since the cursors were loaded (the others get the guard)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def pass_once(self, config: Any, settings: TelemetrySettings, *, now: float | None = None) -> PassReport:
        """One pass over every running adapter (nothing when the circuit is down)."""
        nodes = await asyncio.to_thread(running_nodes, config, self.state_dir)
        report = PassReport()
        if not nodes:
            return report
        if self.cursors is None:
            self.cursors = await asyncio.to_thread(self.store.load)
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        cursors, session = self.cursors, self.session
        now = time.time() if now is None else now
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(node: str) -> NodePull:
            pull = NodePull(node)
            async with limit:
                try:
                    reader = AdapterReader.of(config, self.state_dir, node, session)
                    metrics = await reader.json("/metrics")
                    if not isinstance(metrics, dict):
                        raise BatonError(f"node {node}: /metrics answered {type(metrics).__name__}, expected an "
                                         "object.")
                    pull.metrics = metrics
                    pull.signals, pull.signal_cursor, pull.dropped = await _pull_signals(
                        reader, cursors.signals.get(node, RingCursor()), guard=node not in self.checked)
                    pull.events, pull.event_cursor = await _pull_events(reader, cursors.events.get(node, RingCursor()))
                except BatonError as exc:
                    pull.error = exc.message
            return pull

        pulls = await asyncio.gather(*(one(n) for n in nodes))
        snapshot_due = now - cursors.metrics_at >= settings.metrics_interval_s
        report = await asyncio.to_thread(self._write, pulls, settings, now, snapshot_due)
        for pull in pulls:
            if pull.signal_cursor is not None:
                cursors.signals[pull.node] = pull.signal_cursor
                self.checked.add(pull.node)
            if pull.event_cursor is not None:
                cursors.events[pull.node] = pull.event_cursor
        if report.snapshot:
            cursors.metrics_at = now
        if report.signals or report.events or report.snapshot or report.dropped or any(
                p.signal_cursor is not None for p in pulls):
            await asyncio.to_thread(self.store.save, cursors)
        if report.dropped:
            log.warning("telemetry: %d signals fell off the adapters' rings before they were read (%s)",
                        report.dropped, ", ".join(f"{p.node}: {p.dropped}" for p in pulls if p.dropped))
        return report

    def _write(self, pulls: list[NodePull], settings: TelemetrySettings, now: float, snapshot_due: bool) -> PassReport:
        report = PassReport(unreachable={p.node: p.error for p in pulls if p.error})
        signals = [s for p in pulls for s in p.signals]
        events = [e for p in pulls for e in p.events]
        bound = {"max_bytes": settings.max_bytes, "keep": settings.keep}
        if signals:
            report.rotations += append_lines(self.state_dir / SIGNALS_FILE, signals, **bound)
        if events:
            report.rotations += append_lines(self.state_dir / SERVICE_EVENTS_FILE, events, **bound)
        answered = {p.node: p.metrics for p in pulls if p.metrics is not None}
        if snapshot_due and answered:
            report.rotations += append_lines(self.state_dir / METRICS_FILE,
                                             [snapshot_record(now, answered, report.unreachable)], **bound)
            report.snapshot = True
        report.signals, report.events = len(signals), len(events)
        report.dropped = sum(p.dropped for p in pulls)
        return report


async def pump_forever(project: Any) -> None:
    """The conductor's ticker: a pass every ``pull_interval_s`` while the circuit runs and the pipelines are on;
    otherwise a look at baton.yaml and state every 5 s, nothing more. A failing pass is logged once (until it
    changes) and tried again at the next tick."""
    store = StateStore(project.state_dir)
    pump: TelemetryPump | None = None
    failure, silent = "", ""
    try:
        while True:
            interval = 5.0
            try:
                config = project.load()
                settings = TelemetrySettings.from_config(config)
                if settings.enabled and (await asyncio.to_thread(store.load)).running:
                    interval = settings.pull_interval_s
                    pump = pump or TelemetryPump(project.state_dir)
                    report = await pump.pass_once(config, settings)
                    quiet = "; ".join(report.unreachable.values())
                    if quiet and quiet != silent:
                        log.info("telemetry: %s", quiet)
                    silent = quiet
                elif pump is not None:
                    await pump.close()
                    pump = None
                failure = ""
            except Exception as exc:  # noqa: BLE001 - the next pass tries again
                if f"{type(exc).__name__}: {exc}" != failure:
                    failure = f"{type(exc).__name__}: {exc}"
                    log.exception("the telemetry pass failed")
            await asyncio.sleep(interval)
    finally:
        if pump is not None:
            await pump.close()
