"""What every task needs to find the circuit: the project, its config, its state,
its provider. Tasks take the project root as a plain string parameter so runs
record it and retries rebuild everything from disk."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.config import CircuitConfig, NodeConfig
from baton.control import ControlClient
from baton.errors import BatonError, UsageError
from baton.project import STATE_DIRNAME, Project, enter_in_thread
from baton.state import CircuitState, StateStore
from providers import Provider, get_provider

__all__ = ["Circuit", "open_circuit", "progress_lines", "project_locked", "retry_transient", "step"]


@dataclass
class Circuit:
    project: Project
    config: CircuitConfig
    store: StateStore
    _providers: dict[str, Provider] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def state_dir(self) -> Path:
        return self.project.state_dir

    def state(self) -> CircuitState:
        return self.store.load()

    def provider(self, state: CircuitState | None = None) -> Provider:
        """The provider running (or last chosen for) the circuit; `baton deploy --provider` chooses."""
        state = state or self.state()
        name = state.provider or "local"
        if name not in self._providers:  # a docker provider opens (and pings) an engine client: once per task
            self._providers[name] = get_provider(name)
        return self._providers[name]

    def node(self, name: str) -> NodeConfig:
        node = self.config.node(name)
        if node is None:
            known = ", ".join(n.name for n in self.config.nodes) or "none"
            raise UsageError(f"no node named {name!r} in baton.yaml; known nodes: {known}.")
        return node

    def client(self, name: str, *, timeout_s: float = 5.0) -> ControlClient:
        self.node(name)  # a clear error for an unknown node
        return ControlClient.for_node(self.config, name, timeout_s=timeout_s, state_dir=self.state_dir)


def open_circuit(root: str | Path) -> Circuit:
    project = Project.at(Path(root))
    return Circuit(project, project.load(), StateStore(project.state_dir))


@contextlib.asynccontextmanager
async def project_locked(root: str | Path, timeout_s: float | None = None) -> AsyncIterator[None]:
    """Hold the project lock for a short critical section of a flow that runs for long (a canary, a tick):
    other commands go on between its steps."""
    lock = Project.at(Path(root)).lock(**({"timeout": timeout_s} if timeout_s is not None else {}))
    await enter_in_thread(lock)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def retry_transient(task: object, task_run: object, state: object) -> bool:
    """``retry_condition_fn`` for tasks: retry connection trouble, never a refusal (400, 423, bad input)."""
    from prefect.states import get_state_exception

    from baton.control import ControlUnreachable

    try:
        exc = get_state_exception(state)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - an unreadable failure is treated as transient
        return True
    if isinstance(exc, ControlUnreachable):
        return True
    return not isinstance(exc, BatonError)


def progress_lines() -> Any:
    """A ``progress(line)`` callable for a long step: each line goes to the run's log with the seconds since the
    step began, marked ``baton_progress`` so the CLI shows it as it happens (see ``baton.cli.flowrun``)."""
    from prefect import get_run_logger

    logger = get_run_logger()
    started = time.monotonic()

    def progress(line: str) -> None:
        logger.info("[%5.1f s] %s", time.monotonic() - started, line, extra={"baton_progress": True})

    return progress


FAULT_ENV = "BATON_FAULT_PAUSE_AFTER"


def step(name: str, **options: Any) -> Any:
    """``@task`` for Baton's steps: every call does its work (side effects are never served from a cache), and
    its task run carries no tags.

    The run's tags (action, circuit, node, project...) belong on the flow run, where ``baton history`` looks
    for them. Prefect makes every tagged task run take a concurrency slot per tag through the API: a write
    per tag and task that, on the embedded SQLite server, now and then meets a busy database and a 2 s
    client back-off. Untagged steps skip it.

    Test seam for crash drills: when ``BATON_FAULT_PAUSE_AFTER`` lists this step's name (comma separated),
    the step, once finished and before its result reaches the flow, writes its pid to
    ``<project>/.baton/fault-paused-<step>`` and blocks forever, so a test can ``kill -9`` the process at
    exactly that boundary. Unset, it costs one dict lookup per step."""
    from prefect.cache_policies import NO_CACHE

    def decorate(fn: Any) -> Any:
        return _step_class()(fn=fn, name=name, cache_policy=NO_CACHE, persist_result=False, **options)

    return decorate


@functools.cache
def _step_class() -> type:
    """A Prefect ``Task`` whose runs start outside the caller's tags (built on first use: Prefect is imported
    lazily, so commands that only read state stay fast).

    Why ``TagsContext`` directly: Prefect's public ``tags()`` only adds to the tags in effect, and a task run
    takes every tag of its caller's context (``Task`` has no option to leave them out); entering a
    ``TagsContext`` with no tags, the context object ``tags()`` itself enters, is the one way to start a step
    untagged. It is a public class of ``prefect.context``, used here as ``tags()`` uses it."""
    from prefect import Task
    from prefect.context import TagsContext

    class Step(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            call = super().__call__
            if not self.isasync:
                with TagsContext(current_tags=set()):
                    result = call(*args, **kwargs)
                if os.environ.get(FAULT_ENV) and _pause_if_asked(self.name, args, kwargs):
                    while True:
                        time.sleep(3600)
                return result

            async def untagged() -> Any:
                with TagsContext(current_tags=set()):
                    result = await call(*args, **kwargs)
                if os.environ.get(FAULT_ENV) and _pause_if_asked(self.name, args, kwargs):
                    while True:
                        await asyncio.sleep(3600)
                return result

            return untagged()

    return Step


def _pause_if_asked(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``BATON_FAULT_PAUSE_AFTER`` names step ``name``; if so, write the marker a drill waits for."""
    if name not in {part.strip() for part in os.environ.get(FAULT_ENV, "").split(",")}:
        return False
    root = kwargs.get("root", args[0] if args else None)
    state_dir = Path(root) / STATE_DIRNAME if isinstance(root, str) else None
    if state_dir is None or not state_dir.is_dir():
        state_dir = Path.cwd() / STATE_DIRNAME
    (state_dir / f"fault-paused-{name}").write_text(str(os.getpid()))
    return True
