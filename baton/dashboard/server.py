"""The live dashboard as the conductor serves it: the web app on a loopback port, its token, and one collection
at a time shared by every open page (a page polls every second; readings closer than ``MIN_INTERVAL_S`` are
answered from the last one, so two tabs do not double the load on the adapters)."""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import socket
import time
from typing import Any

from aiohttp import web

from baton.dashboard.collector import Collector, CustodySource
from baton.dashboard.web import build_app
from baton.errors import BatonError

__all__ = ["DashboardServer", "DEFAULT_PORT", "MIN_INTERVAL_S", "dashboard_url"]

log = logging.getLogger(__name__)
DEFAULT_PORT = 9900
MIN_INTERVAL_S = 0.9
HOST = "127.0.0.1"


def dashboard_url(port: int, token: str) -> str:
    return f"http://{HOST}:{port}/?token={token}"


def _bind(port: int) -> socket.socket:
    """A listening loopback socket on ``port``, or one sentence naming the port and ``--port``."""
    try:
        return socket.create_server((HOST, port), reuse_port=False)
    except OSError as exc:
        why = "is taken by another process" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        raise BatonError(f"port {port} on {HOST} {why}, so the dashboard cannot listen there; choose another with "
                         "`baton dashboard --serve --port N`.") from None


class DashboardServer:
    def __init__(self, project: Any, *, api_url: str | None, custody: CustodySource | None = None,
                 token: str | None = None) -> None:
        self.collector = Collector(project, api_url=api_url, custody=custody)
        self.token = token or secrets.token_urlsafe(32)
        self.port = 0
        self._socket: socket.socket | None = None
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        return dashboard_url(self.port, self.token)

    def describe(self) -> dict[str, Any]:
        return {"serving": True, "url": self.url, "port": self.port}

    async def start(self, port: int = DEFAULT_PORT, sock: socket.socket | None = None) -> None:
        """Listen on 127.0.0.1:``port`` (or on ``sock``, handed over by the conductor this one replaced)."""
        self._socket = sock or _bind(port)
        self.port = self._socket.getsockname()[1]
        self._runner = web.AppRunner(build_app(self.snapshot, self.token, self.port), access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()
        log.info("the dashboard listens on http://%s:%d/", HOST, self.port)

    async def snapshot(self) -> dict[str, Any]:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < MIN_INTERVAL_S:
                return self._last[1]
            dashboard = (await self.collector.collect()).to_json()
            self._last = (time.monotonic(), dashboard)
            return dashboard

    def handover(self) -> dict[str, Any]:
        """What a re-executed conductor needs to go on serving the same URL (the socket is left open)."""
        assert self._socket is not None
        self._socket.set_inheritable(True)
        return {"sock_fd": self._socket.fileno(), "token": self.token}

    async def stop(self) -> None:
        await self.collector.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
