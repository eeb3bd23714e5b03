"""``baton deploy --provider local|docker [--build]``, ``baton teardown`` and ``baton deploy-status``."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.down import down
from flows.slot import slot
from flows.up import up
from tasks.circuit import choose_provider, registered_services
from tasks.images import build_service_image
from tasks.circuit import observe_circuit

__all__ = ["deploy", "teardown", "deploy_status"]


@flow(name="deploy", flow_run_name="deploy-{circuit}-{provider}")
async def deploy(root: str, circuit: str = "", provider: str = "local", build: bool = False, offline: bool = False,
                 timeout_s: float = 60.0) -> dict[str, Any]:
    """Boot the circuit on ``provider``; with ``build``, build every registered service's image and slot it."""
    await choose_provider(root, provider)
    images = [await build_service_image(root, name, path, offline) for name, path in registered_services(root)] \
        if build else []
    booted = await up(root=root, circuit=circuit, mock=False, timeout_s=timeout_s)
    slotted = [await slot(root=root, node=image["node_name"], command=image["tag"], force=True, timeout_s=timeout_s)
               for image in images]
    return {"circuit": circuit, "provider": provider, "booted": booted, "images": images, "slotted": slotted}


@flow(name="teardown", flow_run_name="teardown-{circuit}")
async def teardown(root: str, circuit: str = "") -> dict[str, Any]:
    """Remove everything the deployment created (containers, network, processes); history stays."""
    return await down(root=root, circuit=circuit)


@flow(name="deploy-status", flow_run_name="deploy-status-{circuit}")
async def deploy_status(root: str, circuit: str = "") -> dict[str, Any]:
    return await observe_circuit(root)
