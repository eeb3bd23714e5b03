"""Adapter configuration: the node model and the file the control plane writes.

One adapter process hosts one node (container mode) or many (local mode). The control plane writes a JSON
or YAML file (``baton-adapter --config FILE``); the same model can be built from flags for a single node.

File format (YAML shown; JSON with the same keys works too)::

    events_file: .baton/events.jsonl      # optional: service events appended here as JSON lines
    shutdown_grace_s: 10                  # optional: bound on finishing in-flight requests at SIGTERM
    lease: .baton/leases/adapter          # optional: stop gracefully (exit 0) once this path is gone;
                                          # checked every BATON_LEASE_CHECK_S seconds (default 2)
    instance: 3f2a9c                      # optional: this process's identity, reported with its pid by
                                          # every node's GET /status and GET /health
    nodes:                                # or `node: {...}` for exactly one node
      - name: api                         # ^[a-z][a-z0-9_-]*$
        host: 127.0.0.1                   # data-plane bind address (default 127.0.0.1)
        port: 9001                        # data-plane port (1024-65535, or 0 for an OS-chosen port)
        management_host: 127.0.0.1        # default: same as host
        management_port: 19001            # default: the original's rule (port+10000, +1000, -1000, -10000)
        mode: http                        # http | soap | tcp | grpc | protobuf (protocol handler registry)
        role: service                     # service | ingress | egress
        backend: {host: 127.0.0.1, port: 8001}   # or {mock: true}; omitted -> no backend (503)
        mock: false                       # shorthand for backend: {mock: true}
        contract: contracts/api.yaml      # optional OpenAPI contract used by the mock (grpc: a descriptor set)
        validate_requests: true           # the mock answers 422 to requests its contract does not allow
        health_path: /health              # HTTP GET path used to probe the backend
        health_timeout_ms: 2000
        token_env: BATON_TOKEN            # env var holding the management bearer token (fails closed)
        tls:                              # optional: the data port serves TLS (see baton_adapter.tls)
          cert_file: certs/api.pem        # PEM: the leaf certificate first, then any intermediates
          key_file: certs/api.key         # PEM: its unencrypted private key (PKCS#8, PKCS#1 or SEC1)
          ca_file: certs/ca.pem           # optional PEM bundle that client certificates are checked against
          client_auth: none               # none | optional | required (optional/required need ca_file)
          min_version: "1.2"              # "1.2" | "1.3"
        management_tls: {...}             # optional: the same section for the management port
        tracing:                          # optional: a server span per request, exported over OTLP/HTTP
          otlp_endpoint: http://127.0.0.1:4318   # the collector (``/v1/traces`` is added unless given)
          sample_rate: 1.0                # share of new traces recorded (by trace id; a sampled-out parent wins)
          service_namespace: shop         # resource attribute service.namespace (the circuit's name)
          queue_size: 8192                # finished spans waiting for export; beyond, they are dropped and counted
        policy:
          timeout_ms: 30000               # connect + time to response headers, per attempt (504 past it)
          retries: 0                      # 0-10 extra attempts (idempotent or never-sent requests only)
          retry_backoff_ms: 100
          circuit_breaker_threshold: 0    # consecutive failures that open a target's breaker (0 = off)
          circuit_breaker_cooldown_ms: 5000
          retry_budget_ratio: 0.2         # retries allowed as a fraction of requests
        limits:
          max_header_bytes: 32768         # request line + headers (431 past it)
          max_body_bytes: 67108864        # request body (413 past it); 0 = unlimited
          signals_size: 1000              # ring of recent requests kept for /signals
          max_idle_upstream: 64           # pooled idle keep-alive connections per backend
          upstream_idle_s: 1.5            # pooled connections idle longer are closed, not reused (must be
                                          # below the backend's keep-alive timeout: gunicorn 2 s, uvicorn 5 s)
          read_idle_s: 300                # a response body that stalls this long is cut (0 = never)
          header_timeout_s: 10            # a request head must arrive whole within this (408 past it;
                                          # checked on the 1 s housekeeping tick)
          stream_idle_s: 300              # tcp/protobuf: a connection with no byte either way this long is
                                          # closed (0 = never)
          max_frame_bytes: 16777216       # protobuf: a frame declaring a longer payload closes its connection
        routing:                          # optional initial routing (see baton_adapter.routing)
          strategy: weighted
          targets: [{name: a, host: 127.0.0.1, port: 8001, weight: 80},
                    {name: b, host: 127.0.0.1, port: 8002, weight: 20}]

Objects here are frozen dataclasses; ``from_mapping`` normalises input and rejects ambiguity with one
sentence saying what was expected and what arrived.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

__all__ = [
    "AdapterConfig",
    "Backend",
    "ConfigError",
    "Limits",
    "NodeConfig",
    "Policy",
    "TlsConfig",
    "TracingConfig",
    "default_management_port",
    "is_loopback",
    "load_config",
    "process_instance",
    "validate_health_path",
    "validate_instance",
    "validate_lease",
]

NODE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
MODES = ("http", "tcp", "grpc", "protobuf", "soap")  # built-in handlers; the registry may add more
MODE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ROLES = ("service", "ingress", "egress")
TLS_VERSIONS = ("1.2", "1.3")
CLIENT_AUTH = ("none", "optional", "required")


def _int(data: Mapping[str, Any], key: str, default: int, lo: int, hi: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key} must be an integer in {lo}..{hi}, got {value!r}.")
    return value


def _float(data: Mapping[str, Any], key: str, default: float, lo: float, hi: float, where: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key} must be a number in {lo}..{hi}, got {value!r}.")
    return float(value)


def _reject_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where} accepts {sorted(known)}, got unknown key(s) {unknown}.")


def validate_health_path(path: str) -> str:
    """Return ``path`` if it is a safe HTTP path (starts with '/', no CR/LF or spaces), else raise."""
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "\r\n \t"):
        raise ConfigError(f"health_path must start with '/' and hold no CR, LF or whitespace, got {path!r}.")
    return path


def is_loopback(host: str) -> bool:
    """True when ``host`` names only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_management_port(port: int) -> int:
    """The original's rule: port+10000, else +1000, -1000, -10000, first inside 1024-65535 (0 stays 0)."""
    if port == 0:
        return 0
    for delta in (10000, 1000, -1000, -10000):
        if 1024 <= port + delta <= 65535:
            return port + delta
    raise ConfigError(f"no management port derivable from port {port}; set management_port.")


@dataclass(frozen=True, slots=True)
class Policy:
    """Edge policy applied by the node's proxy to every request."""

    timeout_ms: int = 30000
    retries: int = 0
    retry_backoff_ms: int = 100
    circuit_breaker_threshold: int = 0
    circuit_breaker_cooldown_ms: int = 5000
    retry_budget_ratio: float = 0.2

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "policy") -> Policy:
        data = data or {}
        _reject_unknown(data, {f.name for f in dataclasses.fields(cls)}, where)
        return cls(
            timeout_ms=_int(data, "timeout_ms", 30000, 1, 86_400_000, where),
            retries=_int(data, "retries", 0, 0, 10, where),
            retry_backoff_ms=_int(data, "retry_backoff_ms", 100, 0, 3_600_000, where),
            circuit_breaker_threshold=_int(data, "circuit_breaker_threshold", 0, 0, 1_000_000, where),
            circuit_breaker_cooldown_ms=_int(data, "circuit_breaker_cooldown_ms", 5000, 1, 86_400_000, where),
            retry_budget_ratio=_float(data, "retry_budget_ratio", 0.2, 0.0, 1.0, where),
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """Size bounds of the data plane and of the node's in-memory telemetry."""

    max_header_bytes: int = 32768
    max_body_bytes: int = 64 * 1024 * 1024
    signals_size: int = 1000
    max_idle_upstream: int = 64
    upstream_idle_s: float = 1.5
    read_idle_s: float = 300.0
    header_timeout_s: float = 10.0
    hold_s: float = 0.0  # how long a request no backend took waits for the routing to change (0: fail at once)
    stream_idle_s: float = 300.0  # tcp/protobuf: close a connection with no byte either way this long (0: never)
    max_frame_bytes: int = 16 * 1024 * 1024  # protobuf: the longest frame payload relayed (the original's 16 MB)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "limits") -> Limits:
        data = data or {}
        _reject_unknown(data, {f.name for f in dataclasses.fields(cls)}, where)
        return cls(
            max_header_bytes=_int(data, "max_header_bytes", 32768, 256, 1 << 24, where),
            max_body_bytes=_int(data, "max_body_bytes", 64 * 1024 * 1024, 0, 1 << 40, where),
            signals_size=_int(data, "signals_size", 1000, 1, 1_000_000, where),
            max_idle_upstream=_int(data, "max_idle_upstream", 64, 0, 100_000, where),
            upstream_idle_s=_float(data, "upstream_idle_s", 1.5, 0.1, 86_400.0, where),
            read_idle_s=_float(data, "read_idle_s", 300.0, 0.0, 86_400.0, where),
            header_timeout_s=_float(data, "header_timeout_s", 10.0, 0.1, 3600.0, where),
            hold_s=_float(data, "hold_s", 0.0, 0.0, 600.0, where),
            stream_idle_s=_float(data, "stream_idle_s", 300.0, 0.0, 86_400.0, where),
            max_frame_bytes=_int(data, "max_frame_bytes", 16 * 1024 * 1024, 0, (1 << 32) - 1, where),
        )


@dataclass(frozen=True, slots=True)
class Backend:
    """Where a node's traffic goes: a host and port, or the node's in-process mock."""

    host: str = ""
    port: int = 0
    mock: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "backend") -> Backend:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be an object {{host, port}} or {{mock: true}}, got {data!r}.")
        _reject_unknown(data, {"host", "port", "mock"}, where)
        if data.get("mock"):
            if "host" in data or "port" in data:
                raise ConfigError(f"{where} must be either {{mock: true}} or {{host, port}}, got both.")
            return cls(mock=True)
        host = data.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host or any(c in host for c in "\r\n /"):
            raise ConfigError(f"{where}.host must be a host name or address, got {host!r}.")
        return cls(host=host, port=_int(data, "port", -1, 1, 65535, where))

    def to_json(self) -> dict[str, Any]:
        return {"mock": True} if self.mock else {"host": self.host, "port": self.port}

    def label(self) -> str:
        return "mock" if self.mock else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Where a TLS listener's certificate, key and client CA live, and how it talks TLS.

    Only the shape is checked here; ``baton_adapter.tls`` reads the files and checks what they hold (PEM, key
    matching the certificate, validity dates) when the node is built. Relative paths are resolved against the
    working directory. ``min_version`` accepts the YAML numbers 1.2 and 1.3 as well as strings;
    ``client_auth`` accepts true/false as "required"/"none".
    """

    cert_file: str
    key_file: str
    ca_file: str | None = None
    client_auth: str = "none"
    min_version: str = "1.2"

    @classmethod
    def from_mapping(cls, data: Any, where: str = "tls") -> TlsConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be an object {{cert_file, key_file, ca_file?, client_auth?, "
                              f"min_version?}}, got {data!r}.")
        _reject_unknown(data, {f.name for f in dataclasses.fields(cls)}, where)
        paths = {}
        for key in ("cert_file", "key_file", "ca_file"):
            value = data.get(key)
            if value is None and key == "ca_file":
                paths[key] = None
                continue
            if not isinstance(value, str) or not value or "\0" in value:
                raise ConfigError(f"{where}.{key} must be a file path, got {value!r}.")
            paths[key] = value
        version = data.get("min_version", "1.2")
        if isinstance(version, float) and not isinstance(version, bool):
            version = f"{version:g}"  # YAML reads an unquoted 1.2 as a number
        if version not in TLS_VERSIONS:
            raise ConfigError(f"{where}.min_version must be one of {list(TLS_VERSIONS)}, got {version!r}.")
        client_auth = data.get("client_auth", "none")
        if isinstance(client_auth, bool):
            client_auth = "required" if client_auth else "none"
        if client_auth not in CLIENT_AUTH:
            raise ConfigError(f"{where}.client_auth must be one of {list(CLIENT_AUTH)}, got {client_auth!r}.")
        if client_auth != "none" and paths["ca_file"] is None:
            raise ConfigError(f"{where}.client_auth {client_auth!r} needs {where}.ca_file, the CA bundle that "
                              "client certificates are checked against.")
        return cls(cert_file=paths["cert_file"], key_file=paths["key_file"], ca_file=paths["ca_file"],
                   client_auth=client_auth, min_version=version)


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """Where a node's request spans go (OTLP/HTTP protobuf) and how many are kept.

    ``otlp_endpoint`` is the collector's base URL (``http://host:4318``) or its full traces URL (ending in
    ``/v1/traces``); ``traces_url`` is the latter either way.
    """

    otlp_endpoint: str
    sample_rate: float = 1.0
    service_namespace: str = ""
    queue_size: int = 8192

    @classmethod
    def from_mapping(cls, data: Any, where: str = "tracing") -> TracingConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be an object {{otlp_endpoint, sample_rate?, service_namespace?, "
                              f"queue_size?}}, got {data!r}.")
        _reject_unknown(data, {f.name for f in dataclasses.fields(cls)}, where)
        endpoint = data.get("otlp_endpoint")
        scheme, sep, rest = endpoint.partition("://") if isinstance(endpoint, str) else ("", "", "")
        if scheme not in ("http", "https") or not sep or not rest or any(c in rest for c in " \r\n"):
            raise ConfigError(f"{where}.otlp_endpoint must be an http(s) URL such as http://127.0.0.1:4318, got "
                              f"{endpoint!r}.")
        namespace = data.get("service_namespace", "")
        if not isinstance(namespace, str) or len(namespace) > 200 or not namespace.isprintable():
            raise ConfigError(f"{where}.service_namespace must be a printable string, got {namespace!r}.")
        return cls(otlp_endpoint=endpoint, sample_rate=_float(data, "sample_rate", 1.0, 0.0, 1.0, where),
                   service_namespace=namespace, queue_size=_int(data, "queue_size", 8192, 16, 1_000_000, where))

    @property
    def traces_url(self) -> str:
        base = self.otlp_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else base + "/v1/traces"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One circuit node as the adapter hosts it."""

    name: str
    port: int
    host: str = "127.0.0.1"
    management_port: int = 0
    management_host: str = ""
    mode: str = "http"
    role: str = "service"
    backend: Backend | None = None
    contract: str | None = None
    validate_requests: bool = True
    health_path: str = "/health"
    health_timeout_ms: int = 2000
    token_env: str | None = None
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    routing: Mapping[str, Any] | None = None
    tls: TlsConfig | None = None
    management_tls: TlsConfig | None = None
    tracing: TracingConfig | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "node") -> NodeConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be an object, got {type(data).__name__}.")
        _reject_unknown(data, {f.name for f in dataclasses.fields(cls)} | {"mock"}, where)
        name = data.get("name")
        if not isinstance(name, str) or not NODE_NAME.match(name):
            raise ConfigError(f"{where}.name must match {NODE_NAME.pattern}, got {name!r}.")
        where = f"node {name!r}"
        port = _int(data, "port", -1, 0, 65535, where)
        if 0 < port < 1024:
            raise ConfigError(f"{where}.port must be 0 or in 1024..65535, got {port}.")
        mport = data.get("management_port")
        mport = default_management_port(port) if mport is None else _int(data, "management_port", 0, 0, 65535, where)
        host = data.get("host", "127.0.0.1")
        mode = data.get("mode", "http")
        if not isinstance(mode, str) or not MODE_NAME.match(mode):
            raise ConfigError(f"{where}.mode must be a protocol name such as {list(MODES)}, got {mode!r}.")
        role = data.get("role", "service")
        if role not in ROLES:
            raise ConfigError(f"{where}.role must be one of {list(ROLES)}, got {role!r}.")
        backend: Backend | None = None
        if data.get("backend") is not None:
            backend = Backend.from_mapping(data["backend"], f"{where}.backend")
        if data.get("mock") or role == "egress":
            if backend is not None and not backend.mock and data.get("mock"):
                raise ConfigError(f"{where} sets mock: true and a host/port backend; choose one.")
            backend = Backend(mock=True)
        token_env = data.get("token_env")
        if token_env is not None and (not isinstance(token_env, str) or not token_env):
            raise ConfigError(f"{where}.token_env must be an environment variable name, got {token_env!r}.")
        routing = data.get("routing")
        if routing is not None and not isinstance(routing, Mapping):
            raise ConfigError(f"{where}.routing must be an object, got {routing!r}.")
        contract = data.get("contract")
        if contract is not None and not isinstance(contract, str):
            raise ConfigError(f"{where}.contract must be a file path, got {contract!r}.")
        validate_requests = data.get("validate_requests", True)
        if not isinstance(validate_requests, bool):
            raise ConfigError(f"{where}.validate_requests must be true or false, got {validate_requests!r}.")
        return cls(
            name=name,
            port=port,
            host=host,
            management_port=mport,
            management_host=data.get("management_host") or host,
            mode=mode,
            role=role,
            backend=backend,
            contract=contract,
            validate_requests=validate_requests,
            health_path=validate_health_path(data.get("health_path", "/health")),
            health_timeout_ms=_int(data, "health_timeout_ms", 2000, 1, 600_000, where),
            token_env=token_env,
            policy=Policy.from_mapping(data.get("policy"), f"{where}.policy"),
            limits=Limits.from_mapping(data.get("limits"), f"{where}.limits"),
            routing=routing,
            tls=None if data.get("tls") is None else TlsConfig.from_mapping(data["tls"], f"{where}.tls"),
            management_tls=(None if data.get("management_tls") is None
                            else TlsConfig.from_mapping(data["management_tls"], f"{where}.management_tls")),
            tracing=(None if data.get("tracing") is None
                     else TracingConfig.from_mapping(data["tracing"], f"{where}.tracing")),
        )

    def token(self) -> str | None:
        """The configured bearer token, or None when no token source is configured.

        Raises ``LookupError`` when a token source is configured but empty or missing (fail closed).
        """
        if self.token_env is None:
            return None
        value = os.environ.get(self.token_env, "")
        if not value:
            raise LookupError(f"environment variable {self.token_env} holds no token")
        return value


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    """Everything one adapter process hosts.

    ``lease``: a path whose disappearance stops the process gracefully (its starter deleted its record);
    ``instance``: an opaque name of this process, reported by every node's ``/status`` and ``/health``.
    """

    nodes: tuple[NodeConfig, ...]
    events_file: str | None = None
    shutdown_grace_s: float = 10.0
    lease: str | None = None
    instance: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AdapterConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"the adapter config must be an object, got {type(data).__name__}.")
        _reject_unknown(data, {"node", "nodes", "events_file", "shutdown_grace_s", "lease", "instance"},
                        "adapter config")
        if ("node" in data) == ("nodes" in data):
            raise ConfigError("the adapter config must hold exactly one of `node` or `nodes`.")
        raw = [data["node"]] if "node" in data else data["nodes"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"`nodes` must be a non-empty list, got {raw!r}.")
        nodes = tuple(NodeConfig.from_mapping(n, f"nodes[{i}]") for i, n in enumerate(raw))
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ConfigError(f"node names must be unique, got {names}.")
        events = data.get("events_file")
        if events is not None and not isinstance(events, str):
            raise ConfigError(f"events_file must be a path, got {events!r}.")
        grace = _float(data, "shutdown_grace_s", 10.0, 0.0, 3600.0, "adapter config")
        return cls(nodes=nodes, events_file=events, shutdown_grace_s=grace,
                   lease=validate_lease(data.get("lease")), instance=validate_instance(data.get("instance", "")))


def validate_lease(path: Any) -> str | None:
    """Return the lease path (None when unset), or raise when it is not a usable path."""
    if path is None:
        return None
    if not isinstance(path, str) or not path or "\0" in path:
        raise ConfigError(f"lease must be a file path, got {path!r}.")
    return path


def validate_instance(name: Any) -> str:
    """Return the instance name ('' when unset), or raise when it is not a short printable string."""
    if not isinstance(name, str) or len(name) > 200 or not name.isprintable():
        raise ConfigError(f"instance must be a printable string of at most 200 characters, got {name!r}.")
    return name


_PROCESS_INSTANCE = secrets.token_hex(6)


def process_instance() -> str:
    """A random name of this adapter process (the same for every node it hosts), for a config that gives none."""
    return _PROCESS_INSTANCE


def load_config(path: str | os.PathLike[str]) -> AdapterConfig:
    """Read a JSON or YAML adapter config file."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml  # lazily: JSON configs need no YAML parser

        data = yaml.safe_load(text)
    return AdapterConfig.from_mapping(data)
