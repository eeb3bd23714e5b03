"""The optional sections of ``baton.yaml``: routing, security, observability,
federation, taint, arbiter, ledger and deploy.

Every field has the original Baton's default, so a file that omits a section
behaves as it did there.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from baton.config.validation import PlacedValueError

__all__ = [
    "RoutingStrategy",
    "RoutingTarget",
    "RoutingRule",
    "RoutingConfig",
    "TLSMode",
    "TLSConfig",
    "ControlAuthConfig",
    "SecurityConfig",
    "ObservabilityConfig",
    "ClusterIdentity",
    "FederationConfig",
    "TaintConfig",
    "ArbiterConfig",
    "LedgerConfig",
    "CloudPrices",
    "DeployConfig",
]

_FROZEN = ConfigDict(frozen=True, extra="ignore")


class RoutingStrategy(StrEnum):
    SINGLE = "single"
    WEIGHTED = "weighted"
    HEADER = "header"
    CANARY = "canary"


class RoutingTarget(BaseModel):
    """One backend a node's adapter can send traffic to."""

    model_config = _FROZEN

    name: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    weight: int = Field(default=100, ge=0, le=100)


class RoutingRule(BaseModel):
    """Send requests whose ``header`` equals ``value`` to ``target``."""

    model_config = _FROZEN

    header: str = Field(min_length=1)
    value: str = Field(min_length=1)
    target: str = Field(min_length=1)


class RoutingConfig(BaseModel):
    """How a node's adapter splits traffic between its targets."""

    model_config = _FROZEN

    strategy: RoutingStrategy = RoutingStrategy.SINGLE
    targets: list[RoutingTarget] = Field(default_factory=list)
    rules: list[RoutingRule] = Field(default_factory=list)
    default_target: str = ""
    locked: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> RoutingConfig:
        names = [t.name for t in self.targets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique, found {', '.join(duplicates)} more than once")
        if self.strategy in (RoutingStrategy.WEIGHTED, RoutingStrategy.CANARY):
            total = sum(t.weight for t in self.targets)
            if total != 100:
                raise ValueError(f"{self.strategy} weights must sum to 100, found {total}")
        if self.strategy is RoutingStrategy.HEADER:
            if not self.rules:
                raise ValueError("header routing needs at least one rule")
            if not self.default_target:
                raise ValueError("header routing needs a default_target")
        known = set(names)
        if known:
            wanted = [r.target for r in self.rules] + ([self.default_target] if self.default_target else [])
            unknown = sorted({t for t in wanted if t not in known})
            if unknown:
                raise ValueError(f"rules name unknown targets {', '.join(unknown)}; known: {', '.join(names)}")
        return self


class TLSMode(StrEnum):
    OFF = "off"
    CIRCUIT = "circuit"
    FULL = "full"


class TLSConfig(BaseModel):
    """TLS of the circuit. ``circuit``: a CA of the project's own (``.baton/tls/``) issues every adapter's
    certificate, so ``cert``/``key`` are not used; ``full``: the same, and the ingress serves the user's own
    ``cert``/``key``. The thresholds and the check interval are the original Baton's."""

    model_config = _FROZEN

    mode: TLSMode = TLSMode.OFF
    cert: str = Field(default="", description="The ingress certificate (PEM; intermediates after it) in mode full; "
                                              "not used in mode circuit.")
    key: str = Field(default="", description="The private key of cert (PEM, unencrypted) in mode full; not used "
                                             "in mode circuit.")
    auto_rotate: bool = False
    rotate_check_interval_s: float = Field(default=3600.0, gt=0)
    warning_days: int = Field(default=30, ge=0)
    critical_days: int = Field(default=7, ge=0)
    lifetime_days: float = Field(default=90.0, gt=0, le=3650,
                                 description="Lifetime of the node certificates the circuit CA issues (renewed at "
                                             "2/3 of it, or warning_days before its end if sooner); fractions of a "
                                             "day allowed.")

    @model_validator(mode="after")
    def _thresholds_and_files(self) -> TLSConfig:
        if self.critical_days > self.warning_days:
            raise ValueError("critical_days must not exceed warning_days")
        if self.mode is TLSMode.FULL and not (self.cert and self.key):
            missing = " and ".join(name for name in ("cert", "key") if not getattr(self, name))
            raise PlacedValueError(
                f"tls mode full needs both cert and key (the ingress serves your own certificate), found no "
                f"{missing}: set them to PEM files, or use mode circuit to have Baton's CA issue every certificate",
                ("cert",) if not self.cert else ("key",),
            )
        return self


class ControlAuthConfig(BaseModel):
    """Authentication of the adapters' management API: always on.

    Every adapter requires a bearer token on every route, whatever this section says. ``token_env`` chooses
    where the token comes from: empty (the default), the token Baton generates per project in
    ``.baton/control_token``; a variable name, that variable, which must then be set wherever Baton runs.
    ``auth`` is kept so that files of the original Baton load: ``false`` no longer opens the API.
    """

    model_config = _FROZEN

    auth: bool = Field(default=True, description="Kept for compatibility: the management API always requires "
                                                 "a token.")
    token_env: str = Field(default="", pattern=r"^$|^[A-Za-z_][A-Za-z0-9_]*$",
                           description="The environment variable holding the management token; empty: the "
                                       "token generated in .baton/control_token.")

    @model_validator(mode="after")
    def _not_a_service_variable(self) -> ControlAuthConfig:
        if self.token_env == "PORT" or self.token_env.startswith(("BATON_SERVICE_", "BATON_NODE_",
                                                                  "BATON_CONTROL_PORT", "PREFECT_")):
            raise ValueError(f"token_env {self.token_env} is a variable Baton or Prefect sets itself; name a "
                             "variable of your own, e.g. BATON_TOKEN")
        return self


class SecurityConfig(BaseModel):
    model_config = _FROZEN

    tls: TLSConfig = Field(default_factory=TLSConfig)
    control: ControlAuthConfig = Field(default_factory=ControlAuthConfig)


class ObservabilityConfig(BaseModel):
    model_config = _FROZEN

    enabled: bool = False
    sink: str = "jsonl"
    otlp_endpoint: str = Field(default="",
                               description="An OTLP/HTTP collector (http://host:4318, or its full /v1/traces URL): "
                                           "every adapter exports a span per request, and every flow run one span, "
                                           "there; empty: no spans at all.")
    otlp_protocol: str = Field(default="http/protobuf", description="How spans are exported: http/protobuf, the "
                                                                    "one protocol Baton speaks.")
    service_name: str = Field(default="", description="service.namespace of every span (default: the circuit's "
                                                      "name); service.name is the node's, or baton for flow runs.")
    trace_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0,
                                     description="Share of new traces recorded, decided by trace id (so every "
                                                 "adapter of a trace agrees); a sampled-out parent wins.")
    pipelines: bool = Field(default=True, description="The conductor pulls every running adapter's signals and "
                                                      "service events, and snapshots its metrics, into .baton/ "
                                                      "(signals.jsonl, service_events.jsonl, metrics.jsonl).")
    pull_interval_s: float = Field(default=1.0, ge=0.1, le=3600,
                                   description="How often signals and service events are pulled "
                                               "(BATON_TELEMETRY_INTERVAL_S overrides it).")
    metrics_interval_s: float = Field(default=10.0, ge=0.1, le=86400,
                                      description="How often a snapshot of every adapter's /metrics is appended "
                                                  "to metrics.jsonl.")
    file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096, le=1024**3,
                                description="Size at which signals.jsonl, metrics.jsonl and service_events.jsonl "
                                            "are rotated (each file stays at most this big).")
    file_keep: int = Field(default=3, ge=1, le=100,
                           description="Rotated files kept of each (<file>.1 newest ... <file>.N oldest); the "
                                       "whole stays under (file_keep + 1) * file_max_bytes.")

    @model_validator(mode="after")
    def _http_export(self) -> ObservabilityConfig:
        endpoint = self.otlp_endpoint
        if endpoint and (not endpoint.startswith(("http://", "https://")) or len(endpoint.split()) != 1
                         or endpoint.endswith("://")):
            raise PlacedValueError(f"otlp_endpoint must be an http(s) URL of an OTLP/HTTP collector such as "
                                   f"http://127.0.0.1:4318, found {endpoint!r}", ("otlp_endpoint",))
        if self.otlp_endpoint and self.otlp_protocol != "http/protobuf":
            raise PlacedValueError(
                f"otlp_protocol must be http/protobuf (Baton exports spans over OTLP/HTTP), found "
                f"{self.otlp_protocol!r}: remove it and point otlp_endpoint at the collector's HTTP port (4318)",
                ("otlp_protocol",))
        return self


class ClusterIdentity(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1)
    api_endpoint: str = Field(min_length=1)
    region: str = ""
    priority: int = Field(default=0, ge=0)


class FederationConfig(BaseModel):
    model_config = _FROZEN

    enabled: bool = False
    identity: ClusterIdentity | None = None
    peers: list[ClusterIdentity] = Field(default_factory=list)
    heartbeat_interval_s: float = Field(default=30.0, ge=0.1)
    heartbeat_timeout_s: float = Field(default=10.0, ge=0.1)
    failover_threshold: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _identity_when_enabled(self) -> FederationConfig:
        if self.enabled and self.identity is None:
            raise ValueError("federation is enabled but has no identity; add identity: {name, api_endpoint}")
        return self


class TaintConfig(BaseModel):
    model_config = _FROZEN

    enabled: bool = False
    scan_requests: bool = True
    scan_responses: bool = True
    categories: list[str] = Field(default_factory=lambda: ["email", "name", "ssn", "card", "phone"])


class ArbiterConfig(BaseModel):
    model_config = _FROZEN

    api_endpoint: str = ""
    endpoint: str = ""
    forward_spans: bool = False
    classification_tagging: bool = False


class LedgerConfig(BaseModel):
    model_config = _FROZEN

    api_endpoint: str = ""


class CloudPrices(BaseModel):
    """Per-second prices of an instance's resources (Cloud Run's list prices by default; set your region's)."""

    model_config = _FROZEN

    vcpu_second_usd: float = Field(default=0.000024, ge=0, description="price of one vCPU for one second")
    gib_second_usd: float = Field(default=0.0000025, ge=0, description="price of one GiB of memory for one second")


class DeployConfig(BaseModel):
    model_config = _FROZEN

    provider: str = Field(default="local", pattern=r"^[a-z][a-z0-9_-]*$")
    project: str = ""
    region: str = ""
    namespace: str = ""
    build: bool = False
    image: str = ""
    registry: str = Field(default="", description="where cloud providers push images (HOST[:PORT][/PATH])")
    max_instances: int = Field(default=3, ge=1, le=1000, description="instances per node at most (cloud providers)")
    cpu: float = Field(default=1.0, gt=0, le=8, description="vCPUs per instance (adapter and service together)")
    memory_mib: int = Field(default=512, ge=128, le=32768, description="memory per instance in MiB")
    monthly_budget_usd: float = Field(default=1000.0, ge=0,
                                      description="refuse a cloud deploy whose worst-case month costs more")
    prices: CloudPrices = Field(default_factory=CloudPrices)
    service_account: str = Field(default="", description="the identity nodes call each other as (default: "
                                                         "baton-<circuit>@<project>.iam.gserviceaccount.com)")
