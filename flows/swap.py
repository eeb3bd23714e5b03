"""``baton swap <node> <command>``: hot-swap a slotted service with zero failed
requests. The new version starts on a fresh port and is health-gated; the
switch is one atomic call on the adapter; the old version is drained (requests
in flight complete) and only then stopped. Any failure before the switch stops
the new version; a failure at the switch restores the old backend."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow
from prefect.transactions import transaction

from baton.errors import UsageError
from tasks.adapters import drain_backend, node_snapshot, switch_backend
from tasks.audit import record_change
from tasks.canary import no_canary_in_flight
from tasks.cloudrun import deploy_version, deploys_circuit
from tasks.circuit import current_service
from tasks.services import (
    needs_validation,
    plan_service,
    record_service,
    start_service,
    stop_service,
    validate_service_contract,
    wait_service_ready,
)

__all__ = ["swap"]


@flow(name="swap", flow_run_name="swap-{node}")
async def swap(root: str, node: str, command: str, force: bool = False, timeout_s: float = 30.0,
               drain_timeout_s: float = 30.0, end_canary: bool = False) -> dict[str, Any]:
    if deploys_circuit(root):  # a new revision that takes all traffic once ready; the old one drains
        cloud = await deploy_version(root, node, command, 100)
        return {"node": node, "port": 0, "old_port": 0, "revision": cloud["revision"],
                "old_revision": cloud["previous"], "command": command, "drained": True, "notes": []}
    await no_canary_in_flight(root, [node], f"swap {node}", end_canary)  # a canary would re-apply its split
    old = current_service(root, node)
    if old is None:
        raise UsageError(f"nothing is slotted into {node}; use `baton slot {node} <command>` first.")
    before, plan = await asyncio.gather(node_snapshot(root, node), plan_service(root, node, command))
    old = current_service(root, node) or old  # as planning left it (it adopts what a cut-short command left serving)
    with transaction():  # rollback: the switch restores the old backend, the new process is stopped
        new = await start_service(root, plan)
        await wait_service_ready(root, node, new, timeout_s)
        if needs_validation(root, node):
            await validate_service_contract(root, node, new, force)
        await switch_backend(root, node, {"host": new["host"], "port": new["port"]},
                             {"host": old["host"], "port": old["port"]})
    await record_service(root, node, new)  # the old one stays recorded (pending, leased) until it is stopped
    drained = await drain_backend(root, node, old["host"], old["port"], drain_timeout_s)
    await stop_service(root, old)
    await record_change(root, "swap", node, before, {"command": command, "force": force})
    return {"node": node, "port": new["port"], "old_port": old["port"], "command": command, "drained": drained,
            "notes": plan["notes"]}
