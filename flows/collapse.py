"""``baton collapse [--live a,b]``: serve every node from its mock except the
ones named live (full_mock, partial, full_live)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from baton.errors import UsageError
from tasks.adapters import set_backend
from tasks.canary import no_canary_in_flight
from tasks.circuit import circuit_nodes, current_service, extra_versions
from tasks.services import record_routing, record_service, stop_service

__all__ = ["collapse"]


@flow(name="collapse", flow_run_name="collapse-{circuit}")
async def collapse(root: str, circuit: str = "", live: list[str] | None = None,
                   end_canary: bool = False) -> dict[str, Any]:
    keep = set(live or [])
    nodes = circuit_nodes(root)
    unknown = sorted(keep - set(nodes))
    if unknown:
        raise UsageError(f"--live names unknown nodes {', '.join(unknown)}; known: {', '.join(nodes)}.")
    not_live = sorted(n for n in keep if current_service(root, n) is None)
    if not_live:
        raise UsageError(f"{', '.join(not_live)} has no live service to keep; `baton slot` it first.")
    mocking = [n for n in nodes if n not in keep and current_service(root, n) is not None]
    await no_canary_in_flight(root, mocking, "collapse", end_canary)
    mocked = []
    for node in nodes:
        service = current_service(root, node)
        if node in keep or service is None:
            continue
        await set_backend(root, node, {"mock": True})
        extras = extra_versions(root, node)
        await record_service(root, node, None)
        await record_routing(root, node, None, {})
        for slot in [service, *extras.values()]:
            await stop_service(root, slot)
        mocked.append(node)
    return {"circuit": circuit, "mocked": mocked, "live": sorted(keep)}
