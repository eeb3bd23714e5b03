"""The conductor (``baton serve``): the project's one long-running process.

It holds the project's conductor lock for its whole life, runs requested flows warm and in-process (one at a
time, their steps streamed back to the CLI), and hosts the custodian's event core, which watches the slotted
services, the adapter hosts and the Prefect API alike. Canary evaluations and warm-version expiry run here when
due (nothing is spawned while no canary is in flight). It stops itself within a few seconds of SIGTERM, and on
its own when its project directory is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from baton.cli.conductor_launch import LOCK_FILE, conductor_lock
from baton.conductor_client import CONDUCTOR_FILE, ConductorClient, code_stamp
from baton.config.document import atomic_write_text
from baton.errors import BatonError, UsageError
from baton.processes import ProcessRecord, process_start_ticks

__all__ = ["serve", "Conductor", "GRACE_S"]

log = logging.getLogger(__name__)
GRACE_S = float(os.environ.get("BATON_CONDUCTOR_GRACE_S", "3"))  # a run in progress at SIGTERM gets this long
WATCH_S = float(os.environ.get("BATON_ORPHAN_CHECK_S", "2"))  # how often it checks that its project still exists
Progress = Callable[[str], None]


async def serve(project: Any, host: str = "127.0.0.1", port: int = 0) -> None:
    """Run the conductor until SIGTERM/SIGINT, POST /shutdown, or its project disappears."""
    lock = _hold_lock(project)
    try:
        await Conductor(project, lock).run(host, port)
    finally:
        lock.release()


def _hold_lock(project: Any) -> Any:
    """The project's conductor lock, or a usage error naming the conductor that holds it."""
    from filelock import Timeout

    lock = conductor_lock(project.state_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        running = ConductorClient.discover(project.state_dir)
        who = f"pid {running.process.pid}" if running and running.process else "a process still starting"
        raise UsageError(f"a conductor already runs for {project.root} ({who}); use it, or stop it with "
                         "`baton down --all` first.") from None
    return lock


class Conductor:
    def __init__(self, project: Any, lock: Any) -> None:
        self.project = project
        self.lock = lock
        self.token = secrets.token_urlsafe(32)
        self.code = code_stamp()
        self.run_lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.runs: set[asyncio.Task[Any]] = set()
        self.background: set[asyncio.Task[Any]] = set()
        self.custody: Any = None
        self.api_url = ""
        self.prefect_embedded = True
        self.started_at = time.time()
        self._prefect_restart = asyncio.Lock()
        self._settings: Any = None
        self._router: Any = None

    # -- the life of a conductor, in order ----------------------------------------------------------------

    async def run(self, host: str, port: int) -> None:
        _log_to_stderr()
        await self.connect_prefect()
        await self.recover()
        runner = await self.listen(host, port)
        self.install_signal_handlers()
        self.start_custodian()
        self.spawn(self.canary_ticker())
        self.spawn(self.watch_project())
        try:
            await self.stopping.wait()
        finally:
            await self.shut_down(runner)

    async def connect_prefect(self) -> None:
        """Point this process at the user's Prefect server (starting it if needed) and warm Prefect once."""
        from baton.cli.flowrun import ProgressRouter, apply_prefect_environment, interactive_settings
        from baton.prefect_server import user_api_url

        self.api_url = await asyncio.to_thread(apply_prefect_environment, self.project)
        self.prefect_embedded = user_api_url() is None
        import prefect  # noqa: F401 - warm the import once, here, not per run

        self._router = ProgressRouter.install()
        self._settings = interactive_settings()
        self._settings.__enter__()

    async def recover(self) -> None:
        """What a dead predecessor left: runs still 'Running' are marked Crashed (under the project lock no flow
        of this project runs, so any such run was cut short)."""
        from baton.history import HistoryClient, mark_abandoned_runs

        def mark_abandoned() -> None:
            with self.project.lock(timeout=10):
                crashed = mark_abandoned_runs(HistoryClient(self.api_url), project_tag=self.project.run_tag)
            if crashed:
                log.warning("marked runs cut short by a dead process as Crashed: %s", ", ".join(crashed))

        try:
            await asyncio.to_thread(mark_abandoned)
        except BatonError as exc:
            log.warning("could not check for abandoned runs: %s", exc)

    async def listen(self, host: str, port: int) -> Any:
        """Serve the API on loopback and say where in ``.baton/conductor.json`` (0600: it holds the token)."""
        from aiohttp import web

        from baton.cli.conductor_api import build_app

        runner = web.AppRunner(build_app(self), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        me = os.getpid()
        record = ProcessRecord(me, os.getpgid(me), process_start_ticks(me) or 0, tuple(sys.argv))
        path = self.project.state_dir / CONDUCTOR_FILE
        atomic_write_text(path, json.dumps({"host": host, "port": bound, "token": self.token,
                                            "process": record.to_json(), "code": self.code}))
        os.chmod(path, 0o600)
        return runner

    def install_signal_handlers(self) -> None:
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)

    def start_custodian(self) -> None:
        if os.environ.get("BATON_NO_CUSTODIAN") == "1":
            return
        from baton.cli.custody import Custody

        try:
            self.custody = Custody(self.project, self.run_repair, prefect_check=self.check_prefect,
                                   prefect_restart=self.restart_prefect)
            self.custody.start()
        except BatonError as exc:
            log.warning("the custodian is not running: %s", exc)

    async def shut_down(self, runner: Any) -> None:
        """Within a few seconds: the custodian stops, a run in progress gets ``GRACE_S``, then everything is
        cancelled (flows are crash-safe: the next conductor adopts or stops what they left)."""
        if self.custody is not None:
            await self.custody.stop()
        for task in list(self.background):
            task.cancel()
        if self.runs:
            _, pending = await asyncio.wait(set(self.runs), timeout=GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*self.background, return_exceptions=True)
        mine = self.project.state_dir / CONDUCTOR_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(mine.read_text()).get("token") == self.token:
                mine.unlink()
        await runner.cleanup()
        if self._settings is not None:
            self._settings.__exit__(None, None, None)

    # -- running flows ----------------------------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def start_run(self, action: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self.runs.add(task)
        task.add_done_callback(self.runs.discard)
        return task

    def keeps_running(self, action: str) -> bool:
        from baton.cli.flowrun import SELF_LOCKING

        return action in SELF_LOCKING

    async def run_action(self, action: str, params: dict[str, Any], actor: str | None,
                         progress: Progress | None) -> Any:
        """One flow run for the CLI: waits for the Prefect API when it is being brought back, then for its turn."""
        from baton.cli.flowrun import SELF_LOCKING, run_in_loop

        await self.prefect_ready(progress)
        turn = self.run_lock if action not in SELF_LOCKING else contextlib.nullcontext()
        async with turn:
            with self._router.routing_to(progress):
                return await run_in_loop(self.project, action, params, who=actor)

    async def run_repair(self, action: str, params: dict[str, Any]) -> Any:
        """The custodian's repairs: one at a time with the CLI's runs."""
        from baton.cli.flowrun import run_in_loop

        async with self.run_lock:
            return await run_in_loop(self.project, action, params, who="custodian")

    # -- supervision of the Prefect API ---------------------------------------------------------------------------

    async def check_prefect(self) -> tuple[bool, str, bool]:
        """(answers, why not, its process exited): the custodian's look at the Prefect API."""
        from baton.prefect_server import healthy, running_server

        if await asyncio.to_thread(healthy, self.api_url, 3.0):
            return True, "", False
        exited = self.prefect_embedded and running_server() is None
        return False, f"the Prefect API at {self.api_url} does not answer", exited

    async def restart_prefect(self) -> str:
        """Bring the shared server back (or find it again where it is recorded); a user's server is waited for."""
        from baton.prefect_server import ensure_server, healthy

        async with self._prefect_restart:
            if await asyncio.to_thread(healthy, self.api_url, 3.0):
                return f"answering at {self.api_url}"
            if not self.prefect_embedded:
                raise BatonError(f"the Prefect API at {self.api_url} (PREFECT_API_URL) does not answer; it is not "
                                 "Baton's to restart")
            server = await asyncio.to_thread(ensure_server)
            if server.api_url != self.api_url:  # its port was taken meanwhile: a fresh conductor follows it
                log.warning("the Prefect server moved from %s to %s: the conductor restarts", self.api_url,
                            server.api_url)
                self.stopping.set()
                raise BatonError(f"the Prefect server moved to {server.api_url}; the conductor restarts to follow "
                                 "it: run the command again.")
            return f"answering at {server.api_url}"

    async def prefect_ready(self, progress: Progress | None) -> None:
        """Return once the Prefect API answers; meanwhile say so, and bring it back."""
        from baton.prefect_server import healthy

        if await asyncio.to_thread(healthy, self.api_url, 2.0):
            return
        if progress is not None:
            progress(f"waiting for the Prefect API at {self.api_url}: the conductor is bringing it back")
        await self.restart_prefect()

    # -- work that comes due --------------------------------------------------------------------------------------

    async def canary_ticker(self) -> None:
        """Advance in-flight canaries when an evaluation is due and stop expired warm versions, in-process: a stat
        of state.json a second, nothing more, while nothing is due."""
        from baton.canary import earliest_due
        from baton.cli.flowrun import run_in_loop
        from baton.state import StateStore

        if os.environ.get("BATON_NO_SCHEDULES") == "1":
            return
        store = StateStore(self.project.state_dir)
        seen, due_at = None, None
        while True:
            await asyncio.sleep(1.0)
            try:
                stamp = store.path.stat().st_mtime_ns
            except OSError:
                stamp = None
            if stamp != seen:
                seen = stamp
                try:
                    due_at = earliest_due(store.load(), time.time()) if stamp else None
                except BatonError:
                    due_at = None
            if due_at is None or time.time() < due_at:
                continue
            try:
                await self.prefect_ready(None)
                await run_in_loop(self.project, "canary-tick", {}, who="schedule")
            except Exception:  # noqa: BLE001 - a failed tick is in history; the next one tries again
                log.exception("the canary tick failed")
            seen = None  # the tick changed state (or failed): look again

    async def watch_project(self) -> None:
        """Stop when the project is gone (``rm -rf``): its baton.yaml vanished, or the lock file this conductor
        holds was unlinked (a file descriptor on it keeps its link count)."""
        root = Path(self.project.root)
        held = os.open(self.project.state_dir / LOCK_FILE, os.O_RDONLY)
        try:
            while not self.stopping.is_set():
                await asyncio.sleep(WATCH_S)
                if not (root / "baton.yaml").exists() or os.fstat(held).st_nlink == 0:
                    log.warning("the project at %s is gone: the conductor stops", root)
                    self.stopping.set()
        finally:
            os.close(held)

    def describe(self) -> dict[str, Any]:
        custody = self.custody
        return {"ok": True, "pid": os.getpid(), "busy": self.run_lock.locked(), "runs": len(self.runs),
                "started_at": self.started_at, "prefect_api": self.api_url,
                "prefect_managed": self.prefect_embedded,
                "custodian": "off (BATON_NO_CUSTODIAN=1)" if os.environ.get("BATON_NO_CUSTODIAN") == "1"
                else ("running" if custody is not None else "not running")}


def _log_to_stderr() -> None:
    """The conductor's own decisions and warnings, one line each, in ``.baton/conductor.log``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("baton")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

