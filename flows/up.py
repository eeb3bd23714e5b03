"""``baton up [--mock]``: start the adapters of every node, mocks for unslotted and
egress nodes, wait until all answer, persist state."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.adapters import start_adapter_host, wait_adapters_ready
from tasks.circuit import circuit_nodes, nodes_without_adapter, stop_all_services

__all__ = ["up"]


@flow(name="up", flow_run_name="up-{circuit}")
async def up(root: str, circuit: str = "", mock: bool = False, timeout_s: float = 30.0) -> dict[str, Any]:
    """Boot the circuit; adapters already running are kept, missing ones started in one host."""
    stopped = await stop_all_services(root) if mock else []
    missing = await nodes_without_adapter(root)
    if missing:
        await start_adapter_host(root, host_id=f"host-{missing[0]}", nodes=missing)
    ready = await wait_adapters_ready(root, nodes=circuit_nodes(root), timeout_s=timeout_s)
    return {"circuit": circuit, "started": missing, "ready": ready, "services_stopped": stopped}
