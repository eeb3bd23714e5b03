"""The conductor (``baton serve``): the project's long-running process that runs
requested flows warm, in-process, one at a time, and streams progress and the
result back to the CLI as JSON lines. (The event core for self-healing joins
it in a later issue.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from baton.conductor_client import CONDUCTOR_FILE, ConductorClient, code_stamp
from baton.config.document import atomic_write_text
from baton.errors import BatonError
from baton.processes import ProcessRecord, process_start_ticks, spawn

__all__ = ["serve", "ensure_conductor", "stop_conductor"]

log = logging.getLogger(__name__)
START_TIMEOUT_S = float(os.environ.get("BATON_CONDUCTOR_START_TIMEOUT_S", "90"))


async def serve(project: Any, host: str = "127.0.0.1", port: int = 0) -> None:
    """Run the conductor until SIGTERM/SIGINT or POST /shutdown."""
    from aiohttp import web

    from baton.cli.flowrun import (
        SELF_LOCKING,
        ProgressRouter,
        apply_prefect_environment,
        interactive_settings,
        run_in_loop,
    )

    api_url = apply_prefect_environment(project)
    import prefect  # noqa: F401 - warm the import once, here, not per run

    from baton.history import HistoryClient, mark_abandoned_runs

    def mark_abandoned() -> None:
        # Under the project lock no flow of this project is running: any run still 'Running' was cut short.
        with project.lock(timeout=10):
            crashed = mark_abandoned_runs(HistoryClient(api_url), project_tag=project.run_tag)
        if crashed:
            log.warning("marked runs cut short by a dead process as Crashed: %s", ", ".join(crashed))

    try:
        await asyncio.to_thread(mark_abandoned)
    except BatonError as exc:
        log.warning("could not check for abandoned runs: %s", exc)

    token = secrets.token_urlsafe(32)
    code = code_stamp()
    run_lock = asyncio.Lock()
    stopping = asyncio.Event()
    router = ProgressRouter.install()
    _log_to_stderr()

    @web.middleware
    async def auth(request: web.Request, handler):  # noqa: ANN001, ANN202
        given = request.headers.get("Authorization", "")
        if not secrets.compare_digest(given, f"Bearer {token}"):
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    schedules = None
    long_runs: set[asyncio.Task[None]] = set()

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "pid": os.getpid(), "busy": run_lock.locked(),
                                  "long_runs": len(long_runs),
                                  "schedules": schedules.describe() if schedules else None})

    async def run(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def progress(line: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, {"progress": line})

        async def execute() -> None:
            try:
                async with (run_lock if body["action"] not in SELF_LOCKING else contextlib.nullcontext()):
                    with router.routing_to(progress):
                        result = await run_in_loop(project, body["action"], body.get("params") or {},
                                                   who=body.get("actor"))
                queue.put_nowait({"result": result})
            except BatonError as exc:
                queue.put_nowait({"error": exc.message, "exit_code": exc.exit_code})
            except Exception as exc:  # a flow's unexpected failure: one line, the run keeps its traceback
                log.exception("run of %s failed", body.get("action"))
                queue.put_nowait({"error": f"the {body.get('action')} flow failed: {type(exc).__name__}: {exc}",
                                  "exit_code": 1})

        worker = asyncio.create_task(execute())
        if body["action"] in SELF_LOCKING:  # goes on if the CLI goes away; cancelled at shutdown
            long_runs.add(worker)
            worker.add_done_callback(long_runs.discard)
        while True:
            item = await queue.get()
            await response.write((json.dumps(item, default=str) + "\n").encode())
            if "result" in item or "error" in item:
                break
        await worker
        await response.write_eof()
        return response

    custody = None
    NO_CUSTODIAN = {"error": "the custodian is not running (BATON_NO_CUSTODIAN=1)"}

    async def run_repair(action: str, params: dict[str, Any]) -> Any:
        async with run_lock:  # one at a time with the CLI's runs
            return await run_in_loop(project, action, params, who="custodian")

    async def custody_state(_: web.Request) -> web.Response:
        if custody is None:
            return web.json_response(NO_CUSTODIAN, status=409)
        return web.json_response(custody.core.snapshot())

    async def custody_command(request: web.Request) -> web.Response:
        if custody is None:
            return web.json_response(NO_CUSTODIAN, status=409)
        body = await request.json()
        try:
            node = await custody.command(str(body.get("kind")), str(body.get("node")))
        except BatonError as exc:
            return web.json_response({"error": exc.message}, status=400)
        return web.json_response(node)

    async def custody_watch(request: web.Request) -> web.StreamResponse:
        if custody is None:
            return web.json_response(NO_CUSTODIAN, status=409)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        queue = custody.subscribe()
        try:
            await response.write((json.dumps({"snapshot": custody.core.snapshot()}) + "\n").encode())
            stopped = asyncio.ensure_future(stopping.wait())
            try:
                while not stopping.is_set():
                    getting = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getting, stopped}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
                    if getting not in done:
                        getting.cancel()
                    decision = getting.result() if getting in done else {"keepalive": time.time()}
                    await response.write((json.dumps(decision) + "\n").encode())
            finally:
                stopped.cancel()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            custody.unsubscribe(queue)
        return response

    async def shutdown(_: web.Request) -> web.Response:
        stopping.set()
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[auth])
    app.router.add_get("/health", health)
    app.router.add_post("/run", run)
    app.router.add_post("/shutdown", shutdown)
    app.router.add_get("/custody", custody_state)
    app.router.add_post("/custody/command", custody_command)
    app.router.add_get("/custody/watch", custody_watch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    me = os.getpid()
    record = ProcessRecord(me, os.getpgid(me), process_start_ticks(me) or 0, tuple(sys.argv))
    path = project.state_dir / CONDUCTOR_FILE
    atomic_write_text(path, json.dumps({"host": host, "port": bound, "token": token, "process": record.to_json(),
                                        "code": code}))
    os.chmod(path, 0o600)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    settings = interactive_settings()
    settings.__enter__()
    if os.environ.get("BATON_NO_CUSTODIAN") != "1":  # first: registering schedules can wait on a busy server
        from baton.cli.custody import Custody

        try:
            custody = Custody(project, run_repair)
            custody.start()
        except BatonError as exc:
            log.warning("the custodian is not running: %s", exc)
    if os.environ.get("BATON_NO_SCHEDULES") != "1":
        from baton.cli.schedules import ScheduleRunner

        try:
            schedules = ScheduleRunner(project, project.load().name, api_url)
            await asyncio.to_thread(schedules.start)
        except BatonError as exc:
            log.warning("not serving scheduled deployments: %s", exc)
        if schedules is not None and schedules.error:
            log.warning("not serving scheduled deployments: %s", schedules.error)
    try:
        await stopping.wait()
        if custody is not None:
            await custody.stop()
        for task in list(long_runs):  # a canary's record is persisted: the next conductor's tick resumes it
            task.cancel()
        async with asyncio.timeout(60):
            async with run_lock:  # let a run in progress finish
                pass
    finally:
        path.unlink(missing_ok=True)
        if schedules is not None:
            await asyncio.to_thread(schedules.stop)
        await runner.cleanup()
        settings.__exit__(None, None, None)


def _log_to_stderr() -> None:
    """The conductor's own decisions and warnings, one line each, in ``.baton/conductor.log``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("baton")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def ensure_conductor(project: Any) -> ConductorClient:
    """The running conductor, or a new one started in the background."""
    client = ConductorClient.discover(project.state_dir)
    if client is not None and not client.stale and client.ping():
        return client
    if client is not None:
        stop_conductor(project)
    project.state_dir.mkdir(exist_ok=True)
    (project.state_dir / CONDUCTOR_FILE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "baton.cli.main", "-C", str(project.root), "serve"]
    record = spawn(argv, env={k: v for k, v in os.environ.items() if k != "BATON_NO_CONDUCTOR"},
                   cwd=project.root, stdout=project.state_dir / "conductor.log")
    deadline = time.monotonic() + START_TIMEOUT_S
    delay = 0.05
    while time.monotonic() < deadline:
        client = ConductorClient.discover(project.state_dir)
        if client is not None and client.ping():
            return client
        if process_start_ticks(record.pid) is None:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.3)
    tail = (project.state_dir / "conductor.log").read_text(errors="replace").strip().splitlines()[-3:]
    raise BatonError(f"the conductor did not start ({' | '.join(tail) or 'no output'}); "
                     f"see {project.state_dir / 'conductor.log'}.")


def stop_conductor(project: Any) -> bool:
    from baton.processes import stop_group

    client = ConductorClient.discover(project.state_dir)
    if client is None:
        return False
    client.shutdown()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and client.process and process_start_ticks(client.process.pid) is not None:
        time.sleep(0.05)
    if client.process and process_start_ticks(client.process.pid) is not None:
        stop_group(client.process)
    (Path(project.state_dir) / CONDUCTOR_FILE).unlink(missing_ok=True)
    return True
