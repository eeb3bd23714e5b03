"""Routing flows: ``route ab|canary`` start a second version and split traffic
by weight; ``route set`` installs a routing table; ``route lock|unlock``;
``route clear`` returns to the single primary version. Weights are always set,
never incremented, so every flow is safe to rerun."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow
from prefect.transactions import transaction

from baton.errors import UsageError
from tasks.adapters import node_snapshot, restorable_routing, set_locked, set_routing, switch_routing
from tasks.audit import record_change
from tasks.canary import no_canary_in_flight
from tasks.circuit import current_service, extra_versions
from tasks.cloudrun import deploy_version, deploys_circuit, drop_version
from tasks.services import (
    needs_validation,
    plan_service,
    record_routing,
    start_service,
    stop_service,
    validate_service_contract,
    wait_service_ready,
)

__all__ = ["route_split", "route_set", "route_lock", "route_clear"]


def _target(name: str, slot: dict[str, Any], weight: int) -> dict[str, Any]:
    return {"name": name, "host": slot["host"], "port": slot["port"], "weight": weight}


def _primary(root: str, node: str) -> dict[str, Any]:
    primary = current_service(root, node)
    if primary is None:
        raise UsageError(f"{node} is served by its mock; `baton slot {node} <command>` a first version before splitting.")
    return primary


@flow(name="route-split", flow_run_name="route-{strategy}-{node}")
async def route_split(root: str, node: str, command: str, strategy: str, weight: int, force: bool = False,
                      timeout_s: float = 30.0, end_canary: bool = False) -> dict[str, Any]:
    """Start a second version of ``node`` and send it ``weight`` % (strategy weighted: a/b; canary: stable/canary).
    On a provider that deploys whole circuits the version is a revision and the split its traffic split."""
    if deploys_circuit(root):
        cloud = await deploy_version(root, node, command, weight)
        return {"node": node, "strategy": strategy, "routing": {"strategy": strategy, "traffic": cloud["split"]},
                "port": 0, "revision": cloud["revision"], "notes": []}
    await no_canary_in_flight(root, [node], f"route {'ab' if strategy == 'weighted' else strategy} {node}", end_canary)
    names = ("a", "b") if strategy == "weighted" else ("stable", "canary")
    primary = _primary(root, node)
    replaced = extra_versions(root, node)
    before, plan = await asyncio.gather(node_snapshot(root, node), plan_service(root, node, command))
    with transaction():  # rollback: previous routing restored, the second version stopped
        second = await start_service(root, plan)
        routing = {"strategy": strategy, "targets": [_target(names[0], primary, 100 - weight),
                                                     _target(names[1], second, weight)]}
        await wait_service_ready(root, node, second, timeout_s)
        if needs_validation(root, node):
            await validate_service_contract(root, node, second, force)
        await switch_routing(root, node, routing, restorable_routing(before))
    await record_routing(root, node, routing, {names[1]: second})
    for old in replaced.values():
        await stop_service(root, old)
    await record_change(root, f"route-{strategy}", node, before, {"command": command, "weight": weight})
    return {"node": node, "strategy": strategy, "routing": routing, "port": second["port"], "notes": plan["notes"]}


@flow(name="route-set", flow_run_name="route-set-{node}")
async def route_set(root: str, node: str, routing: dict[str, Any], end_canary: bool = False) -> dict[str, Any]:
    """Install a routing table as given (targets must already be running)."""
    await no_canary_in_flight(root, [node], f"route set {node}", end_canary)
    before = await node_snapshot(root, node)
    applied = await set_routing(root, node, routing)
    await record_routing(root, node, applied, extra_versions(root, node))
    await record_change(root, "route-set", node, before, {"routing": routing})
    return {"node": node, "routing": applied}


@flow(name="route-lock", flow_run_name="route-lock-{node}")
async def route_lock(root: str, node: str, locked: bool) -> dict[str, Any]:
    """Lock (or unlock) a node's routing: changes are refused with 423 while locked."""
    before = await node_snapshot(root, node)
    applied = await set_locked(root, node, locked)
    await record_routing(root, node, applied, extra_versions(root, node))
    await record_change(root, "route-lock" if locked else "route-unlock", node, before, {"locked": locked})
    return {"node": node, "locked": locked}


@flow(name="route-clear", flow_run_name="route-clear-{node}")
async def route_clear(root: str, node: str, end_canary: bool = False) -> dict[str, Any]:
    """Back to one backend: the primary version (or the mock) gets all traffic; extra versions stop."""
    if deploys_circuit(root):
        cloud = await drop_version(root, node)
        return {"node": node, "stopped": [], "routing": {"strategy": "single", "traffic": cloud["split"]}}
    await no_canary_in_flight(root, [node], f"route clear {node}", end_canary)
    before = await node_snapshot(root, node)
    primary = current_service(root, node)
    routing = ({"strategy": "single", "targets": [_target("primary", primary, 100)]} if primary
               else None)
    if routing:
        await set_routing(root, node, routing)
    else:
        from tasks.adapters import set_backend

        await set_backend(root, node, {"mock": True})
    extra = extra_versions(root, node)
    await record_routing(root, node, None, {})
    for slot in extra.values():
        await stop_service(root, slot)
    await record_change(root, "route-clear", node, before, {})
    return {"node": node, "stopped": sorted(extra), "routing": routing}
