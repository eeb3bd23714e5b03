"""Registry of data-plane protocol handlers, keyed by node mode.

Built in: ``http`` (the HTTP/1.1 proxy, ``baton_adapter.server``); ``soap`` (the same proxy, routing on the
SOAP action and counting ``soap:Fault`` answers as errors, ``baton_adapter.soap_proxy``); ``tcp`` as a byte-level TCP
pass-through (``baton_adapter.tcp_proxy``); ``grpc`` as an HTTP/2 proxy routing each call
(``baton_adapter.grpc_proxy``); ``protobuf`` as a frame-aware proxy of 4-byte
big-endian length-prefixed frames (``baton_adapter.protobuf_proxy``).

A handler starts a node's data-port server; it receives the node as an ``interfaces.DataNode`` (inside the
package a handler must not import ``node.py``: the registry sits below it)::

    class ShoutHandler:
        name = "shout"
        async def serve(self, node, host, port): ...   # returns an asyncio.AbstractServer

Two ways to add one without editing the adapter:

- **Another distribution** declares an entry point in the group ``baton.protocols``, named by the mode, whose
  object is a handler class or a factory (called with no arguments, it returns the handler)::

      [project.entry-points."baton.protocols"]
      shout = "baton_shout:ShoutHandler"

  Entry points are found once, lazily (the first time a node asks for a mode that is not registered), and
  each is loaded only when a node asks for its mode, at most once. A built-in (or an explicitly registered)
  mode always wins over an entry point of the same name, and the first distribution found wins over another
  offering the same mode (both logged). An entry point that cannot be loaded is logged in one sentence naming
  its distribution, and a node of its mode fails to start with that sentence; other modes are untouched.
- **In process**: ``baton_adapter.protocols.register(handler, replace=True)``.

A node whose mode has no handler fails to start with a sentence listing the registered modes.

TLS: a handler that can serve TLS says so with ``tls_alpn``, the ALPN protocol ids it speaks (possibly
empty), and serves through ``baton_adapter.listener.serve_node(factory, node, host, port)``, which serves TLS
from ``node.tls`` when it is set (so that rotations reach it). A node with a ``tls`` section whose handler declares no
``tls_alpn`` fails to start rather than serve plain TCP.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigError
from .grpc_proxy import GrpcHandler
from .protobuf_proxy import ProtobufHandler
from .server import HttpHandler
from .soap_proxy import SoapHandler
from .tcp_proxy import TcpHandler

if TYPE_CHECKING:
    from .interfaces import DataNode

__all__ = ["ENTRY_POINT_GROUP", "ProtocolHandler", "available", "broken", "get", "register", "registered"]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "baton.protocols"


class ProtocolHandler(Protocol):
    name: str
    # optional: tls_alpn: tuple[str, ...], the ALPN ids offered when the node serves TLS (absent: no TLS)

    async def serve(self, node: DataNode, host: str, port: int) -> asyncio.AbstractServer:
        """Start listening for ``node``'s data plane and return the server."""
        ...


_REGISTRY: dict[str, ProtocolHandler] = {}
_BROKEN: dict[str, str] = {}  # mode -> the sentence saying why its entry point could not be loaded
_OFFERED: dict[str, EntryPoint] | None = None  # the entry points found (read once, at the first unknown mode)


def register(handler: ProtocolHandler, *, replace: bool = False) -> None:
    """Make ``handler`` serve nodes whose mode is ``handler.name``."""
    if handler.name in _REGISTRY and not replace:
        raise ConfigError(f"a protocol handler for {handler.name!r} is already registered; pass replace=True.")
    _REGISTRY[handler.name] = handler
    _BROKEN.pop(handler.name, None)


def get(mode: str) -> ProtocolHandler:
    """The handler of ``mode``; a mode with none registered is looked for among the ``baton.protocols`` entry
    points (loaded at most once per mode)."""
    handler = _REGISTRY.get(mode)
    if handler is not None:
        return handler
    if mode not in _BROKEN:
        ep = _offered().pop(mode, None)
        if ep is not None:
            handler = _load(ep)
            if handler is not None:
                return handler
    if mode in _BROKEN:
        raise ConfigError(_BROKEN[mode])
    raise ConfigError(f"no protocol handler is registered for mode {mode!r}; available: {available()} (a "
                      f"distribution can add one through the {ENTRY_POINT_GROUP!r} entry-point group).")


def registered() -> list[str]:
    """The modes that have a handler now (entry points not loaded yet are not listed)."""
    return sorted(_REGISTRY)


def available() -> list[str]:
    """The modes that have a handler now or an entry point that has not been tried yet."""
    return sorted({*_REGISTRY, *_offered()})


def broken() -> dict[str, str]:
    """Modes whose entry point could not be loaded, each with the sentence saying why."""
    return dict(_BROKEN)


def _offered() -> dict[str, EntryPoint]:
    """The ``baton.protocols`` entry points not tried yet, by mode (read once; one per mode: the first found)."""
    global _OFFERED
    if _OFFERED is None:
        _OFFERED = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _REGISTRY:
                log.warning("protocol handler %r from distribution %s is ignored: mode %r already has a handler.",
                            ep.name, _distribution(ep), ep.name)
            elif ep.name in _OFFERED:
                log.warning("protocol handler %r from distribution %s is ignored: distribution %s offers it too, "
                            "and is used.", ep.name, _distribution(ep), _distribution(_OFFERED[ep.name]))
            else:
                _OFFERED[ep.name] = ep
    return _OFFERED


def _load(ep: EntryPoint) -> ProtocolHandler | None:
    """Register ``ep``'s handler; on failure record (and log) the sentence saying why, and return None."""
    dist = _distribution(ep)
    try:
        handler = _handler_from(ep)
    except Exception as exc:  # a broken plugin must not take the adapter (or the other modes) down
        reason = f"{type(exc).__name__}: {exc}".rstrip(".")
        _BROKEN[ep.name] = (f"the protocol handler for mode {ep.name!r} from distribution {dist} ({ep.value}) "
                            f"could not be loaded ({reason}); fix or uninstall that distribution.")
        log.error("%s", _BROKEN[ep.name])
        return None
    _REGISTRY[ep.name] = handler
    log.info("protocol handler %r loaded from distribution %s (%s)", ep.name, dist, ep.value)
    return handler


def _handler_from(ep: EntryPoint) -> ProtocolHandler:
    """Load ``ep``'s object, call it (a class or factory), and check that the result is a handler of its mode."""
    factory: Any = ep.load()
    if not callable(factory):
        raise TypeError(f"{ep.value} is a {type(factory).__name__}, expected a handler class or factory")
    handler = factory()
    name = getattr(handler, "name", None)
    if name != ep.name:
        raise TypeError(f"it made a handler named {name!r}, expected {ep.name!r} (the entry point's name)")
    if not callable(getattr(handler, "serve", None)):
        raise TypeError(f"it made a {type(handler).__name__} without a serve(node, host, port) method")
    return handler  # type: ignore[no-any-return]


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    if dist is None:
        return "(unknown)"
    return f"{dist.metadata['Name'] or '(unnamed)'} {dist.version}"


def _register_builtins() -> None:
    register(HttpHandler("http"))
    register(SoapHandler())
    register(TcpHandler("tcp"))
    register(GrpcHandler())
    register(ProtobufHandler())


_register_builtins()
