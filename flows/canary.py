"""``baton route canary <node> <cmd> --promote``: start the canary, then evaluate it every
interval (each evaluation a task run with its reason) until it is promoted or rolled back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import flow

from baton.canary import CanaryPolicy, Phase
from flows.route import route_split
from tasks.adapters import set_routing
from tasks.audit import record_change
from tasks.canary import check_gate, evaluate_canary, read_counters, set_canary_weight, window
from tasks.circuit import current_service, extra_versions
from tasks.services import record_routing, record_service, stop_service

__all__ = ["route_canary"]


@flow(name="route-canary-promote", flow_run_name="route-canary-promote-{node}")
async def route_canary(root: str, node: str, command: str, steps: list[int] | None = None,
                       error_threshold_pct: float = 5.0, latency_threshold_ms: float = 500.0,
                       interval_s: float = 30.0, min_requests: int = 20, failed_checks: int = 1,
                       max_duration_s: float = 3600.0, gate_url: str | None = None,
                       force: bool = False) -> dict[str, Any]:
    policy = CanaryPolicy(steps=tuple(steps or (10, 25, 50, 100)), error_threshold_pct=error_threshold_pct,
                          latency_threshold_ms=latency_threshold_ms, interval_s=interval_s, min_requests=min_requests,
                          failed_checks_before_rollback=failed_checks, max_duration_s=max_duration_s)
    started = await route_split(root=root, node=node, command=command, strategy="canary", weight=policy.steps[0],
                                force=force)
    stable, canary = current_service(root, node), extra_versions(root, node)["canary"]
    state = {"phase": Phase.PROGRESSING.value, "weight": policy.steps[0], "started_at": time.time(),
             "last_step_at": time.time(), "failed_checks": 0}
    baseline = await read_counters(root, node)
    decisions = []
    wake = state["last_step_at"] + policy.interval_s
    while True:
        await asyncio.sleep(max(0.0, wake - time.time()))
        counters = await read_counters(root, node)
        gate = await check_gate(gate_url) if gate_url else None
        observation = {**state, "canary": vars(window(baseline["canary"], counters["canary"])),
                       "stable": vars(window(baseline["stable"], counters["stable"])), "gate_open": gate}
        decision = await evaluate_canary(vars(policy) | {"steps": list(policy.steps)}, observation, time.time())
        decisions.append(decision["reason"])
        if decision["evaluated"] or decision["weight"] != state["weight"]:
            baseline, state["last_step_at"] = counters, time.time()
        wake = time.time() + policy.interval_s  # judged or not, evaluations are one interval apart
        state["last_step_at"] = min(state["last_step_at"], wake - policy.interval_s)
        state.update(phase=decision["phase"], failed_checks=decision["failed_checks"])
        if decision["phase"] == Phase.PROGRESSING.value and decision["weight"] != state["weight"]:
            await set_canary_weight(root, node, stable, canary, decision["weight"])
            state["weight"] = decision["weight"]
        elif decision["phase"] == Phase.PROMOTING.value:
            await set_canary_weight(root, node, stable, canary, 100)
            state["weight"] = 100
        elif decision["phase"] in (Phase.SUCCEEDED.value, Phase.FAILED.value):
            break
    winner, loser = (canary, stable) if decision["phase"] == Phase.SUCCEEDED.value else (stable, canary)
    await set_routing(root, node, {"strategy": "single", "targets": [
        {"name": "primary", "host": winner["host"], "port": winner["port"], "weight": 100}]})
    await record_service(root, node, winner)
    await record_routing(root, node, None, {})
    await stop_service(root, loser)
    await record_change(root, "route-canary", node, {"stable": stable["port"], "canary": canary["port"]},
                        {"command": command, "outcome": decision["phase"], "reason": decision["reason"]})
    return {"node": node, "outcome": decision["phase"], "reason": decision["reason"], "decisions": decisions,
            "port": started["port"], "serving": winner["port"]}
