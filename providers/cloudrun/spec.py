"""Pure shaping of a circuit into Cloud Run services: names, labels, the adapter's per-node configs, and each
node's Service message (the adapter as ingress container, the node's service image as a sidecar on localhost).

Nothing here calls an API; :mod:`providers.cloudrun.provider` sends what these functions build."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from baton.config import CircuitConfig, NodeConfig, NodeRole
from baton.wiring import adapter_node, env_name, node_contract

__all__ = ["INGRESS_PORT", "SIDECAR_PORT", "MANAGEMENT_PORT", "NODES_DIR", "CONTRACTS_DIR", "label_value", "labels",
           "service_id", "adapter_nodes", "contracts", "node_service", "invokers", "circuit_account", "traffic"]

INGRESS_PORT = 8080  # Cloud Run sends requests to the ingress container's port (and sets PORT to it)
SIDECAR_PORT = 8081  # where the slotted service listens, on the instance's localhost
MANAGEMENT_PORT = 18080  # loopback only: Cloud Run exposes one port per service
NODES_DIR = "/etc/baton/nodes"
CONTRACTS_DIR = "/etc/baton/contracts"


def label_value(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower())[:63].strip("-") or "x"


def project_digest(root: Path) -> str:
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]


def labels(root: Path, circuit: str, node: str = "") -> dict[str, str]:
    """What Baton marks its services with; teardown deletes exactly the services carrying these."""
    found = {"managed-by": "baton", "baton-project": project_digest(root), "baton-circuit": label_value(circuit)}
    return {**found, "baton-node": label_value(node)} if node else found


def service_id(circuit: str, node: str) -> str:
    """A Cloud Run service name: lowercase letters, digits and hyphens, a letter first, at most 49 characters."""
    raw = re.sub(r"[^a-z0-9-]+", "-", f"{circuit}-{node}".lower()).strip("-")
    if len(raw) > 49:
        raw = f"{raw[:40]}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
    return raw if raw[:1].isalpha() else f"b-{raw}"[:49]


def circuit_account(config: CircuitConfig, project: str) -> str:
    """The identity every node calls the others as: ``deploy.service_account`` or Baton's default name."""
    if config.deploy.service_account:
        return config.deploy.service_account
    name = f"baton-{label_value(config.name)}"[:30].rstrip("-")
    return f"{name}@{project}.iam.gserviceaccount.com"


def invokers(account: str, *, public: bool) -> list[str]:
    """Who may invoke a node: the circuit's account, and everyone only for a public ingress."""
    return [f"serviceAccount:{account}", *(["allUsers"] if public else [])]


def _contract_name(node: NodeConfig, contract: Path) -> str:
    return f"{node.name}{contract.suffix}"


def adapter_nodes(config: CircuitConfig, root: Path) -> dict[str, dict[str, Any]]:
    """The adapter config files baked into the circuit's adapter image: per node, a ``mock`` variant and a
    ``service`` variant (backend: the sidecar on localhost), by file name."""
    files: dict[str, dict[str, Any]] = {}
    for node in config.nodes:
        for variant, backend in (("mock", None), ("service", {"host": "127.0.0.1", "port": SIDECAR_PORT})):
            entry = adapter_node(config, node, root=root, backend=backend, bind_host="0.0.0.0")
            entry.update(port=INGRESS_PORT, management_port=MANAGEMENT_PORT, management_host="127.0.0.1")
            if "contract" in entry:  # the file the adapter reads (a grpc node's .proto compiled): baked in
                entry["contract"] = f"{CONTRACTS_DIR}/{_contract_name(node, Path(entry['contract']))}"
            files[f"{node.name}.{variant}.json"] = {"node": entry, "shutdown_grace_s": 10}
    return files


def contracts(config: CircuitConfig, root: Path) -> dict[str, Path]:
    """Contract files to bake in, by the name the adapter configs use."""
    found = {}
    for node in config.nodes:
        path = node_contract(node, Path(root))
        if path is not None:
            found[_contract_name(node, path)] = path
    return found


def traffic(split: Mapping[str, int]) -> list[Any]:
    """Traffic targets from percent by revision short name; ``""`` means the latest ready revision."""
    from google.cloud import run_v2

    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    pinned = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    return [run_v2.TrafficTarget(type_=latest, percent=p) if not r else
            run_v2.TrafficTarget(type_=pinned, revision=r, percent=p) for r, p in split.items()]


def node_service(config: CircuitConfig, node: NodeConfig, *, root: Path, adapter_image: str, service_image: str,
                 urls: Mapping[str, str], token_env: str, token: str, account: str, revision: str = "",
                 split: Mapping[str, int] | None = None) -> Any:
    """The Service message of one node; ``service_image`` empty: the adapter alone, serving the mock."""
    from google.cloud import run_v2

    deploy = config.deploy
    sidecar = bool(service_image) and node.role is not NodeRole.EGRESS
    share = 2 if sidecar else 1
    resources = run_v2.ResourceRequirements(limits={"cpu": f"{deploy.cpu / share:g}",
                                                    "memory": f"{deploy.memory_mib // share}Mi"})
    variant = "service" if sidecar else "mock"
    adapter = run_v2.Container(
        name="adapter", image=adapter_image, args=["--config", f"{NODES_DIR}/{node.name}.{variant}.json"],
        ports=[run_v2.ContainerPort(container_port=INGRESS_PORT)], resources=resources,
        env=[run_v2.EnvVar(name=token_env, value=token)], depends_on=["service"] if sidecar else [])
    containers = [adapter]
    if sidecar:
        env = {"BATON_SERVICE_PORT": str(SIDECAR_PORT), "BATON_SERVICE_HOST": "127.0.0.1",
               "BATON_NODE_NAME": node.name,
               **{f"BATON_{env_name(e.target)}_URL": urls[e.target] for e in config.edges if e.source == node.name}}
        containers.append(run_v2.Container(
            name="service", image=service_image, resources=resources,
            env=[run_v2.EnvVar(name=k, value=v) for k, v in sorted(env.items())],
            startup_probe=run_v2.Probe(tcp_socket=run_v2.TCPSocketAction(port=SIDECAR_PORT), period_seconds=1,
                                       failure_threshold=60)))
    node_labels = labels(root, config.name, node.name)
    ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL if node.role is NodeRole.INGRESS else \
        run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    template = run_v2.RevisionTemplate(
        containers=containers, labels=node_labels, service_account=account, revision=revision,
        scaling=run_v2.RevisionScaling(max_instance_count=deploy.max_instances))
    return run_v2.Service(labels=node_labels, ingress=ingress, template=template,
                          traffic=traffic(split or {"": 100}))
