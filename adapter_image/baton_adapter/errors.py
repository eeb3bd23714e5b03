"""The adapter's error tree: one root, a few leaves; every message is one sentence (expected, found, what to do)."""

from __future__ import annotations

__all__ = ["AdapterError", "BindError", "ConfigError", "RoutingLocked", "TlsError", "TlsStateError"]


class AdapterError(Exception):
    """Root of every error the adapter raises on purpose."""


class ConfigError(AdapterError, ValueError):
    """The adapter configuration (or a routing/backend change) is invalid."""


class RoutingLocked(ConfigError):
    """The node's routing is locked; changes are refused (HTTP 423)."""


class TlsError(ConfigError):
    """A certificate, key or CA bundle is unusable (not PEM, key mismatch, expired...): HTTP 400, or exit 2 at start."""


class TlsStateError(AdapterError):
    """A TLS rotation step does not fit the listener's state (nothing staged, no TLS on the port): HTTP 409."""


class BindError(AdapterError, OSError):
    """A node's data or management port could not be bound (the CLI exits 1)."""

    def __init__(self, node: str, kind: str, host: str, port: int, reason: str) -> None:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(f"node {node}: cannot bind its {kind} port {address}: {reason}.")
        self.node = node
        self.kind = kind
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])
