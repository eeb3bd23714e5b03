"""The conductor (``baton serve``): the project's one long-running process.

It holds the project's conductor lock for its whole life, runs requested flows in-process (one at a time, their
steps streamed back to the CLI), and hosts the custodian's event core, which watches the slotted services, the
adapter hosts and the Prefect API alike. Canary evaluations and warm-version expiry run here when due (nothing
is spawned while no canary is in flight). It stops itself within a few seconds of SIGTERM, and on its own when
its project directory is gone.

Prefect is imported at the first run, not before, and shed again after ``BATON_CONDUCTOR_SHED_S`` seconds
(default 120) without one: the conductor re-executes itself, keeping its pid, its lock, its listening socket
and its token, so an idle project holds a lean process and no client notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from baton.cli.conductor_launch import LOCK_FILE
from baton.conductor_client import CONDUCTOR_FILE, ConductorClient, code_stamp
from baton.config.document import atomic_write_text
from baton.errors import BatonError, UsageError
from baton.processes import ProcessRecord, process_start_ticks

__all__ = ["serve", "Conductor", "GRACE_S"]

log = logging.getLogger(__name__)
GRACE_S = float(os.environ.get("BATON_CONDUCTOR_GRACE_S", "3"))  # a run in progress at SIGTERM gets this long
WATCH_S = float(os.environ.get("BATON_ORPHAN_CHECK_S", "2"))  # how often it checks that its project still exists
SHED_S = float(os.environ.get("BATON_CONDUCTOR_SHED_S", "120"))  # idle this long with Prefect loaded: shed it
INHERIT_ENV = "BATON_CONDUCTOR_INHERIT"  # what a conductor hands to its re-executed self
PREFECT_HTTP_CHECK_S = 30.0  # how often an answering Prefect API is asked again (its process: every probe)
Progress = Callable[[str], None]


async def serve(project: Any, host: str = "127.0.0.1", port: int = 0) -> None:
    """Run the conductor until SIGTERM/SIGINT, POST /shutdown, or its project disappears."""
    inherited = _inherited()
    lock_fd = inherited["lock_fd"] if inherited else _hold_lock(project)
    try:
        await Conductor(project, lock_fd, inherited).run(host, port)
    finally:
        os.close(lock_fd)  # releases the flock (unless an exec handed it on: then we never get here)


def _inherited() -> dict[str, Any] | None:
    """The lock, socket and token a conductor handed to its re-executed self (see :meth:`Conductor.reexec`)."""
    raw = os.environ.pop(INHERIT_ENV, "")
    if not raw:
        return None
    try:
        data = json.loads(raw)
        os.fstat(int(data["lock_fd"]))
        os.fstat(int(data["sock_fd"]))
    except (ValueError, KeyError, TypeError, OSError):
        return None
    return data


def _hold_lock(project: Any) -> int:
    """The project's conductor lock (an flock, released by the kernel when this process dies), or a usage error
    naming the conductor that holds it."""
    import fcntl

    project.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(project.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        running = ConductorClient.discover(project.state_dir)
        who = f"pid {running.process.pid}" if running and running.process else "a process still starting"
        raise UsageError(f"a conductor already runs for {project.root} ({who}); use it, or stop it with "
                         "`baton down --all` first.") from None
    return fd


class Conductor:
    def __init__(self, project: Any, lock_fd: int, inherited: dict[str, Any] | None = None) -> None:
        self.project = project
        self.lock_fd = lock_fd
        self.inherited = inherited
        self.token = inherited["token"] if inherited else secrets.token_urlsafe(32)
        self.code = code_stamp()
        self.run_lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.runs: set[asyncio.Task[Any]] = set()
        self.background: set[asyncio.Task[Any]] = set()
        self.custody: Any = None
        self.dashboard: Any = None  # baton.dashboard.server.DashboardServer once `baton dashboard --serve` asked
        self.api_url = ""
        self.prefect_embedded = True
        self.started_at = float(inherited["started_at"]) if inherited else time.time()
        self.last_run_at = time.monotonic()
        self._prefect_restart = asyncio.Lock()
        self._prefect_checked_at = 0.0
        self._warming = asyncio.Lock()
        self._router: Any = None
        self._socket: Any = None
        self._shed = False
        self._begun: set[asyncio.Task[Any] | None] = set()  # runs past their wait for a turn

    # -- the life of a conductor, in order ----------------------------------------------------------------

    async def run(self, host: str, port: int) -> None:
        _log_to_stderr()
        await self.connect_prefect()
        await self.recover()
        runner = await self.listen(host, port)
        self.install_signal_handlers()
        await self.resume_dashboard()
        self.start_custodian()
        self.spawn(self.canary_ticker())
        self.spawn(self.cert_ticker())
        self.spawn(self.taint_ticker())
        self.spawn(self.telemetry_ticker())
        self.spawn(self.watch_project())
        self.spawn(self.shed_when_idle())
        try:
            await self.stopping.wait()
        finally:
            await self.shut_down(runner)
        if self._shed:
            self.reexec()

    async def connect_prefect(self) -> None:
        """Point this process at the user's Prefect server (starting it if needed). Prefect itself is imported by
        the first run (:meth:`warm`), so a conductor that only watches stays lean."""
        from baton.cli.flowrun import apply_prefect_environment
        from baton.prefect_server import user_api_url

        self.api_url = await asyncio.to_thread(apply_prefect_environment, self.project)
        self.prefect_embedded = user_api_url() is None

    async def warm(self) -> None:
        """Import Prefect once (off the event loop) and route its step logs to the CLI that asked for the run."""
        async with self._warming:
            if self._router is None:
                from baton.cli.flowrun import ProgressRouter

                self._router = await asyncio.to_thread(ProgressRouter.install)

    async def recover(self) -> None:
        """What a dead predecessor left: processes a cut-short flow started or was retiring are adopted or stopped
        (``tasks.reconcile``), and runs still 'Running' are marked Crashed (under the project lock no flow of this
        project runs, so any such run was cut short)."""
        from baton.cli.flowrun import reconcile_locked
        from baton.history import HistoryClient, mark_abandoned_runs

        def settle() -> None:
            with self.project.lock(timeout=10):
                try:
                    reconcile_locked(self.project)
                except BatonError as exc:  # an invalid baton.yaml, say: commands will say so too
                    log.warning("could not reconcile what runs with state: %s", exc)
                crashed = mark_abandoned_runs(HistoryClient(self.api_url), project_tag=self.project.run_tag)
            if crashed:
                log.warning("marked runs cut short by a dead process as Crashed: %s", ", ".join(crashed))

        try:
            await asyncio.to_thread(settle)
        except BatonError as exc:
            log.warning("could not check for abandoned runs: %s", exc)

    async def listen(self, host: str, port: int) -> Any:
        """Serve the API on loopback and say where in ``.baton/conductor.json`` (0600: it holds the token)."""
        from aiohttp import web

        from baton.cli.conductor_api import build_app

        # a CLI that goes away (Ctrl-C) cancels its request's handler: see abandon()
        runner = web.AppRunner(build_app(self), access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await runner.setup()
        if self.inherited:  # the socket of the process this one replaced: same port, queued clients wait
            self._socket = socket.socket(fileno=int(self.inherited["sock_fd"]))
        else:
            self._socket = socket.create_server((host, port), reuse_port=False)
        site = web.SockSite(runner, self._socket)
        await site.start()
        host, bound = self._socket.getsockname()[:2]
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
        if self.dashboard is not None and not self._shed:  # a shed conductor hands its socket on (reexec)
            await self.dashboard.stop()
        for task in list(self.background):
            task.cancel()
        if self.runs:
            _, pending = await asyncio.wait(set(self.runs), timeout=GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*self.background, return_exceptions=True)
        if self._shed:  # the next image takes over the socket and conductor.json as they are
            return
        mine = self.project.state_dir / CONDUCTOR_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(mine.read_text()).get("token") == self.token:
                mine.unlink()
        await runner.cleanup()

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

    def abandon(self, action: str, worker: asyncio.Task[Any]) -> None:
        """The CLI that asked for ``worker`` went away (Ctrl-C). A run still queued for its turn never runs later;
        a foreground canary stops waiting (its record is saved: the conductor's tick carries it on); a run already
        changing the circuit finishes, so nothing is left half-done."""
        from baton.cli.flowrun import SELF_LOCKING

        if worker.done():
            return
        if worker not in self._begun or action in SELF_LOCKING:
            log.info("the CLI of a %s run went away: %s", action,
                     "it stops waiting" if worker in self._begun else "it will not run")
            worker.cancel()

    async def run_action(self, action: str, params: dict[str, Any], actor: str | None,
                         progress: Progress | None) -> Any:
        """One flow run for the CLI: waits for the Prefect API when it is being brought back, then for its turn."""
        from baton.cli.flowrun import SELF_LOCKING, run_in_loop

        await self.prefect_ready(progress)
        turn = self.run_lock if action not in SELF_LOCKING else contextlib.nullcontext()
        async with turn:
            me = asyncio.current_task()
            self._begun.add(me)
            try:
                return await self.flow(action, params, actor, progress)
            finally:
                self._begun.discard(me)

    async def run_repair(self, action: str, params: dict[str, Any]) -> Any:
        """The custodian's repairs: one at a time with the CLI's runs."""
        async with self.run_lock:
            return await self.flow(action, params, "custodian", None)

    async def flow(self, action: str, params: dict[str, Any], who: str | None, progress: Progress | None) -> Any:
        """One flow run in this process, its steps sent to ``progress``."""
        from baton.cli.flowrun import interactive_settings, run_in_loop

        await self.warm()
        try:
            with interactive_settings(), self._router.routing_to(progress):
                return await run_in_loop(self.project, action, params, who=who)
        finally:
            self.last_run_at = time.monotonic()

    # -- supervision of the Prefect API ---------------------------------------------------------------------------

    async def check_prefect(self) -> tuple[bool, str, bool]:
        """(answers, why not, its process exited): the custodian's look at the Prefect API. Whether Baton's server
        process still runs is read from /proc at every probe; whether it answers is asked over HTTP every
        ``PREFECT_HTTP_CHECK_S`` (and at every probe once it failed), so five idle projects do not keep the shared
        server busy answering health checks."""
        from baton.prefect_server import healthy, running_server

        if self.prefect_embedded and running_server() is None:
            self._prefect_checked_at = 0.0
            return False, f"the Prefect server of {self.api_url} is not running", True
        now = time.monotonic()
        if now - self._prefect_checked_at < PREFECT_HTTP_CHECK_S:
            return True, "", False
        if await asyncio.to_thread(healthy, self.api_url, 3.0):
            self._prefect_checked_at = now
            return True, "", False
        self._prefect_checked_at = 0.0
        return False, f"the Prefect API at {self.api_url} does not answer", False

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

    # -- the dashboard ----------------------------------------------------------------------------------------------

    async def serve_dashboard(self, port: int) -> dict[str, Any]:
        """Serve the live dashboard on 127.0.0.1:``port``; asked again, the same URL (``already``)."""
        if self.dashboard is not None:
            return {**self.dashboard.describe(), "already": True}
        from baton.dashboard.server import DashboardServer

        server = DashboardServer(self.project, api_url=self.api_url, custody=self._custody_snapshot)
        await server.start(port)  # BatonError (one sentence) when the port is taken
        self.dashboard = server
        return {**server.describe(), "already": False}

    async def stop_dashboard(self) -> bool:
        server, self.dashboard = self.dashboard, None
        if server is not None:
            await server.stop()
        return server is not None

    def dashboard_info(self) -> dict[str, Any]:
        return self.dashboard.describe() if self.dashboard is not None else {"serving": False}

    async def resume_dashboard(self) -> None:
        """Go on serving the dashboard a shed predecessor served: same socket, same token, so open pages go on."""
        handed = (self.inherited or {}).get("dashboard")
        if not handed:
            return
        from baton.dashboard.server import DashboardServer

        try:
            sock = socket.socket(fileno=int(handed["sock_fd"]))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("the dashboard's socket was not handed over: `baton dashboard --serve` starts it again")
            return
        server = DashboardServer(self.project, api_url=self.api_url, custody=self._custody_snapshot,
                                 token=str(handed["token"]))
        await server.start(sock=sock)
        self.dashboard = server

    def _custody_snapshot(self) -> dict[str, Any] | None:
        return self.custody.core.snapshot() if self.custody is not None else None

    # -- work that comes due --------------------------------------------------------------------------------------

    async def canary_ticker(self) -> None:
        """Advance in-flight canaries when an evaluation is due and stop expired warm versions, in-process: a stat
        of state.json a second, nothing more, while nothing is due."""
        from baton.canary import earliest_due
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
                await self.flow("canary-tick", {}, "schedule", None)
            except Exception:  # noqa: BLE001 - a failed tick is in history; the next one tries again
                log.exception("the canary tick failed")
            seen = None  # the tick changed state (or failed): look again

    async def cert_ticker(self) -> None:
        """Serve the ``cert-check`` deployment: every ``security.tls.rotate_check_interval_s`` (or
        ``BATON_SCHEDULE_CERT_CHECK_S``), look in-process (the TLS files, and what each adapter serves) and run
        the flow only when something is due (:func:`baton.certs.circuit.check_due`): nothing is spawned and no
        run recorded while nothing is."""
        if os.environ.get("BATON_NO_SCHEDULES") == "1":
            return
        while True:
            interval = 5.0  # while TLS is off (or baton.yaml is invalid): look again at the config soon
            try:
                config = self.project.load()
                if config.security.tls.mode.value != "off":
                    interval = float(os.environ.get("BATON_SCHEDULE_CERT_CHECK_S")
                                     or config.security.tls.rotate_check_interval_s)
                    reason = await self._cert_check_due(config)
                    if reason:
                        log.info("cert-check due: %s", reason)
                        await self.prefect_ready(None)
                        await self.flow("cert-check", {"reason": reason}, "schedule", None)
            except Exception:  # noqa: BLE001 - a failed check is in history; the next one tries again
                log.exception("the certificate check failed")
            await asyncio.sleep(max(0.5, interval))

    async def _cert_check_due(self, config: Any) -> str:
        from baton.certs.circuit import check_due
        from baton.control import served_fingerprints
        from baton.state import StateStore

        state = await asyncio.to_thread(StateStore(self.project.state_dir).load)
        names = [n.name for n in config.nodes if n.name in state.adapters] if state.running else []
        served = await served_fingerprints(config, self.project.state_dir, names)
        return await asyncio.to_thread(check_due, self.project.state_dir, config, root=Path(self.project.root),
                                       served=served)

    async def taint_ticker(self) -> None:
        """While ``taint.enabled`` and the circuit runs, every ``BATON_TAINT_POLL_S`` (default 1 s): one collector
        pass in-process (:func:`baton.taint.collector.collect_once`: adapters reloaded when they lost their
        canaries, new sightings judged); each violation goes to events.jsonl and to every ``baton watch``.
        Nothing is asked of anyone while taint is off."""
        if os.environ.get("BATON_NO_SCHEDULES") == "1":
            return
        from baton.state import StateStore

        try:
            poll = max(0.1, float(os.environ.get("BATON_TAINT_POLL_S") or 1.0))
        except ValueError:
            log.warning("BATON_TAINT_POLL_S expects seconds, found %r: polling every 1 s",
                        os.environ.get("BATON_TAINT_POLL_S"))
            poll = 1.0
        store = StateStore(self.project.state_dir)
        cursors, failure = None, ""
        while True:
            interval = 5.0  # while taint is off or the circuit is down: look again at the config soon
            try:
                config = self.project.load()
                if config.taint.enabled and (await asyncio.to_thread(store.load)).running:
                    from baton.taint.collector import CursorStore

                    interval = poll
                    cursors = cursors or CursorStore(self.project.state_dir)
                    found = await self.collect_taint(config, cursors)
                    if found:
                        log.warning("taint: %d new violations; the newest at %s: %s", len(found), found[-1].edge,
                                    "; ".join(found[-1].reasons))
                failure = ""
            except Exception as exc:  # noqa: BLE001 - the next pass tries again (the same failure is logged once)
                if f"{type(exc).__name__}: {exc}" != failure:
                    failure = f"{type(exc).__name__}: {exc}"
                    log.exception("the taint collection failed")
            await asyncio.sleep(interval)

    async def collect_taint(self, config: Any = None, cursors: Any = None) -> list[Any]:
        """One taint collector pass now (the ticker's, or asked by ``baton taint violations`` so that what the
        adapters saw a moment ago is listed); each new violation goes to every ``baton watch`` too."""
        from baton.taint.collector import CursorStore, collect_once

        config = config or self.project.load()
        if not config.taint.enabled:
            return []
        found = await collect_once(config, self.project.state_dir, cursors or CursorStore(self.project.state_dir))
        for violation in found:
            self.tell_watchers({"at": violation.detected_at, "node": violation.node, "kind": "taint",
                                "status": "violation", "reason": "; ".join(violation.reasons)})
        return found

    async def telemetry_ticker(self) -> None:
        """While the circuit runs and ``observability.pipelines`` is on, every ``observability.pull_interval_s``
        (``BATON_TELEMETRY_INTERVAL_S``; default 1 s): one pass of the telemetry pipelines in-process (new signals
        and service events of every running adapter appended to .baton/, a metric snapshot every
        ``metrics_interval_s``; see :func:`baton.telemetry.pipelines.pump_forever`). Nothing is asked of anyone
        while the circuit is down."""
        if os.environ.get("BATON_NO_SCHEDULES") == "1":
            return
        from baton.telemetry.pipelines import pump_forever

        await pump_forever(self.project)

    def tell_watchers(self, item: dict[str, Any]) -> None:
        """Hand a line to every ``baton watch`` (they follow the custodian's stream)."""
        for queue in list(self.custody.watchers if self.custody is not None else ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(item)

    async def watch_project(self) -> None:
        """Stop when the project is gone (``rm -rf``): its baton.yaml vanished, or the lock file this conductor
        holds was unlinked (a file descriptor on it keeps its link count)."""
        root = Path(self.project.root)
        while not self.stopping.is_set():
            await asyncio.sleep(WATCH_S)
            if not (root / "baton.yaml").exists() or os.fstat(self.lock_fd).st_nlink == 0:
                log.warning("the project at %s is gone: the conductor stops", root)
                self.stopping.set()

    async def shed_when_idle(self) -> None:
        """Once Prefect is loaded and nothing has run for ``SHED_S``, shed it (see :meth:`reexec`)."""
        while not self.stopping.is_set():
            await asyncio.sleep(min(5.0, SHED_S))
            idle = time.monotonic() - self.last_run_at >= SHED_S
            watched = self.custody is not None and (self.custody.watchers or self.custody.repairing())
            if self._router is not None and idle and not self.runs and not self.run_lock.locked() and not watched:
                log.info("idle for %g s: shedding Prefect (the conductor re-executes itself, same pid)", SHED_S)
                self._shed = True
                self.stopping.set()

    def reexec(self) -> None:
        """Replace this process's image by a fresh conductor: same pid, lock, socket and token; the custodian's
        state was saved on the way out and is restored on the way in."""
        for fd in (self.lock_fd, self._socket.fileno()):
            os.set_inheritable(fd, True)
        os.environ[INHERIT_ENV] = json.dumps({"lock_fd": self.lock_fd, "sock_fd": self._socket.fileno(),
                                              "token": self.token, "started_at": self.started_at,
                                              "dashboard": self.dashboard.handover() if self.dashboard else None})
        for handler in logging.getLogger("baton").handlers:
            handler.flush()
        os.execv(sys.executable, [sys.executable, "-m", "baton.cli.main", "-C", str(self.project.root), "serve"])

    def describe(self) -> dict[str, Any]:
        custody = self.custody
        return {"ok": True, "pid": os.getpid(), "busy": self.run_lock.locked(), "runs": len(self.runs),
                "prefect_loaded": self._router is not None,
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

