"""Steps for providers that deploy a whole circuit themselves (``deploys_circuit``: Cloud Run): each one call
of the provider, in a thread (the Cloud Run client is synchronous), idempotent (a deploy updates what exists, a
teardown deletes what carries the circuit's labels)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tasks.context import open_circuit, step

__all__ = ["deploys_circuit", "deploy_whole_circuit", "teardown_whole_circuit", "observe_whole_circuit",
           "deploy_version", "drop_version"]


def deploys_circuit(root: str, provider: str = "") -> bool:
    """Whether ``provider`` (default: the circuit's) deploys the circuit as a whole instead of host by host."""
    from providers import get_provider

    name = provider or open_circuit(root).state().provider
    return bool(getattr(get_provider(name), "deploys_circuit", False))


@step("deploy-whole-circuit")
async def deploy_whole_circuit(root: str, project: str = "", region: str = "", public_ingress: bool = False,
                               images: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Create or update every node's service (cost guard first); the deployed nodes with their URLs."""
    circuit = open_circuit(root)
    provider: Any = circuit.provider()
    return await asyncio.to_thread(provider.deploy_circuit, circuit.root, circuit.state_dir, circuit.config,
                                   project=project, region=region, public_ingress=public_ingress,
                                   images=dict(images or {}))


@step("teardown-whole-circuit")
async def teardown_whole_circuit(root: str) -> dict[str, Any]:
    """Delete every service labelled as this circuit's."""
    circuit = open_circuit(root)
    provider: Any = circuit.provider()
    return await asyncio.to_thread(provider.teardown_circuit, circuit.root, circuit.state_dir, circuit.config)


@step("observe-whole-circuit")
async def observe_whole_circuit(root: str) -> dict[str, Any]:
    """Each node's service conditions as deploy-status shows them."""
    circuit = open_circuit(root)
    provider: Any = circuit.provider()
    seen = await asyncio.to_thread(provider.circuit_status, circuit.root, circuit.state_dir, circuit.config)
    nodes = {}
    for node in circuit.config.nodes:
        found = seen["nodes"].get(node.name)
        if found is None:
            nodes[node.name] = {"state": "absent", "health": "unknown", "detail": "no service"}
            continue
        split = ", ".join(f"{rev} {pct}%" for rev, pct in found["traffic"])
        nodes[node.name] = {"state": found["state"], "health": "ok" if found["state"] == "succeeded" else "failing",
                            "detail": found["detail"] or f"{found['url']} ({split})", **found}
    return {"provider": seen["provider"], "running": seen["running"], "project": seen["project"],
            "region": seen["region"], "containers": [], "nodes": nodes}


@step("deploy-version")
async def deploy_version(root: str, node: str, image: str, percent: int) -> dict[str, Any]:
    """A revision of ``node`` running ``image`` with ``percent`` of its traffic (100: a swap, once ready); the
    same image again only sets its share."""
    circuit = open_circuit(root)
    circuit.node(node)
    provider: Any = circuit.provider()
    return await asyncio.to_thread(provider.new_version, circuit.root, circuit.state_dir, circuit.config, node,
                                   image, percent=percent)


@step("drop-version")
async def drop_version(root: str, node: str) -> dict[str, Any]:
    """All of ``node``'s traffic back to its revision (the second version keeps none)."""
    circuit = open_circuit(root)
    circuit.node(node)
    provider: Any = circuit.provider()
    return await asyncio.to_thread(provider.drop_candidate, circuit.state_dir, node)
