"""The conductor's HTTP face (loopback, bearer token): run a flow and stream its steps, the custodian's state,
commands and decisions, the live dashboard (serve, say where, stop), health, shutdown. Handlers only translate;
the conductor does the work."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiohttp import web

from baton.errors import BatonError

__all__ = ["build_app", "ConductorFace"]

log = logging.getLogger(__name__)
NO_CUSTODIAN = {"error": "the custodian is not running (BATON_NO_CUSTODIAN=1)"}


def _ndjson(item: dict[str, Any]) -> bytes:
    return (json.dumps(item, default=str) + "\n").encode()


class ConductorFace(Protocol):
    """What the API needs of the conductor (``baton.cli.conductor.Conductor``)."""

    token: str
    custody: Any
    stopping: asyncio.Event

    def describe(self) -> dict[str, Any]: ...

    def start_run(self, action: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    def abandon(self, action: str, worker: asyncio.Task[Any]) -> None: ...

    async def run_action(self, action: str, params: dict[str, Any], actor: str | None,
                         progress: Callable[[str], None] | None) -> Any: ...

    async def serve_dashboard(self, port: int) -> dict[str, Any]: ...

    async def stop_dashboard(self) -> bool: ...

    def dashboard_info(self) -> dict[str, Any]: ...

    async def collect_taint(self) -> list[Any]: ...


def build_app(conductor: ConductorFace) -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler):  # noqa: ANN001, ANN202
        given = request.headers.get("Authorization", "")
        if not secrets.compare_digest(given, f"Bearer {conductor.token}"):
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    async def health(_: web.Request) -> web.Response:
        return web.json_response(conductor.describe())

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            action, params = str(body["action"]), dict(body.get("params") or {})
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected a JSON body with action and params"}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def progress(line: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, {"progress": line})

        async def execute() -> None:
            try:
                result = await conductor.run_action(action, params, body.get("actor"), progress)
                queue.put_nowait({"result": result})
            except BatonError as exc:
                queue.put_nowait({"error": exc.message, "exit_code": exc.exit_code})
            except asyncio.CancelledError:
                queue.put_nowait({"error": f"the conductor stopped during the {action} run; `baton history` shows "
                                           "how far it got.", "exit_code": 1})
                raise
            except Exception as exc:  # a flow's unexpected failure: one line, the run keeps its traceback
                log.exception("run of %s failed", action)
                queue.put_nowait({"error": f"the {action} flow failed: {type(exc).__name__}: {exc}", "exit_code": 1})

        worker = conductor.start_run(action, execute())
        try:
            while True:
                item = await queue.get()
                await response.write(_ndjson(item))
                if "result" in item or "error" in item:
                    break
        except (ConnectionResetError, asyncio.CancelledError):  # the CLI went away (Ctrl-C)
            conductor.abandon(action, worker)
            raise
        await asyncio.gather(worker, return_exceptions=True)
        await response.write_eof()
        return response

    async def custody_state(_: web.Request) -> web.Response:
        if conductor.custody is None:
            return web.json_response(NO_CUSTODIAN, status=409)
        return web.json_response(conductor.custody.core.snapshot())

    async def custody_command(request: web.Request) -> web.Response:
        if conductor.custody is None:
            return web.json_response(NO_CUSTODIAN, status=409)
        body = await request.json()
        try:
            node = await conductor.custody.command(str(body.get("kind")), str(body.get("node")))
        except BatonError as exc:
            return web.json_response({"error": exc.message}, status=400)
        return web.json_response(node)

    async def custody_watch(request: web.Request) -> web.StreamResponse:
        custody = conductor.custody
        if custody is None:
            return web.json_response(NO_CUSTODIAN, status=409)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        queue = custody.subscribe()
        try:
            await response.write(_ndjson({"snapshot": custody.core.snapshot()}))
            stopped = asyncio.ensure_future(conductor.stopping.wait())
            try:
                while not conductor.stopping.is_set():
                    getting = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getting, stopped}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
                    if getting not in done:
                        getting.cancel()
                        if conductor.stopping.is_set():
                            break
                    decision = getting.result() if getting in done else {"keepalive": time.time()}
                    await response.write(_ndjson(decision))
            finally:
                stopped.cancel()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            custody.unsubscribe(queue)
        return response

    async def dashboard_state(_: web.Request) -> web.Response:
        return web.json_response(conductor.dashboard_info())

    async def dashboard_serve(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            port = int(body.get("port", 0))
        except (ValueError, TypeError, AttributeError):
            return web.json_response({"error": "expected a JSON body with the port to serve the dashboard on"},
                                     status=400)
        if not 0 <= port <= 65535:
            return web.json_response({"error": f"--port expects 0-65535, found {port}."}, status=400)
        try:
            return web.json_response(await conductor.serve_dashboard(port))
        except BatonError as exc:  # the port is taken
            return web.json_response({"error": exc.message}, status=409)

    async def taint_collect(_: web.Request) -> web.Response:
        try:
            found = await conductor.collect_taint()
        except BatonError as exc:
            return web.json_response({"error": exc.message}, status=409)
        return web.json_response({"found": len(found)})

    async def dashboard_stop(_: web.Request) -> web.Response:
        return web.json_response({"stopped": await conductor.stop_dashboard()})

    async def shutdown(_: web.Request) -> web.Response:
        conductor.stopping.set()
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[auth])
    app.router.add_get("/health", health)
    app.router.add_post("/run", run)
    app.router.add_post("/shutdown", shutdown)
    app.router.add_get("/custody", custody_state)
    app.router.add_post("/custody/command", custody_command)
    app.router.add_get("/custody/watch", custody_watch)
    app.router.add_get("/dashboard", dashboard_state)
    app.router.add_post("/dashboard", dashboard_serve)
    app.router.add_delete("/dashboard", dashboard_stop)
    app.router.add_post("/taint/collect", taint_collect)
    return app
