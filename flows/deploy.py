"""``baton deploy --provider local|docker [--build]``, ``baton teardown`` and ``baton deploy-status``."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.down import down
from flows.slot import slot
from flows.up import up
from tasks.circuit import choose_provider, registered_services
from tasks.images import build_service_image, ensure_adapter_image
from tasks.inventory import current_provider, provider_inventory, sweep_leftovers
from tasks.circuit import forget_runtime, observe_circuit
from tasks.cloudrun import deploy_whole_circuit, deploys_circuit, observe_whole_circuit, teardown_whole_circuit

__all__ = ["deploy", "teardown", "deploy_status"]


@flow(name="deploy", flow_run_name="deploy-{circuit}-{provider}")
async def deploy(root: str, circuit: str = "", provider: str = "local", build: bool = False, offline: bool = False,
                 timeout_s: float = 60.0, project: str = "", region: str = "",
                 public_ingress: bool = False) -> dict[str, Any]:
    """Boot the circuit on ``provider``; with ``build``, first make what it lacks (the adapter image on docker,
    every registered service's image), then slot each built service. A provider that deploys whole circuits
    (Cloud Run) gets the images with the circuit instead of slots."""
    await choose_provider(root, provider)
    adapter = await ensure_adapter_image(offline) if build and provider == "docker" else None
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
    nothing = build and not images and (adapter is None or adapter["action"] == "present")
    return {"circuit": circuit, "provider": provider, "booted": booted, "adapter_image": adapter, "images": images,
            "slotted": slotted, "nothing_to_build": nothing}


@flow(name="teardown", flow_run_name="teardown-{circuit}")
async def teardown(root: str, circuit: str = "") -> dict[str, Any]:
    """Remove everything the deployment created (containers, network, volumes, processes, cloud services);
    history stays. Reports what it removed: what the provider held before, less what it holds after."""
    if deploys_circuit(root):
        cloud = await teardown_whole_circuit(root)
        await forget_runtime(root)
        return {"circuit": circuit, "services_stopped": cloud["deleted"], "hosts_stopped": [], "cloud": cloud,
                "provider": "cloudrun", "removed": {"services": list(cloud["deleted"])}, "left": {}}
    provider = current_provider(root)
    before = await provider_inventory(root, provider)
    stopped = await down(root=root, circuit=circuit)
    await sweep_leftovers(root, provider)
    after = await provider_inventory(root, provider)
    removed = {kind: [name for name in names if name not in after.get(kind, [])] for kind, names in before.items()}
    left = {kind: names for kind, names in after.items() if names}
    return {**stopped, "provider": provider, "removed": removed, "left": left}


@flow(name="deploy-status", flow_run_name="deploy-status-{circuit}")
async def deploy_status(root: str, circuit: str = "") -> dict[str, Any]:
    return await (observe_whole_circuit(root) if deploys_circuit(root) else observe_circuit(root))
