"""Pure wiring of a circuit: the adapter configuration the data plane reads (with its tracing section when
``observability.otlp_endpoint`` is set), the URLs consumers use to reach their dependencies, and a slotted
service's environment. One step is not pure: a grpc node's ``.proto`` contract is compiled on the way into the
descriptor set its adapter reads (:mod:`baton.proto_contracts`, only when the ``.proto`` changed).

A service gets an explicit environment, never Baton's own: a minimal base taken from the environment
Baton runs in (``PATH``, ``HOME``, locale, time zone, temporary directory, user; :data:`BASE_ENV`) and the
variables Baton defines for it (:func:`service_env`). Nothing else reaches it: not the management token,
not ``PREFECT_*``, not ``BATON_HOME`` or a lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from baton.config import CircuitConfig, NodeConfig, NodeRole, ProxyMode, TLSMode
from baton.control import GENERATED_TOKEN_ENV
from baton.project import STATE_DIRNAME
from baton.proto_contracts import PROTO_SUFFIX, compile_proto
from baton_adapter.event_token import EVENTS_TOKEN_ENV

__all__ = ["BASE_ENV", "env_name", "tls_on", "trust_env", "node_url", "dependency_env", "service_env", "base_env", "service_environment",
           "command_env", "node_contract", "adapter_node", "adapter_config"]

BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM")
"""The variables of Baton's own environment a service inherits (and every ``LC_*``)."""


def env_name(node: str) -> str:
    """``BATON_<NODE>_URL`` spelling of a node name (``ledger-db`` -> ``LEDGER_DB``)."""
    return node.upper().replace("-", "_")


def tls_on(config: CircuitConfig) -> bool:
    """Whether the circuit's adapters serve TLS on their data ports (``security.tls.mode`` circuit or full)."""
    return config.security.tls.mode is not TLSMode.OFF


def node_url(node: NodeConfig, *, host: str | None = None, tls: bool = False) -> str:
    scheme = "https" if tls else "http"
    return f"{scheme}://{host or node.host}:{node.port}"


def dependency_env(config: CircuitConfig, node: str, *, host_of: Mapping[str, str] | None = None) -> dict[str, str]:
    """``BATON_<DEP>_URL`` for every edge out of ``node``: the dependency's adapter, never its service
    (``https`` when the circuit serves TLS)."""
    env: dict[str, str] = {}
    tls = tls_on(config)
    for edge in config.edges:
        if edge.source == node:
            target = config.node(edge.target)
            assert target is not None  # validated config
            env[f"BATON_{env_name(target.name)}_URL"] = node_url(target, host=(host_of or {}).get(target.name),
                                                                 tls=tls)
    return env


def trust_env(ca_file: str, trust_file: str) -> dict[str, str]:
    """What makes a service trust the circuit's CA: ``BATON_CA_FILE`` (the circuit CAs alone) and the
    variables common clients read (Python's ssl and requests, curl, OpenSSL: the system's roots and the
    circuit's, so calls outside the circuit still verify; Node.js adds ``NODE_EXTRA_CA_CERTS`` to its own)."""
    return {"BATON_CA_FILE": ca_file, "SSL_CERT_FILE": trust_file, "REQUESTS_CA_BUNDLE": trust_file,
            "CURL_CA_BUNDLE": trust_file, "NODE_EXTRA_CA_CERTS": ca_file}


def service_env(config: CircuitConfig, node: NodeConfig, *, service_port: int,
                host_of: Mapping[str, str] | None = None, trust: Mapping[str, str] | None = None,
                service_host: str = "127.0.0.1", events_token: str | None = None) -> dict[str, str]:
    """The environment a slotted service is started with (names as in the original Baton); ``trust``: the
    CA files where the service reads them (:func:`trust_env`), when the circuit serves TLS; ``service_host``
    the address it binds (``BATON_SERVICE_HOST``: loopback for a process, ``0.0.0.0`` in a container);
    ``events_token``: what opens ``POST /events`` on its adapter (``BATON_EVENTS_TOKEN``, see
    :func:`baton.control.events_token`), never the management token."""
    return {
        "BATON_SERVICE_HOST": service_host,
        "BATON_SERVICE_PORT": str(service_port),
        "BATON_NODE_NAME": node.name,
        "BATON_CONTROL_PORT": str(node.management_port),
        "PORT": str(service_port),
        **dependency_env(config, node.name, host_of=host_of),
        **(dict(trust) if trust and tls_on(config) else {}),
        **({EVENTS_TOKEN_ENV: events_token} if events_token else {}),
    }


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` every service inherits: :data:`BASE_ENV` and the ``LC_*`` locale variables."""
    return {k: v for k, v in environ.items() if k in BASE_ENV or k.startswith("LC_")}


def service_environment(environ: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a service process: the base from ``environ`` and Baton's variables ``env``
    (see :func:`service_env`), nothing else."""
    return {**base_env(environ), **env}


def command_env(config: CircuitConfig, environ: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """The variables a service command may name (``$VAR``): the user's, and the service's own ``env``; never
    the management token's variable, Prefect's or Baton's internal ones (an expanded argv is visible to every
    process and recorded in state and run history)."""
    secret = config.security.control.token_env

    def internal(name: str) -> bool:
        return name == secret or name.startswith(("PREFECT_", "BATON_"))

    return {**{k: v for k, v in environ.items() if not internal(k)},
            **{k: v for k, v in env.items() if k != EVENTS_TOKEN_ENV}}  # a token in an argv is no secret


# how long a request no backend took (its service died, a heal is on its way) waits for the routing to change
# before it fails: the custodian notices an exited service within a probe (5 s) and restarts it in a few more
HOLD_S = 15.0


def node_contract(node: NodeConfig, root: Path) -> Path | None:
    """The contract file a node's adapter is given, absolute: its ``contract`` as it is, except a grpc node's
    ``.proto``, compiled into ``.baton/contracts/<node>.protoset`` (when newer; ``ConfigError`` if it does not
    compile)."""
    if not node.spec_path:
        return None
    path = Path(node.spec_path)
    path = path if path.is_absolute() else (root / path).resolve()
    if node.proxy_mode == ProxyMode.GRPC and path.suffix == PROTO_SUFFIX:
        label = node.spec_path
        return compile_proto(path, root / STATE_DIRNAME / "contracts" / f"{node.name}.protoset", label=label)
    return path


def adapter_node(
    config: CircuitConfig,
    node: NodeConfig,
    *,
    root: Path,
    backend: Mapping[str, Any] | None,
    routing: Mapping[str, Any] | None = None,
    bind_host: str | None = None,
    tls: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One node of the adapter config (see ``baton_adapter.config``); ``backend`` None means the mock; ``tls``
    the certificate files its data port serves (``cert_file``, ``key_file``), when the circuit serves TLS."""
    contract = node_contract(node, root)
    entry: dict[str, Any] = {
        "name": node.name,
        "host": bind_host or node.host,
        "port": node.port,
        "management_port": node.management_port,
        "mode": str(node.proxy_mode),
        "role": str(node.role),
        "policy": config.inbound_policy(node.name).model_dump(),
        "limits": {"hold_s": HOLD_S, **node.limits.adapter_limits()},
    }
    if contract is not None:
        entry["contract"] = str(contract)
    if not node.validate_requests:
        entry["validate_requests"] = False
    if node.role is NodeRole.EGRESS or backend is None:
        entry["backend"] = {"mock": True}
    else:
        entry["backend"] = dict(backend)
    if routing:
        entry["routing"] = dict(routing)
    if tls:
        entry["tls"] = dict(tls)
    observability = config.observability
    if observability.otlp_endpoint:  # a span per request, to the same collector as the flow runs' spans
        entry["tracing"] = {"otlp_endpoint": observability.otlp_endpoint,
                            "sample_rate": observability.trace_sample_rate,
                            "service_namespace": observability.service_name or config.name}
    entry["token_env"] = config.security.control.token_env or GENERATED_TOKEN_ENV  # every adapter requires one
    return entry


def adapter_config(nodes: Sequence[Mapping[str, Any]], *, events_file: Path | None = None,
                   grace_s: float = 10.0) -> dict[str, Any]:
    """An adapter host's config. ``events_file``: where the adapters also append service events (by default they
    keep them in their rings only, where the conductor's telemetry pipeline reads them on every provider)."""
    config: dict[str, Any] = {"shutdown_grace_s": grace_s, "nodes": [dict(n) for n in nodes]}
    if events_file is not None:
        config["events_file"] = str(events_file)
    return config
