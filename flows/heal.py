"""Repairs the custodian decides on, as flows, so each lands in ``baton history`` with its reason.

``heal_restart`` starts the node's recorded command again on a fresh port, waits until it answers, switches
the adapter to it and stops what is left of the old instance; if the new one does not come up it is stopped
and the run fails (the custodian counts a failed restart). ``heal_mock`` serves the node from its contract
mock and stops the failing service, so callers keep working.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.transactions import transaction

from baton.errors import UsageError
from tasks.adapters import node_snapshot, set_backend, switch_backend
from tasks.audit import record_change
from tasks.canary import no_canary_in_flight
from tasks.circuit import current_service
from tasks.services import plan_service, record_service, start_service, stop_service, wait_service_ready

__all__ = ["heal_restart", "heal_mock"]


def _still(root: str, node: str, incarnation: str) -> bool:
    """The instance the custodian judged still serves the node (nobody slotted, swapped or unslotted since)."""
    from tasks.context import open_circuit
    from tasks.observe import incarnation_of

    slot = open_circuit(root).state().node(node).service
    return not slot.is_mock and incarnation_of(slot) == incarnation


@flow(name="heal-restart", flow_run_name="heal-restart-{node}")
async def heal_restart(root: str, node: str, reason: str, command: str = "", expected: str = "",
                       timeout_s: float = 30.0) -> dict[str, Any]:
    previous = current_service(root, node)
    if expected and not _still(root, node, expected):
        return {"node": node, "skipped": "the node's service changed since the custodian judged it"}
    await no_canary_in_flight(root, [node], f"heal-restart {node}", end_canary=True)  # no split over a dead stable
    command = command or (previous or {}).get("command", "")
    if not command:
        raise UsageError(f"{node} has no command to restart; `baton slot {node} <command>` first.")
    before = await node_snapshot(root, node)
    plan = await plan_service(root, node, command)
    previous = current_service(root, node)  # as planning left it (it adopts what a cut-short command left serving)
    fallback = {"host": previous["host"], "port": previous["port"]} if previous else {"mock": True}
    with transaction():  # a service that will not come up is stopped; the adapter keeps what it had
        service = await start_service(root, plan)
        ready = await wait_service_ready(root, node, service, timeout_s)
        await switch_backend(root, node, {"host": service["host"], "port": service["port"]}, fallback)
    await record_service(root, node, service)
    if previous:
        await stop_service(root, previous)
    await record_change(root, "heal-restart", node, before, {"reason": reason, "command": command})
    return {"node": node, "port": service["port"], "ready_after_s": ready["ready_after_s"], "reason": reason}


@flow(name="heal-mock", flow_run_name="heal-mock-{node}")
async def heal_mock(root: str, node: str, reason: str, expected: str = "") -> dict[str, Any]:
    previous = current_service(root, node)
    if expected and not _still(root, node, expected):
        return {"node": node, "skipped": "the node's service changed since the custodian judged it"}
    await no_canary_in_flight(root, [node], f"heal-mock {node}", end_canary=True)
    before = await node_snapshot(root, node)
    await set_backend(root, node, {"mock": True})
    await record_service(root, node, None)
    if previous:
        await stop_service(root, previous)
    await record_change(root, "heal-mock", node, before, {"reason": reason})
    return {"node": node, "mocked": True, "reason": reason}
