"""Steps of the taint soak: drive canary-carrying traffic made from the contracts, wait until every sighting
is judged, and keep the report (a markdown artifact on the run, and ``.baton/taint_report.json``)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from baton.taint.soak import (
    SoakReport,
    SoakTarget,
    carries,
    render_markdown,
    seeding_traceparent,
    soak_targets,
)
from baton.wiring import node_url, tls_on
from tasks.context import open_circuit, progress_lines, step

__all__ = ["drive_soak_traffic", "judged_violations", "keep_soak_report", "log_pumps_scanning", "REPORT_FILE"]

REPORT_FILE = "taint_report.json"
MAX_IN_FLIGHT = 16
REQUEST_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 5.0
COLLECT_EVERY_S = 0.25
PUMPS_WAIT_S = 30.0  # how long the soak waits for the log pumps (to load the canaries, to catch up) at most


def _client_tls(state_dir: Path) -> ssl.SSLContext | None:
    from baton.certs.layout import TlsLayout

    bundle = TlsLayout.of(state_dir).bundle
    return ssl.create_default_context(cafile=str(bundle)) if bundle.exists() else None


class _Requests:
    """The requests of one target, made on demand: one per operation in turn, each from a fresh seed."""

    def __init__(self, target: SoakTarget) -> None:
        from baton_adapter.mock import MockEngine

        self.target = target
        self.engine = MockEngine.from_contract(target.contract, node=target.node) if target.contract else None
        if self.engine is not None and target.canaries:
            self.engine.seed_canaries(target.canaries, direction="request")
        self.values = [v for values in target.canaries.values() for v in values]
        self.operations = [op for op in (self.engine.operations if self.engine else ())
                           if op.method in ("get", "post", "put", "patch")]
        self.turn = 0

    def next(self) -> tuple[str, str, dict[str, str], bytes | None, bool]:
        """(method, url, headers, body, carries a canary) of the next request."""
        from baton_adapter.mock import example_request

        turn = self.turn
        self.turn += 1
        headers = {"traceparent": seeding_traceparent()} if self.target.seeding else {}
        if not self.operations:
            return "GET", self.target.url + "/", headers, None, False
        op = self.operations[turn % len(self.operations)]
        request = example_request(self.engine, op, seed=0x50AC + turn)
        query = urlencode(request.query)
        url = self.target.url + request.path + (f"?{query}" if query else "")
        data = request.body_bytes()
        return request.method, url, {**request.headers, **headers}, data, carries(data, self.values)


@step("drive-soak-traffic")
async def drive_soak_traffic(root: str, canaries: list[dict[str, Any]], duration_s: float, rate: float) -> dict[str, Any]:
    """Send ``rate`` requests a second for ``duration_s`` to every ingress node and every live node with canaries of
    its own, spread evenly over them; returns per-node counts ``{sent, failed, carrying, statuses}``."""
    circuit = open_circuit(root)
    config = circuit.config
    state = circuit.state()
    live = [name for name, node in state.adapters.items() if not node.service.is_mock]
    tls = tls_on(config)
    urls = {n.name: node_url(n, tls=tls) for n in config.nodes}
    targets = soak_targets(config, live=live, canaries=canaries, url_of=urls, root=str(circuit.root))
    progress = progress_lines()
    progress(f"driving {rate:g} req/s for {duration_s:g} s through {', '.join(t.node for t in targets)}")
    makers = [_Requests(t) for t in targets]
    counts: dict[str, dict[str, Any]] = {t.node: {"sent": 0, "failed": 0, "carrying": 0, "statuses": {}}
                                          for t in targets}
    total = max(1, int(duration_s * rate))
    interval = 1.0 / rate
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(ssl=_client_tls(circuit.state_dir) if tls else False, limit=MAX_IN_FLIGHT)

    async def one(session: aiohttp.ClientSession, maker: _Requests) -> None:
        method, url, headers, body, carrying = maker.next()
        tally = counts[maker.target.node]
        try:
            async with session.request(method, url, headers=headers, data=body, allow_redirects=False) as resp:
                await resp.read()
                key = f"{resp.status // 100}xx"
                tally["statuses"][key] = tally["statuses"].get(key, 0) + 1
        except (aiohttp.ClientError, OSError, TimeoutError):
            tally["failed"] += 1
        finally:
            tally["sent"] += 1
            tally["carrying"] += int(carrying)
            gate.release()

    started = time.monotonic()
    last_note = started
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        pending: set[asyncio.Task[None]] = set()
        for index in range(total):
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing to the asked rate, not a stand-in for readiness
            await gate.acquire()
            task = asyncio.create_task(one(session, makers[index % len(makers)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if time.monotonic() - last_note >= PROGRESS_EVERY_S:
                last_note = time.monotonic()
                sent = sum(c["sent"] for c in counts.values())
                progress(f"{sent}/{total} requests sent, {sum(c['failed'] for c in counts.values())} unanswered")
        if pending:
            await asyncio.gather(*pending)
    progress(f"{total} requests sent in {time.monotonic() - started:.1f} s")
    return counts


@step("keep-soak-report")
async def keep_soak_report(root: str, report: dict[str, Any]) -> str:
    """Attach the report to the run as a markdown artifact and write it to ``.baton/taint_report.json``."""
    from prefect.artifacts import acreate_markdown_artifact

    parsed = SoakReport.model_validate(report)
    path = open_circuit(root).state_dir / REPORT_FILE
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    tmp.replace(path)
    await acreate_markdown_artifact(key="taint-soak-report", markdown=render_markdown(parsed),
                                    description=f"taint soak: {'passed' if parsed.passed else 'violations found'}")
    return str(path)


@step("wait-log-pumps-scanning")
async def log_pumps_scanning(root: str) -> dict[str, Any]:
    """Wait until every live log pump scans for the canaries just seeded (a line printed before would be
    scanned for the old set); after ``PUMPS_WAIT_S`` go on and name the pumps that did not."""
    from baton.taint.pumps import live_pumps, not_scanning, registry_version

    state_dir = open_circuit(root).state_dir
    deadline = time.monotonic() + PUMPS_WAIT_S
    while True:
        pumps = await asyncio.to_thread(live_pumps, state_dir)
        waiting = not_scanning(pumps, registry_version(state_dir))
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(COLLECT_EVERY_S)
    if waiting:
        progress_lines()(f"the log pumps of {', '.join(waiting)} did not load the canaries within "
                         f"{PUMPS_WAIT_S:.0f} s; their logs may be scanned late")
    return {"pumps": len(pumps), "not_scanning": waiting}


@step("judge-soak-sightings")
async def judged_violations(root: str, fingerprints: list[str], traffic_ended: float) -> list[dict[str, Any]]:
    """Collect until every sighting of the soak is judged, then every violation of its canaries (oldest first).

    Adapters record a sighting as the bytes pass, so once the traffic has been answered one pass reads them all;
    the log pumps write theirs as they scan the services' output, so passes go on until every live pump has
    scanned every line printed before the traffic ended (``baton.taint.pumps``) and a pass finds nothing new
    (within ``PUMPS_WAIT_S``; then the pumps still behind are named)."""
    from baton.taint.collector import CursorStore, collect_once
    from baton.taint.pumps import behind, live_pumps
    from baton.taint.violations import load_violations

    circuit = open_circuit(root)
    store = CursorStore(circuit.state_dir)
    deadline = time.monotonic() + PUMPS_WAIT_S
    while True:
        late = behind(await asyncio.to_thread(live_pumps, circuit.state_dir), traffic_ended)
        found = await collect_once(circuit.config, circuit.state_dir, store)
        if not found and not late:
            break
        if time.monotonic() > deadline:
            if late:
                progress_lines()(f"the log pumps of {', '.join(late)} had not caught up {PUMPS_WAIT_S:.0f} s after "
                                 "the traffic; lines they had not scanned yet are not judged")
            break
        await asyncio.sleep(COLLECT_EVERY_S)
    ours = set(fingerprints)
    recorded, _ = await asyncio.to_thread(load_violations, circuit.state_dir)
    return [v.model_dump() for v in recorded if v.fingerprint in ours]
