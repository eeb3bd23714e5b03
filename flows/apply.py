"""``baton apply [--dry-run]``: converge the running circuit on baton.yaml, one planned step at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.route import route_clear
from flows.swap import swap
from flows.up import up
from tasks.adapters import set_routing, start_adapter_host, wait_adapters_ready
from tasks.apply import plan_circuit, restart_adapter_host, stop_adapter_host, stop_node_services
from tasks.audit import label_run
from tasks.circuit import circuit_nodes, current_service, extra_versions
from tasks.services import record_routing

__all__ = ["apply"]


def _run_name() -> str:
    """``apply-<circuit>``; a deployment run (CI) passes no circuit: its name comes from baton.yaml."""
    from prefect.runtime import flow_run

    from baton.project import Project

    params = flow_run.parameters
    circuit = params.get("circuit") or ""
    if not circuit:
        try:
            circuit = Project.at(Path(params.get("root") or ".")).load().name
        except Exception:  # noqa: BLE001 - a bad baton.yaml fails in the flow itself, with its message
            circuit = Path(params.get("root") or ".").resolve().name
    return f"apply-{circuit}"


@flow(name="apply", flow_run_name=_run_name)
async def apply(root: str, circuit: str = "", dry_run: bool = False, timeout_s: float = 30.0) -> dict[str, Any]:
    await label_run(root, "apply", [])  # a deployment run (CI) gets the tags `baton history` finds it by
    plan = await plan_circuit(root)
    if dry_run:
        return {"circuit": circuit, "dry_run": True, "plan": plan, "applied": []}
    applied = []
    for step in plan:
        kind, nodes = step["kind"], step["nodes"]
        if kind == "boot":
            await up(root=root, circuit=circuit, timeout_s=timeout_s)
        elif kind == "remove-node":
            await stop_node_services(root, nodes[0])
        elif kind == "stop-host":
            await stop_adapter_host(root, step["target"])
        elif kind == "reboot-host":
            await restart_adapter_host(root, step["target"], nodes)
            await wait_adapters_ready(root, nodes=nodes, timeout_s=timeout_s)
        elif kind == "add-node":
            await start_adapter_host(root, host_id=f"host-{nodes[0]}", nodes=nodes)
            await wait_adapters_ready(root, nodes=nodes, timeout_s=timeout_s)
        elif kind == "respawn-service":
            service = current_service(root, nodes[0])
            if service:  # the same command was accepted (validated or forced) when it was slotted
                await swap(root=root, node=nodes[0], command=service["command"], force=True, timeout_s=timeout_s)
        elif kind == "set-routing":
            routing = await set_routing(root, nodes[0], step["data"])
            await record_routing(root, nodes[0], routing, extra_versions(root, nodes[0]))
        elif kind == "clear-routing":
            await route_clear(root=root, node=nodes[0])
        applied.append(step)
    return {"circuit": circuit, "dry_run": False, "plan": plan, "applied": applied, "nodes": circuit_nodes(root)}
