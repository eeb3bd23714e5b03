"""Registry of data-plane protocol handlers, keyed by node mode.

Built in: ``http`` and ``soap`` (the HTTP/1.1 proxy); ``tcp`` and ``grpc`` as a byte-level TCP pass-through
(``baton_adapter.tcp_proxy``); ``protobuf`` as a frame-aware proxy (``baton_adapter.protobuf_proxy``).

A handler starts a node's data-port server; it receives the node as an ``interfaces.DataNode`` (inside the
package a handler must not import ``node.py``: the registry sits below it). Register one without editing
core files::

    from baton_adapter.protocols import register

    class GrpcHandler:
        name = "grpc"
        async def serve(self, node, host, port): ...   # returns an asyncio.AbstractServer

    register(GrpcHandler(), replace=True)

A node whose mode has no handler fails to start with a sentence listing the registered modes.

TLS: a handler that can serve TLS says so with ``tls_alpn``, the ALPN protocol ids it speaks (possibly
empty), and serves through ``baton_adapter.listener.serve_tls(factory, host, port, node.tls, timeout)`` when
``node.tls`` is set (so that rotations reach it). A node with a ``tls`` section whose handler declares no
``tls_alpn`` fails to start rather than serve plain TCP.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from .errors import ConfigError
from .protobuf_proxy import ProtobufHandler
from .server import HttpHandler
from .tcp_proxy import TcpHandler

if TYPE_CHECKING:
    from .interfaces import DataNode

__all__ = ["ProtocolHandler", "get", "register", "registered"]


class ProtocolHandler(Protocol):
    name: str
    # optional: tls_alpn: tuple[str, ...], the ALPN ids offered when the node serves TLS (absent: no TLS)

    async def serve(self, node: DataNode, host: str, port: int) -> asyncio.AbstractServer:
        """Start listening for ``node``'s data plane and return the server."""
        ...


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
    register(HttpHandler("http"))
    register(HttpHandler("soap"))
    for mode in ("tcp", "grpc"):  # grpc: byte pass-through until a per-stream HTTP/2 handler exists
        register(TcpHandler(mode))
    register(ProtobufHandler())


_register_builtins()
