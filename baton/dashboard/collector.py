"""Gathering what the dashboard shows (the I/O half; :mod:`baton.dashboard.model` aggregates it).

Per node, its adapter's ``/status``, ``/health`` and ``/metrics`` (``/tls`` when the circuit serves TLS), asked
concurrently over one kept-alive session with the project's management token, two seconds at most each; from
``.baton/``, the recorded state, the custodian's verdicts (live from the conductor's custodian when there is one)
and recent decisions, taint violations, and recent signals (``signals.jsonl`` while something writes it, else
the adapters' own rings); and the project's runs from the Prefect API, asked at most every few seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from baton.dashboard.model import AdapterAnswers, Dashboard, Inputs, Sample, aggregate
from baton.errors import BatonError
from baton.jsonl import tail_lines

__all__ = ["Collector", "ViolationCounts", "tail_records"]

log = logging.getLogger(__name__)
ADAPTER_TIMEOUT_S = 2.0
RUNS_EVERY_S = 3.0
SIGNALS_FILE = "signals.jsonl"
SIGNALS_FRESH_S = 30.0  # signals.jsonl written this recently is read instead of asking the adapters
TAIL_BYTES = 64 * 1024
CustodySource = Callable[[], Mapping[str, Any] | None]


def tail_records(path: Path, max_bytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The JSON objects of the last ``max_bytes`` of a JSON-lines file, oldest first (a cut first line and
    unparsable lines are skipped; a missing file is empty)."""
    return list(tail_lines(path, max_bytes).records)


class ViolationCounts:
    """Taint violations per node they were seen at, read incrementally: only the bytes appended since the last
    look are parsed; a rotation (another file at the path) counts both files again."""

    def __init__(self, state_dir: Path) -> None:
        from baton.taint.violations import VIOLATIONS_FILE

        self.path = Path(state_dir) / VIOLATIONS_FILE
        self.inode: int | None = None
        self.offset = 0
        self.counts: dict[str, int] = {}

    def _add(self, data: bytes) -> None:
        for raw in data.splitlines():
            try:
                node = json.loads(raw).get("node")
            except (ValueError, AttributeError):
                continue
            if isinstance(node, str):
                self.counts[node] = self.counts.get(node, 0) + 1

    def read(self) -> tuple[dict[str, int], int]:
        """(violations by node, their total)."""
        try:
            stat = self.path.stat()
        except OSError:
            self.inode, self.offset, self.counts = None, 0, {}
            return {}, 0
        if stat.st_ino != self.inode or stat.st_size < self.offset:
            self.inode, self.offset, self.counts = stat.st_ino, 0, {}
            try:
                self._add(self.path.with_name(self.path.name + ".1").read_bytes())
            except OSError:
                pass
        if stat.st_size > self.offset:
            try:
                with self.path.open("rb") as handle:
                    handle.seek(self.offset)
                    data = handle.read(stat.st_size - self.offset)
            except OSError:
                data = b""
            whole = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
            self._add(whole)
            self.offset += len(whole)
        return dict(self.counts), sum(self.counts.values())


class Collector:
    """Reads the dashboard's inputs for one project and keeps the previous counter readings (for rates)."""

    def __init__(self, project: Any, *, api_url: str | None, custody: CustodySource | None = None) -> None:
        self.project = project
        self.api_url = api_url or ""
        self.custody = custody
        self.previous: dict[str, Sample] = {}
        self.violations = ViolationCounts(project.state_dir)
        self._session: aiohttp.ClientSession | None = None
        self._runs: tuple[float, list[dict[str, Any]], str] = (0.0, [], "")

    async def __aenter__(self) -> Collector:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=ADAPTER_TIMEOUT_S, connect=ADAPTER_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def collect(self) -> Dashboard:
        """One reading of everything, aggregated against the previous one."""
        inputs = await self.inputs()
        dashboard, self.previous = aggregate(inputs, self.previous)
        return dashboard

    async def inputs(self) -> Inputs:
        from baton.state import StateStore

        config = self.project.load()
        state_dir = self.project.state_dir
        state = await asyncio.to_thread(StateStore(state_dir).load)
        running = state.running
        tls_mode = config.security.tls.mode.value
        names = [n.name for n in config.nodes]
        signals_from_file = running and _fresh(state_dir / SIGNALS_FILE)
        adapters, signals = await self._adapters(config, names if running else [], tls_mode,
                                                 want_signals=running and not signals_from_file)
        if signals_from_file:
            signals = await asyncio.to_thread(tail_records, state_dir / SIGNALS_FILE)
        live = self.custody() if self.custody is not None else None  # read on the loop, where the custodian changes it
        custody, decisions, (violations, violations_total) = await asyncio.to_thread(self._files, live)
        runs, runs_note = await self._recent_runs(config.name)
        return Inputs(
            circuit=config.name, nodes=[(n.name, str(n.role)) for n in config.nodes],
            edges=[(e.source, e.target, e.label) for e in config.edges], running=running, now=time.time(),
            adapters=adapters, recorded={k: v.model_dump() for k, v in state.adapters.items()},
            custody=custody, violations=violations, violations_total=violations_total, tls_mode=tls_mode,
            signals=signals, decisions=decisions, runs=runs, runs_note=runs_note,
            ui_url=self.api_url.removesuffix("/api") if self.api_url else "",
            signals_source="signals.jsonl" if signals_from_file else "adapters")

    # -- the adapters ----------------------------------------------------------------------------------------

    async def _adapters(self, config: Any, names: list[str], tls_mode: str,
                        want_signals: bool) -> tuple[dict[str, AdapterAnswers], list[dict[str, Any]]]:
        from baton.control import ControlClient, ControlError

        try:
            clients = [ControlClient.for_node(config, n, state_dir=self.project.state_dir) for n in names]
        except ControlError as exc:  # token_env names a variable this process lacks
            return {n: AdapterAnswers(error=exc.message) for n in names}, []
        answered = await asyncio.gather(*(self._ask(c, tls_mode != "off", want_signals) for c in clients))
        adapters = {c.node: answers for c, (answers, _) in zip(clients, answered, strict=True)}
        signals = [s for _, found in answered for s in found]
        return adapters, signals

    async def _ask(self, client: Any, tls: bool, want_signals: bool) -> tuple[AdapterAnswers, list[dict[str, Any]]]:
        headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
        errors: list[str] = []

        async def get(path: str) -> Any:
            try:
                async with self.session().get(client.base_url + path, headers=headers) as response:
                    if response.status >= 400:
                        body = await response.json(content_type=None)
                        errors.append((body or {}).get("error") or f"HTTP {response.status} from {path}")
                        return None
                    return await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors.append(f"its adapter does not answer on {client.base_url} ({type(exc).__name__})")
                return None

        paths = ["/status", "/health", "/metrics", "/tls" if tls else "", "/signals?last_n=25" if want_signals else ""]
        status, health, metrics, tls_answer, signals = await asyncio.gather(
            *(get(p) if p else _none() for p in paths))
        answers = AdapterAnswers(status=status, health=health, metrics=metrics, tls=tls_answer,
                                 error=errors[0] if errors else "")
        return answers, signals if isinstance(signals, list) else []

    # -- files and history ---------------------------------------------------------------------------------------

    def _files(self, live: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                              tuple[dict[str, int], int]]:
        """The custodian's verdicts (``live`` from the conductor's custodian, else its saved file), its recent
        decisions, and taint violations by node."""
        from baton.custodian.store import CustodyStore
        from baton.eventlog import EVENTS_FILE

        state_dir = self.project.state_dir
        custody = (live if live is not None else CustodyStore(state_dir).load()).get("nodes") or {}
        decisions = [e for e in tail_records(state_dir / EVENTS_FILE) if e.get("kind") == "custodian"]
        return custody, decisions, self.violations.read()

    async def _recent_runs(self, circuit: str) -> tuple[list[dict[str, Any]], str]:
        """The project's latest runs, asked at most every ``RUNS_EVERY_S`` (the Prefect API is shared)."""
        asked_at, runs, note = self._runs
        if time.monotonic() - asked_at < RUNS_EVERY_S:
            return runs, note
        if not self.api_url:
            runs, note = [], "no Prefect API is configured yet: any flow run starts one"
        else:
            from baton.history import HistoryClient

            try:
                found = await asyncio.to_thread(HistoryClient(self.api_url, timeout=2.0).runs, circuit=circuit,
                                                limit=15, project_tag=self.project.run_tag)
                runs, note = [r.to_json() for r in found], ""
            except BatonError as exc:
                note = exc.message  # the runs seen last stay shown, with why they may be stale
        self._runs = (time.monotonic(), runs, note)
        return runs, note


async def _none() -> None:
    return None


def _fresh(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < SIGNALS_FRESH_S
    except OSError:
        return False
