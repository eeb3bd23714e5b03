"""Canary tasks: observe the window's figures (I/O), evaluate (pure ``decide``), apply weights (idempotent)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp

from baton.canary import CanaryPolicy, Observation, Phase, TargetStats, decide
from tasks.context import open_circuit, retry_transient, step

__all__ = ["read_counters", "check_gate", "evaluate_canary", "set_canary_weight"]


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


def window(before: dict[str, Any], now: dict[str, Any]) -> TargetStats:
    """What a target served between two readings of its counters."""
    return TargetStats(requests=max(0, now["requests"] - before["requests"]),
                       errors=max(0, now["errors"] - before["errors"]), p99_ms=now["p99_ms"])


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
async def set_canary_weight(root: str, node: str, stable: dict[str, Any], canary: dict[str, Any],
                            weight: int) -> dict[str, Any]:
    """Set the split to ``weight`` % canary (a target state, never an increment)."""
    routing = {"strategy": "canary", "targets": [
        {"name": "stable", "host": stable["host"], "port": stable["port"], "weight": 100 - weight},
        {"name": "canary", "host": canary["host"], "port": canary["port"], "weight": weight}]}
    await open_circuit(root).client(node).set_routing(routing)
    await asyncio.sleep(0)
    return routing
