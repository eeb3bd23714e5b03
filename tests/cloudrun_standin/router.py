"""A service's URL: a proxy on 127.0.0.1 (and on the stand-in network's gateway, for containers) that splits
requests across ready revisions by traffic percentage and checks the invoker policy.

Weights are applied by smooth weighted round robin (deterministic: 10% is exactly one request in ten). A
revision taken out of the split keeps serving the requests it already has; :meth:`Router.drained` waits for
them before its containers go.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, web

__all__ = ["Router", "Backend"]

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host",
       "content-length"}


@dataclass
class Backend:
    revision: str
    port: int
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class Router:
    def __init__(self, gateway: str, allowed: Callable[[str], bool]) -> None:
        self.gateway = gateway
        self.allowed = allowed  # member ("allUsers" or "serviceAccount:x") -> may invoke
        self.backends: dict[str, Backend] = {}
        self.weights: list[tuple[str, int]] = []
        self._current: dict[str, int] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        self._session = ClientSession(timeout=ClientTimeout(total=60, connect=5))
        for _ in range(20):  # the same port on loopback and on the gateway
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            try:
                for host in ("127.0.0.1", self.gateway):
                    await web.TCPSite(self._runner, host, port).start()
                self.port = port
                return
            except OSError:
                for site in list(self._runner.sites):
                    await site.stop()
        raise OSError("no port free on both 127.0.0.1 and the stand-in gateway")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def set_split(self, split: list[tuple[str, int, int]]) -> None:
        """(revision, host port, percent) for every revision taking traffic."""
        for revision, port, _ in split:
            if revision not in self.backends:
                self.backends[revision] = Backend(revision, port)
        self.weights = [(r, p) for r, _, p in split if p > 0]
        self._current = {r: self._current.get(r, 0) for r, _ in self.weights}

    async def drained(self, revision: str) -> None:
        """Wait until a revision out of the split has finished its requests, then forget it."""
        backend = self.backends.get(revision)
        if backend is None or any(r == revision for r, _ in self.weights):
            return
        if backend.in_flight:
            backend.idle.clear()
            await backend.idle.wait()
        self.backends.pop(revision, None)

    def _pick(self) -> Backend | None:
        if not self.weights:
            return None
        total = sum(w for _, w in self.weights)
        for revision, weight in self.weights:
            self._current[revision] += weight
        chosen = max(self.weights, key=lambda rw: self._current[rw[0]])[0]
        self._current[chosen] -= total
        return self.backends[chosen]

    def _caller(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        # the stand-in's identity tokens: "Bearer serviceAccount:EMAIL" (real Cloud Run verifies a signed token)
        return auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.allowed("allUsers") and not (self._caller(request) and self.allowed(self._caller(request))):
            return web.Response(status=403, text="Error: Forbidden. Your client does not have permission to get "
                                                  "URL from this server.\n")
        backend = self._pick()
        if backend is None:
            return web.Response(status=503, text="Error: Service Unavailable. No revision is ready.\n")
        backend.in_flight += 1
        try:
            return await self._forward(request, backend)
        finally:
            backend.in_flight -= 1
            if backend.in_flight == 0:
                backend.idle.set()

    async def _forward(self, request: web.Request, backend: Backend) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP and k.lower() != "authorization"}
        url = f"http://127.0.0.1:{backend.port}{request.rel_url}"
        data = request.content if request.body_exists else None
        async with self._session.request(request.method, url, headers=headers, data=data,
                                         allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP})
            response.headers["X-Standin-Revision"] = backend.revision
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(65536):
                await response.write(chunk)
            await response.write_eof()
            return response
