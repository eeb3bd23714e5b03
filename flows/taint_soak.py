"""The taint soak test (``baton test --canary``, or the ``taint-soak`` deployment on a schedule): seed canaries
where the circuit holds data, drive traffic made from the contracts through it, let the adapters and log
pumps report every canary they see, judge, report, and clear what it seeded. A canary seen outside its scope,
across an edge that does not carry its tier, or in a service log fails the soak: the run ends Failed, its
report kept as the run's artifact and in ``.baton/taint_report.json``."""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import flow

from baton.taint.soak import SoakFailed, failure_summary, seed_plan, summarize
from tasks.audit import label_run
from tasks.context import open_circuit, project_locked
from tasks.taint import clear_canaries, push_canaries, seed_canaries
from tasks.taint_soak import drive_soak_traffic, judged_violations, keep_soak_report, log_pumps_scanning

__all__ = ["taint_soak"]


def _project_root(root: str) -> str:
    return root or os.environ.get("BATON_PROJECT") or os.getcwd()


@flow(name="taint-soak", flow_run_name="taint-soak")
async def taint_soak(root: str = "", tiers: list[str] | None = None, duration_s: float = 300.0, rate: float = 20.0,
                     nodes: list[str] | None = None, circuit: str = "") -> dict[str, Any]:
    """Seed, drive, scan, report, clear. ``tiers``: the data tiers seeded (default PII); ``nodes``: only these
    (default: the ingress and every node that declares data of the tiers). Returns the report."""
    root = _project_root(root)
    tiers = [t.upper() for t in (tiers or ["PII"])]
    config = open_circuit(root).config
    await label_run(root, "taint-soak", list(nodes or []))
    plan = seed_plan(config, nodes=list(nodes or []), tiers=tiers)
    async with project_locked(root):
        canaries = await seed_canaries(root, plan)
        await push_canaries(root)
    await log_pumps_scanning(root)
    started = time.time()
    sent = await drive_soak_traffic(root, canaries, duration_s, rate)
    ended = time.time()
    violations = await judged_violations(root, [c["fingerprint"] for c in canaries], ended)
    report = summarize(circuit=config.name, tiers=tiers, rate=rate, started_at=started, ended_at=ended,
                       duration_s=ended - started, canaries=canaries, sent=sent, violations=violations)
    await keep_soak_report(root, report.model_dump())
    async with project_locked(root):
        await clear_canaries(root, [c["fingerprint"] for c in canaries])
        await push_canaries(root)
    if not report.passed:  # the run ends Failed (red in the UI, in history, for a schedule) with the report kept
        raise SoakFailed(failure_summary(report))
    return report.model_dump()
