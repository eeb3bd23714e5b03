"""Canary tasks: observe the window's figures (I/O), evaluate (pure ``decide``), apply weights (idempotent),
persist the record, and conclude (promotion or rollback, keeping the replaced version warm if asked). A
conclusion retires the versions it drops; the flow stops them (``tasks.services.stop_service``).

``no_canary_in_flight`` is the one guard of the commands that would silently undo a canary (slot, swap, route,
collapse): it refuses before anything changes, or rolls the canary back first when asked (``--end-canary``)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import aiohttp

from baton.canary import CanaryPolicy, Observation, Phase, TargetStats, aborted, decide, in_flight_refusal
from baton.errors import UsageError
from baton.state import CanaryRecord, ServiceSlot, now_iso
from baton.telemetry.dora import OUTCOME_ARTIFACT
from tasks.context import open_circuit, retry_transient, step
from tasks.reconcile import retire
from tasks.services import stop_service

__all__ = ["read_counters", "check_gate", "evaluate_canary", "set_canary_weight", "canary_record", "save_canary",
           "conclude_canary", "stop_expired_warm", "in_flight_canaries", "serving_ports",
           "revert_to_warm", "roll_back_canary", "no_canary_in_flight", "stop_retired"]


def _totals(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """Cumulative requests/errors of a target (refused connections and timeouts are errors) and its recent p99."""
    metrics = metrics or {}
    attempts = metrics.get("attempts") or {}
    errors = max(int(metrics.get("failed") or 0),
                 int(attempts.get("error", 0)) + int(attempts.get("timeout", 0)) + int(attempts.get("5xx", 0)))
    requests = max(int(metrics.get("requests") or 0), sum(int(v) for v in attempts.values()))
    return {"requests": requests, "errors": errors, "p99_ms": (metrics.get("latency_ms") or {}).get("p99")}


@step("read-canary-counters", retries=2, retry_delay_seconds=0.2, retry_condition_fn=retry_transient)
async def read_counters(root: str, node: str) -> dict[str, dict[str, Any]]:
    """Cumulative per-target counters of the node's adapter (stable and canary)."""
    routing = await open_circuit(root).client(node).routing()
    metrics = routing.get("target_metrics") or {}
    return {name: _totals(metrics.get(name)) for name in ("stable", "canary")}


@step("check-promotion-gate")
async def check_gate(url: str) -> bool:
    """The confirm-promotion gate: True when ``url`` answers 2xx."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url) as response:
                return 200 <= response.status < 300
    except (aiohttp.ClientError, TimeoutError):
        return False


@step("evaluate-canary")
async def evaluate_canary(policy: dict[str, Any], observation: dict[str, Any], now: float) -> dict[str, Any]:
    """One analysis step; the decision's reason and figures are logged to the run."""
    from prefect import get_run_logger

    obs = Observation(**{**observation, "phase": Phase(observation["phase"]),
                         "canary": TargetStats(**observation["canary"]), "stable": TargetStats(**observation["stable"])})
    decision = decide(CanaryPolicy(**{**policy, "steps": tuple(policy["steps"])}), obs, now)
    get_run_logger().info("%s (canary %s, stable %s)", decision.reason, obs.canary, obs.stable)
    return {**dataclasses.asdict(decision), "phase": decision.phase.value}


@step("set-canary-weight", retries=2, retry_delay_seconds=0.2, retry_condition_fn=retry_transient)
async def set_canary_weight(root: str, node: str, weight: int) -> dict[str, Any]:
    """Set the split to ``weight`` % canary (a target state, never an increment)."""
    circuit = open_circuit(root)
    state = circuit.state().node(node)
    stable, canary = state.service, state.targets["canary"]
    routing = {"strategy": "canary", "targets": [
        {"name": "stable", "host": stable.host, "port": stable.port, "weight": 100 - weight},
        {"name": "canary", "host": canary.host, "port": canary.port, "weight": weight}]}
    await circuit.client(node).set_routing(routing)
    return routing


def single_routing(slot: ServiceSlot) -> dict[str, Any]:
    """The routing of a node with one backend: all traffic to ``slot``."""
    return {"strategy": "single", "targets": [{"name": "primary", "host": slot.host, "port": slot.port, "weight": 100}]}


def canary_record(root: str, node: str) -> CanaryRecord | None:
    return open_circuit(root).state().node(node).canary


def serving_ports(root: str, node: str) -> tuple[int, int | None]:
    """The port now serving ``node`` and the one kept warm for a revert, if any."""
    node_state = open_circuit(root).state().node(node)
    return node_state.service.port, node_state.warm.port if node_state.warm else None


def in_flight_canaries(root: str) -> dict[str, CanaryRecord]:
    return {name: n.canary for name, n in open_circuit(root).state().adapters.items()
            if n.canary is not None and n.canary.in_flight}


@step("save-canary")
async def save_canary(root: str, node: str, record: CanaryRecord) -> None:
    """Persist the canary's record (the caller holds the project lock)."""
    circuit = open_circuit(root)
    state = circuit.state()
    node_state = state.node(node)
    node_state.canary = record
    node_state.updated_at = now_iso()
    circuit.store.save(state)


@step("conclude-canary", retries=2, retry_delay_seconds=0.5, retry_condition_fn=retry_transient)
async def conclude_canary(root: str, node: str) -> dict[str, Any]:
    """Put a decided canary in its final shape (idempotent): the winner is the only backend; the loser is retired
    (``retired``: for the flow to stop) or, after a promotion with keep-warm, kept running until ``warm_until``
    for ``baton route revert``. What it retires stays recorded (pending, and its lease) until it is stopped."""
    circuit = open_circuit(root)
    state = circuit.state()
    node_state = state.node(node)
    record = node_state.canary
    if record is None or record.concluded:
        return {"node": node, "concluded": False, "retired": []}
    promoted = record.phase == Phase.SUCCEEDED.value
    stable, canary = node_state.service, node_state.targets.get("canary")
    if canary is None:  # concluded by an earlier attempt that failed before saving
        winner, loser = stable, None
    else:
        winner, loser = (canary, stable) if promoted else (stable, canary)
    await circuit.client(node).set_routing(single_routing(winner))
    keep = promoted and record.keep_warm_s > 0 and loser is not None
    retired = []
    if node_state.warm is not None and (keep or not promoted):
        retired.append(node_state.warm)  # one warm version at a time
        node_state.warm, node_state.warm_until = None, 0.0
    if loser is not None and not keep:
        retired.append(loser)
    if keep:
        node_state.warm, node_state.warm_until = loser, time.time() + record.keep_warm_s
    node_state.service = winner
    node_state.targets, node_state.routing = {}, None
    node_state.canary = record.model_copy(update={"concluded": True})
    node_state.updated_at = now_iso()
    for slot in retired:
        retire(state, slot)
    circuit.store.save(state)
    await _record_outcome(node, promoted, record.weight)
    return {"node": node, "concluded": True, "outcome": record.phase, "serving": winner.port,
            "warm": loser.port if keep else None, "retired": [slot.model_dump() for slot in retired]}


async def _record_outcome(node: str, promoted: bool, weight: int) -> None:
    """The canary's conclusion as a table artifact of the run (key ``canary-outcome``): what ``baton dora`` reads
    (``baton.telemetry.dora.outcome_from_artifact``). The conclusion stands without it: a failure is logged."""
    from prefect import get_run_logger
    from prefect.artifacts import acreate_table_artifact

    row = {"node": node, "outcome": "promoted" if promoted else "rolled-back", "at": time.time(), "weight": weight}
    try:
        await acreate_table_artifact(table=[row], key=OUTCOME_ARTIFACT,
                                     description=f"canary on {node}: {row['outcome']}")
    except Exception as exc:  # noqa: BLE001 - the API being away must not undo a concluded canary
        get_run_logger().warning("the canary's outcome could not be recorded as an artifact: %s", exc)


@step("revert-to-warm-version", retries=2, retry_delay_seconds=0.5, retry_condition_fn=retry_transient)
async def revert_to_warm(root: str, node: str) -> dict[str, Any]:
    """Send all traffic back to the version a promotion kept warm; the promoted one is retired (``retired``: for
    the flow to stop; recorded as pending, and by its lease, until then)."""
    from baton.errors import UsageError

    circuit = open_circuit(root)
    state = circuit.state()
    node_state = state.node(node)
    warm, current = node_state.warm, node_state.service
    provider = circuit.provider(state)
    if warm is None or node_state.warm_until <= time.time() or not provider.service_alive(warm):
        raise UsageError(f"{node} has no previous version kept warm (none kept, expired, or exited); promote with "
                         "`--keep-warm SECONDS` to keep one, or `baton swap` the old command back.")
    await circuit.client(node).set_routing(single_routing(warm))
    node_state.service, node_state.warm, node_state.warm_until = warm, None, 0.0
    node_state.targets, node_state.routing = {}, None
    node_state.updated_at = now_iso()
    retired = [current] if retire(state, current) else []
    circuit.store.save(state)
    return {"node": node, "serving": warm.port, "stopped": current.port if not current.is_mock else None,
            "retired": [slot.model_dump() for slot in retired]}


@step("stop-expired-warm-versions")
async def stop_expired_warm(root: str, now: float) -> list[str]:
    """Stop replaced versions whose keep-warm time is over."""
    circuit = open_circuit(root)
    state = circuit.state()
    expired = [name for name, n in state.adapters.items() if n.warm is not None and n.warm_until <= now]
    if not expired:
        return []
    provider = circuit.provider(state)
    for name in expired:
        node_state = state.adapters[name]
        await asyncio.to_thread(provider.stop_service, node_state.warm)
        node_state.warm, node_state.warm_until = None, 0.0
    circuit.store.save(state)
    return expired


async def stop_retired(root: str, result: dict[str, Any]) -> None:
    """Stop the versions a conclusion or revert retired (recorded as pending, and by their leases, until now)."""
    for slot in result.pop("retired", []):
        await stop_service(root, slot)


async def roll_back_canary(root: str, node: str, reason: str) -> dict[str, Any]:
    """Roll ``node``'s in-flight canary back now (the caller holds the project lock): all traffic to stable, the
    canary stopped, ``reason`` the record's last decision."""
    record = canary_record(root, node)
    if record is None or not record.in_flight:
        return {"node": node, "concluded": False}
    await save_canary(root, node, aborted(record, reason, time.time()))
    result = await conclude_canary(root, node)
    await stop_retired(root, result)
    return result


async def no_canary_in_flight(root: str, nodes: list[str], action: str, end_canary: bool = False) -> list[str]:
    """The guard of commands that would undo a canary: refuse (``UsageError``, before anything changes) while one
    of ``nodes`` has a canary in flight, or with ``end_canary`` roll those canaries back first; returns the nodes
    whose canary was ended."""
    in_flight = {node: record for node in nodes if (record := canary_record(root, node)) is not None
                 and record.in_flight}
    if in_flight and not end_canary:
        node, record = next(iter(in_flight.items()))
        raise UsageError(in_flight_refusal(node, record, action))
    for node, record in in_flight.items():
        await roll_back_canary(root, node, f"Rollback: ended at {record.weight}% for {action}")
    return list(in_flight)
