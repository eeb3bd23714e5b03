"""Nodes and edges of a circuit, as declared in ``baton.yaml``.

Field names, defaults and shapes are those of the original Baton so its files
load unchanged; ``version: 2`` adds only optional fields (data_access,
authority, openapi_spec, data_tiers_in_flight).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "NODE_NAME_PATTERN",
    "PORT_MIN",
    "PORT_MAX",
    "ProxyMode",
    "BUILTIN_MODES",
    "MODE_PATTERN",
    "NodeLimits",
    "NodeRole",
    "DataAccess",
    "NodeConfig",
    "EdgePolicy",
    "EdgeConfig",
    "derive_management_port",
]

NODE_NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
PORT_MIN = 1024
PORT_MAX = 65535
_MANAGEMENT_OFFSETS = (10000, 1000, -1000, -10000)
_FORBIDDEN_IN_METADATA = ("\r", "\n", "\x00")


class ProxyMode(StrEnum):
    """The modes every adapter serves. A node's ``proxy_mode`` may also name a mode that an installed
    ``baton.protocols`` plugin adds to the adapter (``baton.modes``)."""

    HTTP = "http"
    TCP = "tcp"
    GRPC = "grpc"
    PROTOBUF = "protobuf"
    SOAP = "soap"


BUILTIN_MODES: tuple[str, ...] = tuple(m.value for m in ProxyMode)
MODE_PATTERN = r"^[a-z][a-z0-9_]*$"  # what the adapter accepts as a mode name (baton_adapter.config.MODE_NAME)


class NodeRole(StrEnum):
    SERVICE = "service"
    INGRESS = "ingress"
    EGRESS = "egress"


def derive_management_port(port: int) -> int:
    """The management port the original Baton derives for a traffic port.

    port+10000, else +1000, -1000, -10000: the first inside 1024-65535.
    """
    for offset in _MANAGEMENT_OFFSETS:
        candidate = port + offset
        if PORT_MIN <= candidate <= PORT_MAX:
            return candidate
    raise ValueError(f"no management port can be derived for port {port}")  # unreachable for valid ports


class DataAccess(BaseModel):
    """Data tiers a node reads and writes (v2)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reads: list[str] = Field(default_factory=list, description="Data tiers the node reads, e.g. PII.")
    writes: list[str] = Field(default_factory=list, description="Data tiers the node writes.")


class NodeLimits(BaseModel):
    """Per-node data-plane limits handed to the node's adapter; unset ones keep the adapter's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_idle_s: float | None = Field(
        default=None, ge=0, le=86_400, description="tcp/protobuf: close a connection idle this long (0: never).")
    max_frame_bytes: int | None = Field(
        default=None, ge=0, le=(1 << 32) - 1, description="protobuf: the longest frame relayed (default 16 MiB).")
    max_body_bytes: int | None = Field(
        default=None, ge=0, le=1 << 40, description="http/soap: the largest request body accepted (default 64 MiB).")

    def adapter_limits(self) -> dict[str, float | int]:
        """The limits set, as the adapter's ``limits`` section spells them."""
        return self.model_dump(exclude_none=True)


class NodeConfig(BaseModel):
    """A named slot in the circuit with a fixed address."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(pattern=NODE_NAME_PATTERN, description="Lower-case name, also used in BATON_<NODE>_URL.")
    host: str = Field(default="127.0.0.1", min_length=1, description="Address the adapter listens on.")
    port: int = Field(ge=PORT_MIN, le=PORT_MAX, description="Traffic port of the node's adapter.")
    proxy_mode: str = Field(
        default="http", pattern=MODE_PATTERN,
        description="http, tcp, grpc, protobuf, soap, or a mode a baton.protocols plugin adds to the adapter.")
    role: NodeRole = NodeRole.SERVICE
    contract: str = Field(default="", description="Path to an OpenAPI 3.x or JSON Schema contract (a grpc node: a "
                          ".proto, compiled for its mock, or a descriptor set).")
    management_port: int = Field(
        default=0, ge=0, le=PORT_MAX, description="Management API port; 0 derives it from the traffic port."
    )
    metadata: dict[str, str] = Field(default_factory=dict)
    validate_requests: bool = Field(default=True, description="Mocks answer 422 to requests the contract forbids.")
    # v2
    data_access: DataAccess = Field(default_factory=DataAccess)
    authority: list[str] = Field(default_factory=list, description="Authority domains, e.g. user.*.")
    openapi_spec: str = Field(default="", description="v2: the node's OpenAPI spec, when distinct from contract.")
    limits: NodeLimits = Field(default_factory=NodeLimits)

    @field_validator("metadata")
    @classmethod
    def _metadata_single_line(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if any(ch in item for ch in _FORBIDDEN_IN_METADATA):
                raise ValueError(f"metadata value for {key!r} must not contain CR, LF or NUL")
        return value

    @model_validator(mode="after")
    def _derive_management_port(self) -> NodeConfig:
        if self.management_port == 0:
            object.__setattr__(self, "management_port", derive_management_port(self.port))
        elif not PORT_MIN <= self.management_port <= PORT_MAX:
            raise ValueError(f"management_port must be 0 (derived) or within {PORT_MIN}-{PORT_MAX}")
        if self.management_port == self.port:
            raise ValueError("management_port must differ from port")
        return self

    @property
    def spec_path(self) -> str:
        """The contract to serve and validate against (openapi_spec wins over contract)."""
        return self.openapi_spec or self.contract


class EdgePolicy(BaseModel):
    """Resilience policy of calls along an edge."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    timeout_ms: int = Field(default=30000, ge=1)
    retries: int = Field(default=0, ge=0, le=10)
    retry_backoff_ms: int = Field(default=100, ge=0)
    circuit_breaker_threshold: int = Field(default=0, ge=0, description="Consecutive failures to open; 0 = off.")

    @staticmethod
    def merge(policies: list[EdgePolicy]) -> EdgePolicy:
        """Several edges into one node: minimum timeout, maximum retries, minimum non-zero threshold."""
        if not policies:
            return EdgePolicy()
        thresholds = [p.circuit_breaker_threshold for p in policies if p.circuit_breaker_threshold > 0]
        return EdgePolicy(
            timeout_ms=min(p.timeout_ms for p in policies),
            retries=max(p.retries for p in policies),
            retry_backoff_ms=min(p.retry_backoff_ms for p in policies),
            circuit_breaker_threshold=min(thresholds) if thresholds else 0,
        )


class EdgeConfig(BaseModel):
    """A directed dependency: ``source`` calls ``target``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    label: str = ""
    data_tiers_in_flight: list[str] = Field(default_factory=list)
    policy: EdgePolicy = Field(default_factory=EdgePolicy)

    @model_validator(mode="after")
    def _no_self_loop(self) -> EdgeConfig:
        if self.source == self.target:
            raise ValueError(f"an edge cannot connect {self.source!r} to itself")
        return self
