"""The ``protobuf`` handler: a frame-aware proxy of length-prefixed frames (4-byte big-endian length, payload).

It is the TCP proxy (``baton_adapter.tcp_proxy``: routed once per connection, flow control, half-close, idle
timeout, drain on swap) that also follows the frame boundaries of both directions (``baton_adapter.framing``),
without ever holding a frame:

- **Frame limit**: a header declaring a payload longer than ``limits.max_frame_bytes`` (the original's 16 MB)
  closes the connection; no byte of that frame is relayed. A client's (``client_frame_too_large``, a 413
  signal): the frames before it are answered first. A backend's (``backend_frame_too_large``): at once, after
  the whole frames before it, and the client frames it left unanswered fail (502).
- **Per-frame telemetry**: frames each way per target (``streams``), and a signal per answered frame (method
  ``FRAME``, status 200): the n-th frame from the backend answers the n-th from the client, latency from the
  end of the one to the end of the other, so a canary's error rate and latency read as for HTTP. A frame the
  backend sends with none outstanding (a push) is counted, not paired; a connection with more than
  ``MAX_OUTSTANDING`` unanswered frames is a stream, whose frames are counted only. When the backend ends
  the connection (EOF, reset, cut frame) while the client's side is open, each unanswered frame is a failed
  request (502). A connection ending inside a frame counts ``frame_cut`` for that direction.
- **Swap and drain**: a connection keeps its backend until it ends (new connections take the new table), so
  no frame is cut by a swap; ``POST /drain`` waits for connections to old backends to end.
- **Shutdown**: each connection closes at its first quiet point (no frame partly relayed either way and every
  client frame answered). From the shutdown on, the frame the client is sending is relayed whole and nothing
  after it, so a client that keeps pipelining cannot hold the adapter; connections not quiet by the end of
  the grace are cut (``cut_at_shutdown``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from .framing import FrameScanner
from .tcp_proxy import TcpHandler, TcpProxyProtocol

if TYPE_CHECKING:
    from .interfaces import DataNode

__all__ = ["MAX_OUTSTANDING", "ProtobufHandler", "ProtobufProxyProtocol"]

MAX_OUTSTANDING = 1024  # unanswered client frames paired per connection; beyond, the connection is a stream
# after the adapter ends a connection at a boundary (FIN sent), how long it reads and drops what the client still
# sends before closing: closing with unread input would make the kernel reset the connection and drop the last
# frames on their way to the client
LINGER_S = 5.0


class ProtobufProxyProtocol(TcpProxyProtocol):
    """One client connection on a ``protobuf`` node."""

    signal_method = b"FRAME"

    def __init__(self, node: DataNode) -> None:
        super().__init__(node)
        limit = node.limits.max_frame_bytes
        self.up = FrameScanner(limit)  # client -> backend
        self.down = FrameScanner(limit)  # backend -> client
        self.outstanding: deque[tuple[float, int]] = deque()  # unanswered client frames: (ended at, length)
        self.pairing = True
        self.client_stopped = False  # shutting down: nothing more from the client is relayed
        self.quiet_closed = False  # closed by the adapter at a quiet point
        self.adapter_ended = False  # the adapter closed it (quiet point, frame too large)
        self.linger_timer: asyncio.TimerHandle | None = None
        self.backend_failed = False  # the backend ended its side while the client's was open

    # -- relaying -------------------------------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self.client_stopped:
            return
        n = len(data)
        self.bytes_in += n
        stats = self.stats
        stats.bytes_in += n  # type: ignore[union-attr]
        was_at_boundary = self.up.at_boundary
        out, ended, declared = self.up.feed(data)
        if self.closing:  # relay the frame in progress whole, and nothing after it
            if was_at_boundary:
                out, ended = b"", []
            elif ended:
                out, ended = out[:ended[0][0]], ended[:1]
            declared = -1 if was_at_boundary or ended else declared
            if was_at_boundary or ended:
                self._stop_client()
        if ended:  # counted before they are written: an in-process backend (the echo mock) answers within write
            stats.frames_in += len(ended)  # type: ignore[union-attr]
            if self.pairing:
                now = time.perf_counter()
                outstanding = self.outstanding
                outstanding.extend((now, length) for _, length in ended)
                if len(outstanding) > MAX_OUTSTANDING:
                    self.pairing = False
                    outstanding.clear()
        if out:
            self.upstream.write(out)  # type: ignore[union-attr]
        if declared >= 0:
            self._too_large("client", declared)
        elif self.closing:
            self._close_if_quiet()

    def from_backend(self, data: bytes) -> None:
        n = len(data)
        self.bytes_out += n
        stats = self.stats
        stats.bytes_out += n  # type: ignore[union-attr]
        out, ended, declared = self.down.feed(data)
        if out:
            self.transport.write(out)
        if ended:
            stats.frames_out += len(ended)  # type: ignore[union-attr]
            outstanding = self.outstanding
            if outstanding:
                now = time.perf_counter()
                record = self.node.telemetry.record
                name = self.target.name  # type: ignore[union-attr]
                for _, length in ended:
                    if not outstanding:
                        break
                    started, asked = outstanding.popleft()
                    record(name, b"FRAME", b"-", 200, now - started, asked, length, "")
        if declared >= 0:
            self._too_large("backend", declared)
        elif self.client_stopped or self.closing:
            self._close_if_quiet()

    def backend_eof(self) -> bool:
        if not self.eof_pending and not self.adapter_ended:
            self.backend_failed = True
        return super().backend_eof()

    def upstream_lost(self) -> None:
        if self.adapter_ended:
            return  # the client side ends on its own: see _close_at_boundary
        if not self.closed and not self.eof_pending:
            self.backend_failed = True
        super().upstream_lost()

    def eof_received(self) -> bool:
        if self.adapter_ended:
            return False  # the client has read our FIN and closed its side: close
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.linger_timer is not None:
            self.linger_timer.cancel()
            self.linger_timer = None
        super().connection_lost(exc)

    def resume_client(self) -> None:
        if not self.client_stopped:
            super().resume_client()

    def ended_well(self) -> bool:
        return self.quiet_closed or super().ended_well()

    def finish(self) -> None:
        stats = self.stats
        if not self.client_stopped and not self.up.at_boundary:
            stats.error("frame_cut")  # type: ignore[union-attr]
        if not self.down.at_boundary:
            stats.error("frame_cut")  # type: ignore[union-attr]
        if self.backend_failed and self.outstanding:
            now = time.perf_counter()
            record = self.node.telemetry.record
            name = self.target.name  # type: ignore[union-attr]
            for started, asked in self.outstanding:
                record(name, b"FRAME", b"-", 502, now - started, asked, 0, "")
        self.outstanding.clear()

    def record_connection(self, lifetime: float) -> None:
        """Frames are the signals; a connection is one only when no backend could be reached."""
        if self.status >= 500:
            super().record_connection(lifetime)

    # -- ending ---------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful stop: close at the first quiet point; the client's frame in progress is relayed whole."""
        self.closing = True
        if self.closed:
            return
        if self.upstream is None:  # still connecting: nothing was relayed
            self.transport.close()
            return
        if self.up.at_boundary:
            self._stop_client()
        self._close_if_quiet()

    def _stop_client(self) -> None:
        self.client_stopped = True
        self.transport.pause_reading()

    def _close_if_quiet(self) -> None:
        if self.closed or self.adapter_ended or self.transport.is_closing():
            return
        quiet = (self.client_stopped or self.up.at_boundary) and self.down.at_boundary and not self.outstanding
        if quiet:
            self.quiet_closed = True
            self._close_at_boundary()

    def _too_large(self, side: str, declared: int) -> None:
        """A header declared more than the limit: a client's stops its side (the connection closes once the
        frames before it are answered); a backend's ends the connection now (its unanswered frames fail)."""
        node = self.node
        self.stats.error(f"{side}_frame_too_large")  # type: ignore[union-attr]
        node.log.warning("node %s: a %s frame declared %d bytes, over the limit of %d; closing the connection",
                         node.name, side, declared, node.limits.max_frame_bytes)
        if side == "client":
            node.telemetry.record(self.target.name, b"FRAME", b"-", 413, 0.0, 0, 0, "")  # type: ignore[union-attr]
            self._stop_client()
            self._close_if_quiet()
            return
        self.backend_failed = True
        if not self.outstanding:  # a push: nothing else records the failure
            node.telemetry.record(self.target.name, b"FRAME", b"-", 502, 0.0, 0, 0, "")  # type: ignore[union-attr]
        self._close_at_boundary()

    def _close_at_boundary(self) -> None:
        """End the connection after the whole frames relayed so far: close the backend's side, send the client
        a FIN, then drop what it still sends until it closes too (at most ``LINGER_S``)."""
        self.adapter_ended = True
        self.client_stopped = True  # nothing more of the client's is relayed (nor counted as cut)
        upstream = self.upstream
        if upstream is not None and not upstream.is_closing():
            upstream.close()
        transport = self.transport
        if transport.is_closing():
            return
        if self.eof_pending or not transport.can_write_eof():  # nothing more will come, or TLS (no half-close)
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self.linger_timer = self.node.loop.call_later(LINGER_S, transport.abort)


class ProtobufHandler(TcpHandler):
    """The ``protobuf`` mode: ``ProtobufProxyProtocol`` on a plain or TLS port (no ALPN)."""

    protocol = ProtobufProxyProtocol

    def __init__(self, name: str = "protobuf") -> None:
        super().__init__(name)
