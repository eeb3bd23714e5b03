"""``heal-adapter-<host>``: the custodian brings back an adapter host that exited.

The host is started again with the same nodes; each node gets back its live service as backend (when it still
runs) and its routing from state, so callers see the circuit as it was. The run lands in ``baton history``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.adapters import host_nodes, start_adapter_host, wait_adapters_ready

__all__ = ["heal_adapter"]


@flow(name="heal-adapter", flow_run_name="heal-adapter-{host_id}")
async def heal_adapter(root: str, host_id: str, reason: str, timeout_s: float = 30.0) -> dict[str, Any]:
    nodes = host_nodes(root, host_id)
    if not nodes:
        return {"host_id": host_id, "skipped": f"the circuit no longer has an adapter host {host_id}"}
    await start_adapter_host(root, host_id=host_id, nodes=nodes)
    ready = await wait_adapters_ready(root, nodes=nodes, timeout_s=timeout_s)
    return {"host_id": host_id, "nodes": ready, "reason": reason}
