"""``baton slot <node> <command>``: start a real service behind a node, prove it
ready and faithful to the contract, then switch the adapter to it. Any failure
leaves the previous backend serving and stops the new process."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow
from prefect.transactions import transaction

from tasks.adapters import node_snapshot, switch_backend
from tasks.audit import record_change
from tasks.canary import no_canary_in_flight
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

__all__ = ["slot"]

SKIPPED = {"ok": True, "skipped": "no contract"}


@flow(name="slot", flow_run_name="slot-{node}")
async def slot(root: str, node: str, command: str, force: bool = False, timeout_s: float = 30.0,
               end_canary: bool = False) -> dict[str, Any]:
    await no_canary_in_flight(root, [node], f"slot {node}", end_canary)  # a canary would re-apply its split
    before, plan = await asyncio.gather(node_snapshot(root, node), plan_service(root, node, command))
    previous = current_service(root, node)  # as planning left it (it adopts what a cut-short command left serving)
    fallback = {"host": previous["host"], "port": previous["port"]} if previous else {"mock": True}
    with transaction():  # a failure stops the new process (and undoes the switch): the old backend keeps serving
        service = await start_service(root, plan)
        ready = await wait_service_ready(root, node, service, timeout_s)
        report = await validate_service_contract(root, node, service, force) if needs_validation(root, node) else SKIPPED
        await switch_backend(root, node, {"host": service["host"], "port": service["port"]}, fallback)
    await record_service(root, node, service)  # the previous one stays recorded (pending, leased) until stopped
    await asyncio.gather(  # the new version serves: retiring the old one and the audit record are independent
        stop_service(root, previous) if previous else asyncio.sleep(0),
        record_change(root, "slot", node, before, {"command": command, "force": force}),
    )
    return {"node": node, "port": service["port"], "command": command, "notes": plan["notes"],
            "ready_after_s": ready["ready_after_s"], "validation": report, "replaced": bool(previous)}
