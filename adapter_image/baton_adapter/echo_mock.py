"""The mock of raw stream modes (``tcp``, ``protobuf``): an echo backend inside the adapter.

A connection routed to a mocked target is spliced to an ``EchoTransport`` instead of a socket: what the
client sends comes back to it (for ``protobuf``, frame by frame, since the frame-aware relay writes whole
frames), an EOF from the client is answered with an EOF, and every counter, limit and signal of a real
backend applies (bytes each way, frames, idle timeout, drain). A raw mode has no contract to answer from, so
an echo is what lets a client's round trip work while the real service is not slotted yet.

The transport stands where the proxy keeps its backend's transport. It hands bytes back at once, inside the
proxy's write (the relay never re-enters the client side from there, and an echo deferred to the next loop
iteration escapes uvloop's write-buffer check: the client's buffer then grew to megabytes), and passes
backpressure through: when the client stops reading, the echo stops reading the client. EOF and close are
deferred, so they follow the bytes written before them.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["EchoTransport"]


class EchoTransport:
    """A backend transport that echoes: ``write`` comes back through ``client.from_backend``."""

    __slots__ = ("client", "loop", "closing", "eof")

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        # client: the tcp_proxy.TcpProxyProtocol (not imported: tcp_proxy imports this module)
        self.client = client
        self.loop = loop
        self.closing = False
        self.eof = False

    def write(self, data: bytes) -> None:
        client = self.client
        if data and not self.closing and not client.closed:
            client.last_io = client.node.loop.time()
            client.from_backend(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self.eof:
            self.eof = True
            self.loop.call_soon(self._eof)

    def _eof(self) -> None:
        client = self.client
        if not self.closing and not client.closed and not client.backend_eof():
            self.close()

    def pause_reading(self) -> None:
        """The client reads no more: stop reading what it sends (it is what the echo would send back)."""
        client = self.client
        if not client.closed and not client.transport.is_closing():
            client.transport.pause_reading()

    def resume_reading(self) -> None:
        self.client.resume_client()

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.client.upstream_lost)

    def abort(self) -> None:
        self.close()
