"""A TLS listening port that hands each connection the certificate current when it was accepted.

``asyncio`` (and uvloop) servers bind one ``ssl.SSLContext`` for their life; OpenSSL then keeps the session
cache and ticket keys of that first context even when a callback swaps the certificate, so a client could
resume a pre-rotation session and skip the new certificate and CA bundle. This listener instead accepts
connections itself and starts TLS on each with ``loop.connect_accepted_socket(ssl=<the store's current
context>)``: every certificate generation has its own context, sessions and tickets, so after a commit

- a new connection shakes hands with the new context (an old session or ticket is unknown to it, so the
  client does a full handshake and sees the new certificate);
- an established connection keeps its context and carries on untouched.

Both public loop APIs (``sock_accept``, ``connect_accepted_socket``) behave the same on uvloop and asyncio.
Handshakes run concurrently, one tracked task each, bounded by ``handshake_timeout_s``; each ends as a
success or a failure counted on the certificate generation that served it (``Certificate.handshakes``; a
failure is any connection that did not complete a handshake, TCP-only probes and port scans included).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .tls import CertificateStore, HandshakeStats

__all__ = ["TlsListener", "serve_tls"]

log = logging.getLogger(__name__)
# accept() errors that mean "out of resources for now": wait, then accept again (as asyncio's own servers do)
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_RETRY_S = 1.0


class TlsListener(asyncio.AbstractServer):
    """Listening sockets with one accept task each; an ``asyncio.AbstractServer`` for the node."""

    def __init__(self, sockets: list[socket.socket], factory: Callable[[], asyncio.BaseProtocol],
                 store: CertificateStore, handshake_timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._sockets = sockets
        self._factory = factory
        self._store = store
        self._timeout = handshake_timeout_s
        self._accepting: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()
        self._serving = False

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._serving or not self._sockets:
            return
        self._serving = True
        self._accepting = [self._loop.create_task(self._accept(sock)) for sock in self._sockets]

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.gather(*self._accepting)

    def close(self) -> None:
        """Stop accepting (each socket closes once its accept task has let go of it) and drop handshakes."""
        self._serving = False
        for task in (*self._accepting, *self._handshakes):
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._accepting, *self._handshakes, return_exceptions=True)

    async def _accept(self, sock: socket.socket) -> None:
        loop = self._loop
        try:
            while True:
                try:
                    conn, _ = await loop.sock_accept(sock)
                except OSError as exc:
                    if exc.errno in _RESOURCE_ERRORS:
                        log.error("accept on %s failed (%s); retrying in %.0f s", sock.getsockname(), exc,
                                  ACCEPT_RETRY_S)
                        await asyncio.sleep(ACCEPT_RETRY_S)
                    continue  # ECONNABORTED and the like: that client is gone, the next one is not
                # the certificate is chosen here, at accept: a commit from now on concerns later connections
                generation = self._store.current
                task = loop.create_task(self._handshake(conn, generation.context, generation.handshakes))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)
        finally:
            sock.close()  # the accept was cancelled and let go of the socket: it closes without a race

    async def _handshake(self, conn: socket.socket, context: Any, stats: HandshakeStats) -> None:
        # the loop owns ``conn`` from here on: it closes it when the handshake fails (never closed here, as
        # uvloop may already have given its descriptor back and another connection may hold that number)
        try:
            await self._loop.connect_accepted_socket(self._factory, conn, ssl=context,
                                                     ssl_handshake_timeout=self._timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is the client's handshake failing
            stats.failure(exc)
            return
        stats.succeeded()


async def serve_tls(factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, store: CertificateStore,
                    handshake_timeout_s: float, backlog: int = 1024) -> TlsListener:
    """Bind ``host:port`` (every address ``host`` resolves to, as ``loop.create_server`` does) and serve TLS.

    Raises ``OSError`` when an address cannot be bound; nothing is left bound then.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # "" binds every interface, as create_server does
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    listener = TlsListener(sockets, factory, store, handshake_timeout_s)
    await listener.start_serving()
    return listener


async def serve_node(factory: Callable[[], asyncio.BaseProtocol], node: Any, host: str,
                     port: int) -> asyncio.AbstractServer:
    """A protocol handler's data port: plain TCP, or TLS with the node's rotating certificate store when
    ``node.tls`` is set (a handshake bounded by ``limits.header_timeout_s``)."""
    tls = node.tls
    if tls is None:
        return await asyncio.get_running_loop().create_server(factory, host, port, backlog=1024, reuse_address=True)
    return await serve_tls(factory, host, port, tls, node.limits.header_timeout_s)
