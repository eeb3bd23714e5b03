"""gRPC calls and stream connections no backend took: routed again, or held until the node's routing changes
(none lost to a heal). HTTP requests do the same in ``baton_adapter.exchange``, with the same limits and delays
(this module's ``MAX_REROUTES``, ``MAX_HELD``, ``hold_delay``).

A gRPC call that never reached a backend (its backend's connection could not be made, or closed or said
GOAWAY before the call was sent on it) carries nothing a backend could have acted on, so the proxy routes it
again from the current table, leaving out the backends that failed it (at most ``MAX_REROUTES`` times); a
``tcp``/``protobuf`` connection whose connect failed is routed again the same way (``tcp_proxy``). When no
backend is left, it *holds*: with ``limits.hold_s`` > 0 (Baton sets 15 s) it waits for the node's routing to
change (the custodian's heal or a swap puts a backend in, and ``Node.set_routing`` lets every held one go at
once), trying the same table again every 0.1-1 s meanwhile; once ``hold_s`` has passed it fails
(``UNAVAILABLE``, or the connection is closed) as it would have at once. A call's bytes wait in the call,
bounded by the stream's window (nothing is acknowledged to the client until it is sent on); a connection's
reading stays paused. A call its backend had received is never sent twice: a gRPC method says nothing of
being safe to repeat.

``HeldCall`` stands as a held call's upstream, so the gRPC proxy's own paths (the client's data, end and
cancellation, the call's end) need no case of their own; ``RoutingWaiter`` is what a held connection awaits.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["HOLD_RETRY_MAX_S", "HOLD_RETRY_S", "MAX_HELD", "MAX_REROUTES", "NOWHERE", "HeldCall", "RoutingWaiter",
           "hold_delay"]

MAX_REROUTES = 3  # routings again of one call nothing was sent for, before it holds
HOLD_RETRY_S = 0.1  # a held call tries its table again after 0.1 s, 0.2 s... (and whenever the table changes)
HOLD_RETRY_MAX_S = 1.0
MAX_HELD = 10_000  # requests and calls of one node holding at once; beyond, they fail at once


def hold_delay(holds: int, left_s: float) -> float:
    """How long the ``holds``-th hold of a call waits before trying its table again (``left_s``: of its hold)."""
    return min(HOLD_RETRY_S * holds, HOLD_RETRY_MAX_S, left_s)


class HeldCall:
    """The upstream of a call while it holds: the client's bytes stay in the call, a cancellation or the call's
    end lets it go, and the node's next routing table (or the retry timer) sends it on through the proxy."""

    __slots__ = ("proxy", "call", "timer")

    calls: dict[int, Any] = {}  # never a backend connection: nothing for the proxy to retire
    waiting: tuple[Any, ...] = ()

    def __init__(self, proxy: Any, call: Any, delay_s: float) -> None:
        self.proxy = proxy  # the GrpcProxyProtocol the call belongs to
        self.call = call
        node = proxy.node
        node.held.add(self)
        self.timer = node.loop.call_later(delay_s, self._retry)

    # -- as the call's upstream -------------------------------------------------------------------------------

    def pump_up(self, call: Any) -> None:
        """The client sent more (or ended its side): it waits in ``call.up`` until a backend takes the call."""

    def acknowledge(self, call: Any, n: int) -> None:
        """Nothing of a held call reached the client."""

    def cancel(self, call: Any, error_code: int = 0) -> None:
        self._let_go()

    def release(self, call: Any) -> None:
        self._let_go()

    # -- going on ---------------------------------------------------------------------------------------------

    def routing_changed(self) -> None:
        """The node's routing table was replaced (the node has already let this call go from ``held``)."""
        self._cancel_timer()
        self.proxy.retry_held(self.call)

    def _retry(self) -> None:
        self.timer = None
        self.proxy.node.held.discard(self)
        self.proxy.retry_held(self.call)

    def _let_go(self) -> None:
        self._cancel_timer()
        self.proxy.node.held.discard(self)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Nowhere:
    """The upstream of a call that fails before any backend took it: nothing to send to, release or reset."""

    __slots__ = ()

    def pump_up(self, call: Any) -> None:
        pass

    def acknowledge(self, call: Any, n: int) -> None:
        pass

    def cancel(self, call: Any, error_code: int = 0) -> None:
        pass

    def release(self, call: Any) -> None:
        pass


NOWHERE = _Nowhere()


class RoutingWaiter:
    """What a held stream connection (``tcp_proxy``) awaits: the node's next routing table, or its retry delay."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def routing_changed(self) -> None:
        self.event.set()

    async def wait(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.event.wait(), timeout_s)
        except TimeoutError:
            pass
