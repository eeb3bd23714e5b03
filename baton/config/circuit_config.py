"""The whole of ``baton.yaml`` as one validated model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from baton.config.sections import (
    ArbiterConfig,
    DeployConfig,
    FederationConfig,
    LedgerConfig,
    ObservabilityConfig,
    RoutingConfig,
    SecurityConfig,
    TaintConfig,
)
from baton.config.topology import EdgeConfig, EdgePolicy, NodeConfig, NodeRole
from baton.config.validation import PlacedValueError

__all__ = ["CircuitConfig", "CONFIG_FILENAME"]

CONFIG_FILENAME = "baton.yaml"


class CircuitConfig(BaseModel):
    """A circuit: nodes, edges and the sections that configure them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(default="default", min_length=1)
    version: Literal[1, 2] = 1
    nodes: list[NodeConfig] = Field(default_factory=list)
    edges: list[EdgeConfig] = Field(default_factory=list)
    routing: dict[str, RoutingConfig] = Field(default_factory=dict, description="Per-node routing, by node name.")
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    federation: FederationConfig = Field(default_factory=FederationConfig)
    taint: TaintConfig = Field(default_factory=TaintConfig)
    arbiter: ArbiterConfig = Field(default_factory=ArbiterConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    services: list[str] = Field(default_factory=list, description="Directories holding baton-service.yaml files.")

    @model_validator(mode="after")
    def _unique_names(self) -> CircuitConfig:
        seen: set[str] = set()
        for index, node in enumerate(self.nodes):
            if node.name in seen:
                raise PlacedValueError(f"node names must be unique, found {node.name!r} twice", ("nodes", index, "name"))
            seen.add(node.name)
        return self

    @model_validator(mode="after")
    def _unique_ports(self) -> CircuitConfig:
        owners: dict[tuple[str, int], str] = {}
        for index, node in enumerate(self.nodes):
            for kind, port in (("port", node.port), ("management_port", node.management_port)):
                key = (node.host, port)
                if key in owners:
                    raise PlacedValueError(
                        f"ports must be unique, found {port} used by {owners[key]} and by {node.name} {kind}",
                        ("nodes", index, kind),
                    )
                owners[key] = f"{node.name} {kind}"
        return self

    @model_validator(mode="after")
    def _edges_are_wired(self) -> CircuitConfig:
        by_name = {n.name: n for n in self.nodes}
        seen: set[tuple[str, str]] = set()
        for index, edge in enumerate(self.edges):
            for field, end in (("source", edge.source), ("target", edge.target)):
                if end not in by_name:
                    raise PlacedValueError(
                        f"edge {edge.source} -> {edge.target} names unknown node {end!r}; "
                        f"known nodes: {', '.join(by_name) or 'none'}",
                        ("edges", index, field),
                    )
            if by_name[edge.source].role is NodeRole.EGRESS:
                raise PlacedValueError(
                    f"egress node {edge.source!r} cannot be an edge source (egress nodes are external dependencies)",
                    ("edges", index, "source"),
                )
            if (edge.source, edge.target) in seen:
                raise PlacedValueError(f"edge {edge.source} -> {edge.target} is declared twice", ("edges", index))
            seen.add((edge.source, edge.target))
        return self

    @model_validator(mode="after")
    def _routing_names_nodes(self) -> CircuitConfig:
        names = {n.name for n in self.nodes}
        unknown = sorted(set(self.routing) - names)
        if unknown:
            raise PlacedValueError(f"routing names unknown node {unknown[0]!r}", ("routing", unknown[0]))
        return self

    # -- queries -----------------------------------------------------------

    def node(self, name: str) -> NodeConfig | None:
        return next((n for n in self.nodes if n.name == name), None)

    def inbound_policy(self, name: str) -> EdgePolicy:
        """The merged policy of every edge into ``name``."""
        return EdgePolicy.merge([e.policy for e in self.edges if e.target == name])

    @property
    def ingress_nodes(self) -> list[NodeConfig]:
        return [n for n in self.nodes if n.role is NodeRole.INGRESS]

    @property
    def egress_nodes(self) -> list[NodeConfig]:
        return [n for n in self.nodes if n.role is NodeRole.EGRESS]
