"""``baton deploy --provider local|docker [--build]``, ``baton teardown`` and ``baton deploy-status``."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.down import down
from flows.slot import slot
from flows.up import up
from tasks.circuit import choose_provider, registered_services
from tasks.images import build_service_image
from tasks.circuit import forget_runtime, observe_circuit
from tasks.cloudrun import deploy_whole_circuit, deploys_circuit, observe_whole_circuit, teardown_whole_circuit

__all__ = ["deploy", "teardown", "deploy_status"]


@flow(name="deploy", flow_run_name="deploy-{circuit}-{provider}")
async def deploy(root: str, circuit: str = "", provider: str = "local", build: bool = False, offline: bool = False,
                 timeout_s: float = 60.0, project: str = "", region: str = "",
                 public_ingress: bool = False) -> dict[str, Any]:
    """Boot the circuit on ``provider``; with ``build``, build every registered service's image and slot it.
    A provider that deploys whole circuits (Cloud Run) gets the images with the circuit instead of slots."""
    await choose_provider(root, provider)
    images = [await build_service_image(root, name, path, offline) for name, path in registered_services(root)] \
        if build else []
    if deploys_circuit(root, provider):
        cloud = await deploy_whole_circuit(root, project=project, region=region, public_ingress=public_ingress,
                                           images={i["node_name"]: i["tag"] for i in images})
        return {"circuit": circuit, "provider": provider, "booted": {"ready": sorted(cloud["nodes"])},
                "images": images, "slotted": [], "cloud": cloud}
    booted = await up(root=root, circuit=circuit, mock=False, timeout_s=timeout_s)
    slotted = [await slot(root=root, node=image["node_name"], command=image["tag"], force=True, timeout_s=timeout_s)
               for image in images]
    return {"circuit": circuit, "provider": provider, "booted": booted, "images": images, "slotted": slotted}


@flow(name="teardown", flow_run_name="teardown-{circuit}")
async def teardown(root: str, circuit: str = "") -> dict[str, Any]:
    """Remove everything the deployment created (containers, network, processes, cloud services); history
    stays."""
    if deploys_circuit(root):
        cloud = await teardown_whole_circuit(root)
        await forget_runtime(root)
        return {"circuit": circuit, "services_stopped": cloud["deleted"], "hosts_stopped": [], "cloud": cloud}
    return await down(root=root, circuit=circuit)


@flow(name="deploy-status", flow_run_name="deploy-status-{circuit}")
async def deploy_status(root: str, circuit: str = "") -> dict[str, Any]:
    return await (observe_whole_circuit(root) if deploys_circuit(root) else observe_circuit(root))
