"""The collector: one pass that keeps every running adapter's canaries current, pulls what the adapters and the
log pumps saw since the last pass, judges it, and records the violations (file, events).

Cursors (``.baton/taint_cursors.json``) say how far each source was read: per node the last sighting's ``seq``
with what identifies the adapter's ring of sightings (its process ``instance``, the generation it holds, how
much it scanned: a restarted adapter, or one loaded with other canaries, is read from its start), and
the byte offset of ``taint_sightings.jsonl`` with its inode (a rotated file is finished through ``.1``). They
are saved after the violations are appended, and a pass holds ``.baton/taint.lock``, so the conductor's ticker
and a flow's step never read the same sightings twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.config.document import atomic_write_text
from baton.control import ControlClient, ControlError
from baton.locking import held_async
from baton.eventlog import append_event
from baton.state import StateStore
from baton.taint.judge import judge
from baton.taint.registry import Canary, load_canaries, taint_body
from baton.taint.sighting import SIGHTINGS_FILE, Sighting, parse_sightings
from baton.taint.violations import Violation, append_violations

__all__ = ["CURSORS_FILE", "LOCK_FILE", "CursorStore", "Cursors", "collect_once", "collector_lock", "running_nodes",
           "push_to", "AdapterReport"]

log = logging.getLogger(__name__)
CURSORS_FILE = "taint_cursors.json"
LOCK_FILE = "taint.lock"
PAGE = 1000  # sightings per GET /taint at most (the adapter's limit)
MAX_PAGES = 20  # per node and pass: a flood is read over several passes
LOG_READ_BYTES = 4 * 1024 * 1024  # of taint_sightings.jsonl per pass
CONCURRENCY = 16
LOCK_WAIT_S = 30.0


@dataclass
class Cursors:
    """How far each source was read."""

    adapters: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> {instance, generation, since, ...}
    log: dict[str, int] = field(default_factory=dict)  # {inode, offset}

    def to_json(self) -> dict[str, Any]:
        return {"adapters": self.adapters, "log": self.log}


class CursorStore:
    """``.baton/taint_cursors.json`` (an unreadable file starts the cursors afresh, with a warning)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / CURSORS_FILE

    def load(self) -> Cursors:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            adapters = {str(k): dict(v) for k, v in dict(data.get("adapters") or {}).items()}
            cursor_log = {k: int(v) for k, v in dict(data.get("log") or {}).items() if k in ("inode", "offset")}
            return Cursors(adapters, cursor_log)
        except FileNotFoundError:
            return Cursors()
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            log.warning("taint: %s is unreadable (%s); reading every source from its start", self.path, exc)
            return Cursors()

    def save(self, cursors: Cursors) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(cursors.to_json(), indent=1) + "\n", mode=0o644)


@contextlib.asynccontextmanager
async def collector_lock(state_dir: Path, timeout_s: float = LOCK_WAIT_S) -> AsyncIterator[None]:
    """The exclusive flock on ``.baton/taint.lock`` a pass (or a clear) holds; waits without blocking the loop."""
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    async with held_async(Path(state_dir) / LOCK_FILE, timeout_s, "another taint collection"):
        yield


def running_nodes(config: Any, state_dir: Path) -> list[str]:
    """Nodes whose adapter host state records as started (whether it answers is found by asking it)."""
    state = StateStore(state_dir).load()
    if not state.running:
        return []
    return [n.name for n in config.nodes
            if n.name in state.adapters and state.adapters[n.name].host_id in state.hosts]


@dataclass
class AdapterReport:
    """What one adapter answered in a pass."""

    node: str
    answered: bool = False
    pushed: bool = False
    generation: str = ""
    dropped: int = 0
    sightings: list[Sighting] = field(default_factory=list)
    error: str = ""


def _client(config: Any, state_dir: Path, node: str) -> ControlClient:
    return ControlClient.for_node(config, node, timeout_s=5.0, connect_attempts=1, state_dir=state_dir)


async def push_to(config: Any, state_dir: Path, node: str, canaries: Sequence[Canary]) -> str:
    """Load ``canaries`` into ``node``'s adapter; returns the generation it then reports."""
    answer = await _client(config, state_dir, node).set_taint(taint_body(canaries, node))
    return str((answer or {}).get("generation") or "")


def _scanned(answer: dict[str, Any]) -> int:
    """How much the adapter's current scanning state has scanned (it starts again from 0 with a new state)."""
    scanned = answer.get("scanned") or {}
    return sum(int(scanned.get(k) or 0) for k in ("requests", "responses", "bytes"))


def _replaced(answer: dict[str, Any], cursor: dict[str, Any]) -> bool:
    """Whether the sightings ``cursor`` points into are gone: another adapter process (``instance``), another
    generation loaded (a new ring: its numbers continue in one process, start again in a new one), or counters
    lower than last read (a restarted process loaded with the same generation)."""
    return (str(answer.get("instance") or "") != cursor.get("instance", "")
            or str(answer.get("generation") or "") != cursor.get("generation", "")
            or _scanned(answer) < int(cursor.get("scanned", 0)))


async def _pull(config: Any, state_dir: Path, node: str, canaries: Sequence[Canary], wanted: str,
                cursor: dict[str, Any]) -> AdapterReport:
    """Read ``node``'s new sightings (moving ``cursor``) and load the current canaries when it has others. Reading
    from 0 after a replacement repeats nothing: the sightings before it are gone from the adapter."""
    report = AdapterReport(node)
    client = _client(config, state_dir, node)
    try:
        since = int(cursor.get("since", 0))
        answer = await client.taint(since)
        if _replaced(answer, cursor):
            if since:
                since = 0
                answer = await client.taint(0)
            cursor.update(dropped=0)
        for page in range(MAX_PAGES):
            if page:
                answer = await client.taint(since)
            report.answered = True
            report.generation = str(answer.get("generation") or "")
            found, bad = parse_sightings(answer.get("sightings"))
            if bad:
                log.warning("taint: %s returned %d sightings that are not valid; skipped", node, bad)
            report.sightings += found
            report.dropped = int(answer.get("dropped", 0) or 0)
            since = max(since, int(answer.get("next", since) or since))
            cursor.update(instance=str(answer.get("instance") or ""), generation=report.generation, since=since,
                          scanned=_scanned(answer))
            if len(found) + bad < PAGE:
                break
        if report.dropped > int(cursor.get("dropped", 0)):
            log.warning("taint: the adapter of %s dropped %d sightings before they were read", node,
                        report.dropped - int(cursor.get("dropped", 0)))
        cursor["dropped"] = report.dropped
        if report.generation != wanted:
            report.generation = await push_to(config, state_dir, node, canaries)
            report.pushed = True
            cursor.update(generation=report.generation, since=0, scanned=0, dropped=0)
            log.info("taint: loaded generation %s into the adapter of %s", wanted, node)
    except (ControlError, ValueError, TypeError, AttributeError) as exc:
        report.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return report


def _read_log(state_dir: Path, cursor: dict[str, int]) -> list[Sighting]:
    """The complete lines of ``taint_sightings.jsonl`` after ``cursor`` (which moves past them); a file rotated
    since is finished first through ``.1`` when that is the inode the cursor was in."""
    path = Path(state_dir) / SIGHTINGS_FILE
    rotated = path.with_name(path.name + ".1")
    chunks: list[bytes] = []
    try:
        current = os.stat(path)
    except OSError:
        return []
    inode, offset = cursor.get("inode"), cursor.get("offset", 0)
    if inode != current.st_ino:
        with contextlib.suppress(OSError):
            if inode is not None and os.stat(rotated).st_ino == inode:
                with rotated.open("rb") as handle:
                    handle.seek(offset)
                    chunks.append(handle.read(LOG_READ_BYTES))
        inode, offset = current.st_ino, 0
    elif current.st_size < offset:  # truncated in place
        offset = 0
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(LOG_READ_BYTES)
    complete = data[:data.rfind(b"\n") + 1]
    cursor.update(inode=inode, offset=offset + len(complete))
    lines = [raw for chunk in (*chunks, complete) for raw in chunk.splitlines() if raw.strip()]
    records = []
    for raw in lines:
        with contextlib.suppress(ValueError):
            records.append(json.loads(raw))
    found, bad = parse_sightings(records)
    if bad or len(records) < len(lines):
        log.warning("taint: %d lines of %s are not sightings; skipped", bad + len(lines) - len(records), path)
    return found


async def collect_once(config: Any, state_dir: Path, cursors: CursorStore | None = None, *,
                       nodes: Sequence[str] | None = None,
                       reports: list[AdapterReport] | None = None) -> list[Violation]:
    """One pass (see the module): returns the violations it recorded, oldest first. ``nodes``: the adapters to
    read (default: every running one); ``reports``, when given, receives what each adapter answered."""
    state_dir = Path(state_dir)
    store = cursors or CursorStore(state_dir)
    async with collector_lock(state_dir):
        registry = await asyncio.to_thread(load_canaries, state_dir)
        if not registry.canaries:
            return []
        canaries, wanted = registry.canaries, registry.generation
        position = await asyncio.to_thread(store.load)
        names = list(nodes) if nodes is not None else await asyncio.to_thread(running_nodes, config, state_dir)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(node: str) -> AdapterReport:
            async with limit:
                return await _pull(config, state_dir, node, canaries, wanted, position.adapters.setdefault(node, {}))

        answered = await asyncio.gather(*(one(n) for n in names))
        if reports is not None:
            reports.extend(answered)
        sightings = [s for r in answered for s in r.sightings]
        sightings += await asyncio.to_thread(_read_log, state_dir, position.log)
        by_fingerprint = registry.by_fingerprint()
        now = time.time()
        found = []
        for sighting in sightings:
            canary = by_fingerprint.get(sighting.fingerprint)
            if canary is None:  # of an earlier generation
                continue
            violation = judge(config, canary, sighting, detected_at=now)
            if violation is not None:
                found.append(violation)
        if found:
            await asyncio.to_thread(_record, state_dir, found)
        await asyncio.to_thread(store.save, position)
        return found


def _record(state_dir: Path, found: list[Violation]) -> None:
    append_violations(state_dir, found)
    for v in found:
        append_event(state_dir, "taint", v.node, "violation", "; ".join(v.reasons), at=v.detected_at,
                     fingerprint=v.fingerprint, edge=v.edge, tier=v.tier, direction=v.direction,
                     trace_id=v.trace_id)
