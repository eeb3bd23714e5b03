"""Baton's data plane: one adapter per circuit node (reverse proxy + management API).

The public names below are imported lazily, so ``import baton_adapter`` (or its ``mock`` subpackage) stays
cheap and does not pull in aiohttp until a node is actually built.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AdapterConfig": "config",
    "Backend": "config",
    "AdapterError": "errors",
    "ConfigError": "errors",
    "Limits": "config",
    "NodeConfig": "config",
    "Policy": "config",
    "load_config": "config",
    "RoutingError": "routing",
    "RoutingTable": "routing",
    "Target": "routing",
    "Node": "node",
    "RoutingLocked": "errors",
    "BindError": "errors",
    "AdapterHost": "host",
    "EventLog": "events",
    "register_protocol": "protocols",
    "ProtocolHandler": "protocols",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'baton_adapter' has no attribute {name!r}")
    attr = "register" if name == "register_protocol" else name
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value
