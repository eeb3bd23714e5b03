"""Canary flows.

``route_canary`` (``baton route canary <node> <cmd> --promote``) starts the canary, persists its record, then
evaluates it every interval until it is promoted or rolled back: each evaluation a task run whose reason is
logged. ``canary_tick`` (the scheduled deployment ``baton serve`` runs) advances every in-flight canary by one
evaluation, so a canary started with ``--detach``, or one whose foreground run was cut short, goes on by
itself. Both take the project lock only around an evaluation, never while waiting for the next one, and
whichever comes first at a due time evaluates: the other finds a fresh window and waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any

from prefect import flow

from baton.canary import (
    TERMINAL,
    CanaryPolicy,
    Decision,
    Phase,
    advanced,
    due,
    new_record,
    next_due_at,
    observe,
)
from baton.errors import LockTimeout, UsageError
from baton.state import CanaryRecord
from flows.route import route_split
from tasks.audit import label_run, record_change
from tasks.canary import (
    canary_record,
    check_gate,
    conclude_canary,
    evaluate_canary,
    in_flight_canaries,
    read_counters,
    revert_to_warm,
    roll_back_canary,
    save_canary,
    serving_ports,
    set_canary_weight,
    stop_expired_warm,
    stop_retired,
)
from tasks.cloudrun import deploys_circuit
from tasks.context import project_locked

__all__ = ["route_canary", "canary_tick", "route_revert", "advance"]

FOREGROUND_LOCK_WAIT_S = 600.0  # the foreground loop waits out a long build rather than give up


async def _evaluate(root: str, node: str, record: CanaryRecord) -> CanaryRecord:
    counters = await read_counters(root, node)
    gate = await check_gate(record.gate_url) if record.gate_url else None
    now = time.time()
    raw = await evaluate_canary(record.policy, dataclasses.asdict(observe(record, counters, gate)), now)
    decision = Decision(**{**raw, "phase": Phase(raw["phase"])})
    updated = advanced(record, decision, counters, now)
    if updated.weight != record.weight and updated.phase in (Phase.PROGRESSING.value, Phase.PROMOTING.value):
        await set_canary_weight(root, node, updated.weight)
    await save_canary(root, node, updated)
    return updated


async def advance(root: str, node: str, lock_timeout_s: float | None = None) -> CanaryRecord | None:
    """One evaluation of ``node``'s canary if one is due (and its conclusion once decided), under the lock."""
    async with project_locked(root, lock_timeout_s):
        record = canary_record(root, node)
        if record is None or not due(record, time.time()):
            return record
        if Phase(record.phase) not in TERMINAL:
            record = await _evaluate(root, node, record)
        if Phase(record.phase) in TERMINAL:
            await stop_retired(root, await conclude_canary(root, node))
        return canary_record(root, node)


def _report(node: str, record: CanaryRecord | None, **extra: Any) -> dict[str, Any]:
    return {"node": node, "outcome": record.phase if record else "unknown",
            "reason": record.last_reason if record else "",
            "decisions": [d["reason"] for d in record.decisions] if record else [],
            "weight": record.weight if record else 0, **extra}


@flow(name="route-canary-promote", flow_run_name="route-canary-promote-{node}")
async def route_canary(root: str, node: str, command: str, steps: list[int] | None = None,
                       error_threshold_pct: float = 5.0, latency_threshold_ms: float = 500.0,
                       interval_s: float = 30.0, min_requests: int = 20, failed_checks: int = 1,
                       max_duration_s: float = 3600.0, max_no_data_windows: int = 10, gate_url: str | None = None,
                       keep_warm_s: float = 0.0, detach: bool = False, force: bool = False, end_canary: bool = False,
                       actor: str = "") -> dict[str, Any]:
    if deploys_circuit(root):
        raise UsageError(f"an analysed canary reads each version's metrics from the adapters' management API, "
                         f"which Cloud Run does not expose; step {node}'s split with `baton route canary {node} "
                         f"IMAGE --pct N` and promote with `baton swap {node} IMAGE`.")
    policy = CanaryPolicy(steps=tuple(steps or (10, 25, 50, 100)), error_threshold_pct=error_threshold_pct,
                          latency_threshold_ms=latency_threshold_ms, interval_s=interval_s, min_requests=min_requests,
                          failed_checks_before_rollback=failed_checks, max_duration_s=max_duration_s,
                          max_no_data_windows=max_no_data_windows)
    async with project_locked(root):
        started = await route_split(root=root, node=node, command=command, strategy="canary",
                                    weight=policy.steps[0], force=force, end_canary=end_canary)
        counters = await read_counters(root, node)
        await save_canary(root, node, new_record(policy, command, counters, time.time(), gate_url=gate_url,
                                                 keep_warm_s=keep_warm_s, actor=actor))
    record = canary_record(root, node)
    if detach:  # the scheduled canary tick takes it from here
        return _report(node, record, port=started["port"], notes=started["notes"], detached=True,
                       next_evaluation_at=next_due_at(record))
    while record is not None and record.in_flight:
        await asyncio.sleep(max(0.0, next_due_at(record) - time.time()) if not due(record, time.time()) else 0)
        record = await advance(root, node, FOREGROUND_LOCK_WAIT_S)
    serving, warm = serving_ports(root, node)
    await record_change(root, "route-canary", node, {"command": command},
                        {"outcome": record.phase if record else "unknown",
                         "reason": record.last_reason if record else ""})
    return _report(node, record, port=started["port"], notes=started["notes"], serving=serving, warm=warm)


@flow(name="route-revert", flow_run_name="route-revert-{node}")
async def route_revert(root: str, node: str, actor: str = "") -> dict[str, Any]:
    """Undo the latest promotion at once: roll back an in-flight canary, or return to the version kept warm."""
    from tasks.adapters import node_snapshot

    before = await node_snapshot(root, node)
    record = canary_record(root, node)
    if record is not None and record.in_flight:
        by = f" by {actor}" if actor else ""
        result = {**await roll_back_canary(root, node, f"Rollback: reverted{by} at {record.weight}%"),
                  "reverted": "canary"}
    else:
        result = {**await revert_to_warm(root, node), "reverted": "promotion"}
        await stop_retired(root, result)
    await record_change(root, "route-revert", node, before, result)
    return result


def _project_root(root: str) -> str:
    return root or os.environ.get("BATON_PROJECT") or os.getcwd()


def _tick_run_name() -> str:
    """``canary-tick-<nodes>`` when canaries are in flight, ``canary-tick-idle`` otherwise (hidden in history)."""
    from prefect.runtime import flow_run

    try:
        nodes = sorted(in_flight_canaries(_project_root(flow_run.parameters.get("root", ""))))
    except Exception:  # noqa: BLE001 - a bad root fails in the flow itself, with its message
        nodes = []
    return "canary-tick-" + ("-".join(nodes) if nodes else "idle")


@flow(name="canary-tick", flow_run_name=_tick_run_name)
async def canary_tick(root: str = "") -> dict[str, Any]:
    """Advance every in-flight canary by one evaluation, where one is due; stop expired warm versions."""
    root = _project_root(root)
    now = time.time()
    in_flight = in_flight_canaries(root)
    await label_run(root, "canary-tick", sorted(in_flight))
    advanced_nodes: dict[str, Any] = {}
    waiting: dict[str, float] = {}
    busy: list[str] = []
    for node, record in sorted(in_flight.items()):
        if not due(record, now):
            waiting[node] = round(next_due_at(record) - now, 1)
            continue
        try:
            record = await advance(root, node)
        except LockTimeout:  # another command holds the project: the next tick tries again
            busy.append(node)
            continue
        if record is not None:
            advanced_nodes[node] = {"phase": record.phase, "weight": record.weight, "reason": record.last_reason}
    try:
        async with project_locked(root):
            expired = await stop_expired_warm(root, time.time())
    except LockTimeout:
        expired = []
    return {"advanced": advanced_nodes, "waiting_s": waiting, "busy": busy, "stopped_warm": expired}

