"""The service-first workflow: ``baton-service.yaml`` manifests and the circuit
derived from them (each manifest a node, each dependency a consumer -> provider
edge labelled ``depends-on``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from baton.config import (
    MANIFEST_FILENAME,
    NodeRole,
    ServiceManifest,
    YamlDocument,
    derive_management_port,
    validate_document,
)
from baton.config.edits import AUTO_PORT_RANGE, port_is_bindable
from baton.errors import ConfigError

__all__ = ["RegisteredService", "DerivedNode", "DerivedEdge", "DerivedCircuit", "load_service", "derive_circuit"]

DEPENDS_ON = "depends-on"


@dataclass(frozen=True)
class RegisteredService:
    """A manifest and the directory it was found in."""

    directory: Path
    manifest: ServiceManifest

    def path_of(self, relative: str) -> Path:
        return self.directory / relative if relative else self.directory


@dataclass(frozen=True)
class DerivedNode:
    name: str
    port: int
    role: NodeRole
    proxy_mode: str
    contract: str


@dataclass(frozen=True)
class DerivedEdge:
    source: str
    target: str
    label: str = DEPENDS_ON


@dataclass
class DerivedCircuit:
    nodes: list[DerivedNode] = field(default_factory=list)
    edges: list[DerivedEdge] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # optional dependencies with no manifest


def load_service(directory: Path, *, label: str | None = None) -> RegisteredService:
    """Read ``baton-service.yaml`` from a service directory (or the file itself), bounded like baton.yaml."""
    directory = Path(directory)
    path = directory if directory.is_file() else directory / MANIFEST_FILENAME
    if not path.is_file():
        raise ConfigError(f"no {MANIFEST_FILENAME} in {label or directory}; create one or pass the service's directory.")
    shown = label or str(path)
    doc = YamlDocument.load(path, label=shown, expected="a service manifest mapping (name, port, dependencies, ...)")
    return RegisteredService(path.parent, validate_document(doc, ServiceManifest, label=shown))


def derive_circuit(
    services: list[RegisteredService],
    *,
    root: Path,
    taken_ports: set[int] | None = None,
    bindable=port_is_bindable,
) -> DerivedCircuit:
    """Nodes and edges implied by a set of manifests.

    A missing *required* dependency is an error; a missing optional one is
    skipped and reported. Ports come from the manifest or are picked from
    9001-9999 avoiding ``taken_ports``.
    """
    by_name: dict[str, RegisteredService] = {}
    for service in services:
        name = service.manifest.name
        if name in by_name:
            raise ConfigError(
                f"two manifests name the service {name!r} ({by_name[name].directory} and {service.directory}); "
                "rename one."
            )
        by_name[name] = service

    taken = set(taken_ports or ())
    for service in services:
        if service.manifest.port:
            taken |= {service.manifest.port, derive_management_port(service.manifest.port)}

    circuit = DerivedCircuit()
    free = (p for p in AUTO_PORT_RANGE if p not in taken and derive_management_port(p) not in taken)
    for service in services:
        m = service.manifest
        port = m.port
        while not port:
            candidate = next(free, None)
            if candidate is None:
                raise ConfigError("no free port left in 9001-9999 for derived services; set `port:` in the manifests.")
            if bindable(candidate) and bindable(derive_management_port(candidate)):
                port = candidate
        taken |= {port, derive_management_port(port)}
        spec = m.api_spec or m.mock_spec
        contract = os.path.relpath(service.path_of(spec), root) if spec else ""
        circuit.nodes.append(DerivedNode(m.name, port, m.role, str(m.proxy_mode), contract))
        for dep in m.dependencies:
            if dep.name in by_name:
                circuit.edges.append(DerivedEdge(m.name, dep.name))
            elif dep.required:
                raise ConfigError(
                    f"service {m.name!r} requires {dep.name!r}, but no registered manifest provides it; "
                    f"register it with `baton service register <dir>` or mark the dependency `required: false`."
                )
            else:
                circuit.skipped.append(f"{m.name} -> {dep.name}")
    return circuit
