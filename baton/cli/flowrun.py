"""Running a topology action: through the conductor when it runs (warm, no
Prefect import here), otherwise as a local flow run in this process against
the project's Prefect server. The CLI is the only part of ``baton/`` that
reaches ``flows/``, and only here, lazily."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import getpass
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["FLOWS", "SELF_LOCKING", "actor", "interactive_settings", "run_action", "run_local", "run_in_loop", "apply_prefect_environment",
           "ProgressRouter", "stderr_progress"]

# action -> "module:function"
FLOWS: dict[str, str] = {
    "up": "flows.up:up",
    "down": "flows.down:down",
    "slot": "flows.slot:slot",
    "swap": "flows.swap:swap",
    "collapse": "flows.collapse:collapse",
    "apply": "flows.apply:apply",
    "image-adapter": "flows.images:image_adapter",
    "deploy": "flows.deploy:deploy",
    "teardown": "flows.deploy:teardown",
    "deploy-status": "flows.deploy:deploy_status",
    "image-build": "flows.images:image_build",
    "image-push": "flows.images:image_push",
    "route-split": "flows.route:route_split",
    "route-canary": "flows.canary:route_canary",
    "route-set": "flows.route:route_set",
    "route-lock": "flows.route:route_lock",
    "route-clear": "flows.route:route_clear",
    "route-revert": "flows.canary:route_revert",
    "canary-tick": "flows.canary:canary_tick",
    "heal-restart": "flows.heal:heal_restart",
    "heal-mock": "flows.heal:heal_mock",
    "heal-adapter": "flows.heal_adapter:heal_adapter",
    "cert-rotate": "flows.certs:cert_rotate",
    "cert-check": "flows.certs:cert_check",
    "taint-seed": "flows.taint:taint_seed",
    "taint-clear": "flows.taint:taint_clear",
    "taint-soak": "flows.taint_soak:taint_soak",
}

# Flows that run for long and take the project lock only around their steps (so other commands go on), and
# that the conductor runs beside others rather than one at a time.
SELF_LOCKING = frozenset({"route-canary", "canary-tick", "cert-check", "taint-soak"})

Progress = Callable[[str], None]


def actor() -> str:
    try:
        return os.environ.get("BATON_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def apply_prefect_environment(project: Any) -> str:
    """Point this process's Prefect settings at the user's shared server (starting it if needed)."""
    from baton.prefect_server import ensure_server, prefect_environment

    server = ensure_server()
    os.environ.update(prefect_environment(server))
    return server.api_url


class ProgressRouter(logging.Handler):
    """Turns Prefect's task-run logs into one short line per finished step, sent to the current run's sink."""

    _installed: ProgressRouter | None = None
    _sink: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("baton_progress_sink", default=None)

    def __init__(self) -> None:
        super().__init__(logging.INFO)

    @classmethod
    def install(cls) -> ProgressRouter:
        """Attach once, after Prefect has configured logging (its dictConfig would drop our handler)."""
        from prefect.logging.configuration import ensure_logging_setup

        ensure_logging_setup()
        if cls._installed is None:
            cls._installed = cls()
        logger = logging.getLogger("prefect.task_runs")
        if cls._installed not in logger.handlers:
            logger.addHandler(cls._installed)
        return cls._installed

    @contextlib.contextmanager
    def routing_to(self, sink: Progress | None) -> Iterator[None]:
        """Send the steps of runs started in this context to ``sink`` (concurrent runs keep their own sinks)."""
        token = self._sink.set(sink)
        try:
            yield
        finally:
            self._sink.reset(token)

    def emit(self, record: logging.LogRecord) -> None:
        sink = self._sink.get()
        if sink is None:
            return
        message = record.getMessage()
        name = getattr(record, "task_run_name", None)
        if name and getattr(record, "baton_progress", False):  # a long step saying where it is (with its time)
            sink(f"{name.rsplit('-', 1)[0]}: {message}")
        elif name and message.startswith("Finished in state"):
            state = message.removeprefix("Finished in state ").split("(")[0]
            sink(f"{name.rsplit('-', 1)[0]}: {state.lower()}")


def interactive_settings() -> Any:
    """Settings for runs a person waits on: no flow heartbeats (each costs a thread join at exit).

    Entered once per process: building a settings copy costs tens of milliseconds.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def _flow(action: str) -> Any:
    module_name, function = FLOWS[action].split(":")
    return getattr(importlib.import_module(module_name), function)


def _labels(action: str, params: dict[str, Any], who: str | None, circuit: str, project: Any) -> list[str]:
    from baton.history import process_tag
    from baton.processes import process_start_ticks

    me = os.getpid()
    labels = ["baton", f"action:{action}", f"circuit:{circuit}", f"actor:{who or actor()}", project.run_tag,
              process_tag(me, process_start_ticks(me) or 0)]
    if params.get("node"):
        labels.append(f"node:{params['node']}")
    return labels


def reconcile_locked(project: Any) -> dict[str, Any]:
    """Adopt or stop what a flow killed mid-way left running (``tasks.reconcile``); the caller holds the lock."""
    from tasks.reconcile import reconcile

    return reconcile(str(project.root))


def reconciled(project: Any) -> dict[str, Any]:
    """:func:`reconcile_locked` under the project lock."""
    with project.lock():
        return reconcile_locked(project)


async def run_in_loop(project: Any, action: str, params: dict[str, Any], *, who: str | None = None) -> Any:
    """Run an action's flow on the running event loop, holding the project lock (the conductor's way)."""
    from prefect import tags

    flow = _flow(action)
    if action in SELF_LOCKING:  # it locks around its own steps; what a cut-short run left is settled first
        await asyncio.to_thread(reconciled, project)
    from baton.project import enter_in_thread

    lock = project.lock() if action not in SELF_LOCKING else contextlib.nullcontext()
    await enter_in_thread(lock)
    try:
        if action not in SELF_LOCKING:
            await asyncio.to_thread(reconcile_locked, project)
        config = project.load()
        from baton.tracing import flow_span

        async with flow_span(config, action, params, who or actor()) as span:  # a span when otlp_endpoint is set
            run = span.hooked(flow)
            with tags(*_labels(action, params, who, config.name, project)):
                if inspect.iscoroutinefunction(getattr(flow, "fn", flow)):
                    return await run(root=str(project.root), **params)
                return await asyncio.to_thread(run, root=str(project.root), **params)
    finally:
        lock.__exit__(None, None, None)


def run_local(project: Any, action: str, params: dict[str, Any], progress: Progress | None = None,
              *, who: str | None = None) -> Any:
    """Run one action's flow in this process (no conductor); returns the flow's result."""
    apply_prefect_environment(project)
    router = ProgressRouter.install()
    with interactive_settings(), router.routing_to(progress):
        return asyncio.run(run_in_loop(project, action, params, who=who))


# Actions that leave the circuit running: the conductor (and its custodian) must be there after them.
LOCAL_ACTIONS = frozenset({"down", "teardown", "deploy-status", "image-adapter", "image-build", "image-push"})


def run_action(project: Any, action: str, params: dict[str, Any], progress: Progress | None = None) -> Any:
    """Run through the project's conductor, starting it when the action leaves something running and none answers
    (a conductor killed earlier comes back here); ``BATON_NO_CONDUCTOR=1`` runs the flow in this process."""
    from baton.conductor_client import ConductorClient

    if os.environ.get("BATON_NO_CONDUCTOR"):
        return run_local(project, action, params, progress)
    client = ConductorClient.discover(project.state_dir)
    if client is None or client.stale or not client.ping():
        if action in LOCAL_ACTIONS:  # nothing of it stays running: no conductor needed
            return run_local(project, action, params, progress)
        from baton.cli.conductor_launch import ensure_conductor

        client = ensure_conductor(project, progress)
    return client.run(action, params, actor=actor(), progress=progress)


@contextlib.contextmanager
def stderr_progress(enabled: bool) -> Iterator[Progress | None]:
    """Progress lines on stderr (one ``  · step: line`` each); on a terminal also a live spinner with the step
    in progress and its elapsed time (rich), gone when the run ends."""
    if not enabled:
        yield None
        return
    if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        def show(line: str) -> None:
            sys.stderr.write(f"  · {line}\n")
            sys.stderr.flush()

        yield show
        return
    from rich.console import Console
    from rich.progress import Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with RichProgress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=Console(stderr=True, highlight=False), transient=True) as live:
        current = live.add_task("starting", total=None)

        def show_live(line: str) -> None:
            live.console.print(f"  · {line}", markup=False)
            live.update(current, description=line[:80])

        yield show_live
