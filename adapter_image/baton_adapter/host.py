"""The adapter process: hosts one node (container mode) or many (local mode) on one event loop.

A housekeeping tick (every second) gives each node its upkeep and, when the config names a lease, checks it
(``baton_adapter.lease``): once the lease path is gone the host stops exactly as on SIGTERM.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

from .config import AdapterConfig
from .errors import ConfigError
from .events import EventLog
from .lease import Lease, check_interval
from .node import Node

__all__ = ["AdapterHost", "install_fast_loop", "tune_gc"]

log = logging.getLogger(__name__)
HOUSEKEEPING_S = 1.0


def tune_gc() -> None:
    """Process-wide GC settings for a proxy process, applied once everything has started.

    The per-request objects die by reference counting (no cycles), so young-generation collections only
    rescan live objects: freeze what start-up built and collect the young generation less often.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def install_fast_loop() -> bool:
    """Use uvloop's event loop policy when uvloop is installed; return whether it is used."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class AdapterHost:
    """Starts, runs and stops the nodes of one adapter config."""

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.events = EventLog(config.events_file)
        self.nodes = {n.name: Node(n, self.events, config.instance) for n in config.nodes}
        self.lease: Lease | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Bind every node; on any failure stop those already started and re-raise.

        Raises ``ConfigError`` before binding anything when the lease is already gone, and ``BindError`` (from
        the node) when a port cannot be bound.
        """
        loop = asyncio.get_running_loop()
        if self.config.lease is not None:
            lease = Lease(self.config.lease, check_interval(), loop.time())
            if lease.gone():
                raise ConfigError(f"lease {lease.path} does not exist; create it before starting the adapter.")
            self.lease = lease
        results = await asyncio.gather(*(n.start() for n in self.nodes.values()), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(n.stop(0) for n in self.nodes.values() if n.server is not None))
            raise errors[0]
        self._housekeeping = loop.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            for node in self.nodes.values():
                try:
                    node.housekeeping(HOUSEKEEPING_S)
                except Exception:  # upkeep must never kill the loop
                    log.exception("housekeeping of node %s failed", node.name)
            lease = self.lease
            if lease is not None and lease.expired(loop.time()):
                log.warning("lease %s is gone: stopping", lease.path)
                self.lease = None
                self.request_stop()

    def request_stop(self) -> None:
        """Make ``run_until_signalled`` stop gracefully, as SIGTERM does."""
        self._stop_requested.set()

    def ready_info(self) -> dict[str, Any]:
        return {
            "event": "ready",
            "nodes": [
                {"name": n.name, "port": n.port, "management_port": n.management_port, "mode": n.config.mode}
                for n in self.nodes.values()
            ],
        }

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop: finish in-flight requests within ``grace_s`` (default from the config)."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
            self._housekeeping = None
        await asyncio.gather(*(n.stop(grace) for n in self.nodes.values()))
        self._stopped.set()

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT (or ``request_stop``: the lease is gone), then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = self._stop_requested
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            log.info("stopping adapter (grace %.1fs)", self.config.shutdown_grace_s)
            await self.stop()
