"""The ``baton-adapter`` command: run the nodes of a config file, or one node described by flags.

    baton-adapter --config adapter.yaml
    baton-adapter --node api --port 9001 --backend 127.0.0.1:8001 [--management-port 19001]
    baton-adapter --node users --port 9002 --mock --contract contracts/users.yaml --token-env BATON_TOKEN

When every node listens, one JSON line goes to stdout: ``{"event": "ready", "nodes": [{name, port,
management_port, mode}]}`` (ports resolved, so port 0 works). SIGTERM or SIGINT stops gracefully: no new
connections, in-flight requests finish within ``--grace`` seconds, then everything closes; so does the
disappearance of the ``--lease`` path. Exit codes: 0 on a clean stop, 2 for an invalid config (or a lease that
is already gone), 1 when a port cannot be bound (one line on stderr naming the node, the address and why).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from typing import Any, Sequence

from .config import AdapterConfig, ConfigError, load_config, validate_instance, validate_lease
from .errors import BindError

__all__ = ["main", "parse_args", "config_from_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="baton-adapter", description="Baton's data plane: one adapter per node.")
    p.add_argument("--config", help="JSON or YAML adapter config (see baton_adapter.config)")
    p.add_argument("--node", help="node name (single-node mode, instead of --config)")
    p.add_argument("--host", default="127.0.0.1", help="data-plane bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="data-plane port (0 = any free port)")
    p.add_argument("--management-host", help="management bind address (default: --host)")
    p.add_argument("--management-port", type=int, help="management port (default: the original's rule)")
    p.add_argument("--mode", default="http", help="protocol mode (default http)")
    p.add_argument("--role", default="service", help="service | ingress | egress")
    p.add_argument("--backend", help="HOST:PORT of the slotted service")
    p.add_argument("--mock", action="store_true", help="serve the node from its mock")
    p.add_argument("--contract", help="contract file for the mock")
    p.add_argument("--health-path", default="/health")
    p.add_argument("--token-env", help="environment variable holding the management bearer token")
    p.add_argument("--timeout-ms", type=int, default=30000)
    p.add_argument("--retries", type=int, default=0)
    p.add_argument("--retry-backoff-ms", type=int, default=100)
    p.add_argument("--circuit-breaker-threshold", type=int, default=0)
    p.add_argument("--max-body-bytes", type=int)
    p.add_argument("--max-header-bytes", type=int)
    p.add_argument("--header-timeout-s", type=float, help="seconds a request head may take to arrive (default 10)")
    p.add_argument("--events-file", help="append service events to this JSONL file")
    p.add_argument("--grace", type=float, help="seconds to finish in-flight requests at shutdown (default 10)")
    p.add_argument("--lease", help="stop gracefully once this path no longer exists (overrides the config's)")
    p.add_argument("--instance", help="identity reported by /status and /health (overrides the config's)")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> AdapterConfig:
    """Build the adapter config from a file or from single-node flags."""
    if args.config:
        if args.node:
            raise ConfigError("pass either --config or --node, not both.")
        config = load_config(args.config)
        overrides: dict[str, Any] = {}
        if args.events_file:
            overrides["events_file"] = args.events_file
        if args.grace is not None:
            overrides["shutdown_grace_s"] = args.grace
        if args.lease is not None:
            overrides["lease"] = validate_lease(args.lease)
        if args.instance is not None:
            overrides["instance"] = validate_instance(args.instance)
        return dataclasses.replace(config, **overrides) if overrides else config
    if not args.node or args.port is None:
        raise ConfigError("pass --config FILE, or --node NAME and --port PORT.")
    node: dict[str, Any] = {
        "name": args.node, "host": args.host, "port": args.port, "mode": args.mode, "role": args.role,
        "health_path": args.health_path,
        "policy": {"timeout_ms": args.timeout_ms, "retries": args.retries,
                   "retry_backoff_ms": args.retry_backoff_ms,
                   "circuit_breaker_threshold": args.circuit_breaker_threshold},
    }
    if args.management_host:
        node["management_host"] = args.management_host
    if args.management_port is not None:
        node["management_port"] = args.management_port
    if args.token_env:
        node["token_env"] = args.token_env
    if args.contract:
        node["contract"] = args.contract
    if args.mock:
        node["mock"] = True
    elif args.backend:
        host, sep, port = args.backend.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"--backend must be HOST:PORT, got {args.backend!r}.")
        node["backend"] = {"host": host or "127.0.0.1", "port": int(port)}
    limits = {}
    if args.max_body_bytes is not None:
        limits["max_body_bytes"] = args.max_body_bytes
    if args.max_header_bytes is not None:
        limits["max_header_bytes"] = args.max_header_bytes
    if args.header_timeout_s is not None:
        limits["header_timeout_s"] = args.header_timeout_s
    if limits:
        node["limits"] = limits
    data: dict[str, Any] = {"node": node}
    if args.events_file:
        data["events_file"] = args.events_file
    if args.grace is not None:
        data["shutdown_grace_s"] = args.grace
    if args.lease is not None:
        data["lease"] = args.lease
    if args.instance is not None:
        data["instance"] = args.instance
    return AdapterConfig.from_mapping(data)


async def _serve(config: AdapterConfig) -> None:
    from .host import AdapterHost, tune_gc

    host = AdapterHost(config)
    await host.start()
    tune_gc()
    sys.stdout.write(json.dumps(host.ready_info()) + "\n")
    sys.stdout.flush()
    await host.run_until_signalled()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except (ConfigError, OSError) as exc:
        print(f"baton-adapter: invalid configuration: {exc}", file=sys.stderr)
        return 2
    from .host import install_fast_loop

    install_fast_loop()
    try:
        asyncio.run(_serve(config))
    except ConfigError as exc:
        print(f"baton-adapter: {exc}", file=sys.stderr)
        return 2
    except BindError as exc:
        print(f"baton-adapter: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"baton-adapter: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
