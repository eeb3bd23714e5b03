"""The adapter process: hosts one node (container mode) or many (local mode) on one event loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

from .config import AdapterConfig
from .events import EventLog
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
        self.nodes = {n.name: Node(n, self.events) for n in config.nodes}
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Bind every node; on any failure stop those already started and re-raise."""
        results = await asyncio.gather(*(n.start() for n in self.nodes.values()), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(n.stop(0) for n in self.nodes.values() if n.server is not None))
            raise errors[0]
        self._housekeeping = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            for node in self.nodes.values():
                try:
                    node.housekeeping(HOUSEKEEPING_S)
                except Exception:  # upkeep must never kill the loop
                    log.exception("housekeeping of node %s failed", node.name)

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
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            log.info("stopping adapter (grace %.1fs)", self.config.shutdown_grace_s)
            await self.stop()
