"""``baton down``: stop every service and adapter the circuit started; history stays."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.adapters import stop_adapter_hosts
from tasks.circuit import forget_runtime, stop_all_services

__all__ = ["down"]


@flow(name="down", flow_run_name="down-{circuit}")
async def down(root: str, circuit: str = "") -> dict[str, Any]:
    """Services first (so nothing calls a vanished adapter), then adapter hosts, then state."""
    services = await stop_all_services(root)
    hosts = await stop_adapter_hosts(root)
    await forget_runtime(root)
    return {"circuit": circuit, "services_stopped": services, "hosts_stopped": hosts}
