"""Registry of data-plane protocol handlers, keyed by node mode.

Built in: ``http`` and ``soap`` (the HTTP/1.1 proxy); ``tcp``, ``grpc`` and ``protobuf`` as a byte-level
TCP pass-through (``baton_adapter.tcp_proxy``) until dedicated handlers replace them.

A handler starts a node's data-port server. Register one without editing core files::

    from baton_adapter.protocols import register

    class GrpcHandler:
        name = "grpc"
        async def serve(self, node, host, port): ...   # returns an asyncio.AbstractServer

    register(GrpcHandler(), replace=True)

A node whose mode has no handler fails to start with a sentence listing the registered modes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from .config import ConfigError

if TYPE_CHECKING:
    from .node import Node

__all__ = ["ProtocolHandler", "get", "register", "registered"]


class ProtocolHandler(Protocol):
    name: str

    async def serve(self, node: Node, host: str, port: int) -> asyncio.AbstractServer:
        """Start listening for ``node``'s data plane and return the server."""
        ...


class HttpHandler:
    """HTTP/1.1 reverse proxy (``baton_adapter.server``); also serves SOAP, which is HTTP."""

    def __init__(self, name: str = "http") -> None:
        self.name = name

    async def serve(self, node: Node, host: str, port: int) -> asyncio.AbstractServer:
        from .server import HttpProxyProtocol

        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: HttpProxyProtocol(node), host, port, backlog=1024,
                                        reuse_address=True)


_REGISTRY: dict[str, ProtocolHandler] = {}


def register(handler: ProtocolHandler, *, replace: bool = False) -> None:
    """Make ``handler`` serve nodes whose mode is ``handler.name``."""
    if handler.name in _REGISTRY and not replace:
        raise ConfigError(f"a protocol handler for {handler.name!r} is already registered; pass replace=True.")
    _REGISTRY[handler.name] = handler


def get(mode: str) -> ProtocolHandler:
    try:
        return _REGISTRY[mode]
    except KeyError:
        raise ConfigError(
            f"no protocol handler is registered for mode {mode!r}; registered: {sorted(_REGISTRY)}."
        ) from None


def registered() -> list[str]:
    return sorted(_REGISTRY)


def _register_builtins() -> None:
    from .tcp_proxy import TcpHandler

    register(HttpHandler("http"))
    register(HttpHandler("soap"))
    for mode in ("tcp", "grpc", "protobuf"):  # byte pass-through until dedicated handlers exist
        register(TcpHandler(mode))


_register_builtins()
