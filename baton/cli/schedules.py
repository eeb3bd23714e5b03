"""The project's scheduled deployments, served by the conductor.

``flows/prefect.yaml`` declares Baton's deployments once: ``prefect deploy`` registers them with a real server
and worker, and ``baton serve`` serves the scheduled ones (the canary tick, later the cert check) for one
project with Prefect's Runner (what ``flow.serve`` uses): no work pool, no worker. Each project gets its own
deployment (``<circuit>-<digest>``) with the project root as its parameter. The Runner lives on a thread of
its own, with its own event loop, so it never competes with the conductor's loop or signal handlers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from baton.errors import BatonError

__all__ = ["ScheduledDeployment", "deployments_file", "scheduled_deployments", "ScheduleRunner"]

log = logging.getLogger(__name__)
REGISTER_PATIENCE_S = float(os.environ.get("BATON_SCHEDULE_REGISTER_PATIENCE_S", "120"))


@dataclass(frozen=True)
class ScheduledDeployment:
    name: str
    entrypoint: str  # "flows/canary.py:canary_tick", relative to the repository
    interval_s: float
    tags: tuple[str, ...] = ()
    description: str = ""

    @property
    def env_override(self) -> str:
        return "BATON_SCHEDULE_" + re.sub(r"[^A-Z0-9]+", "_", self.name.upper()) + "_S"


def deployments_file() -> Path:
    import flows

    return Path(flows.__file__).resolve().parent / "prefect.yaml"


def scheduled_deployments(path: Path | None = None, environ: dict[str, str] | None = None) -> list[ScheduledDeployment]:
    """The deployments of ``prefect.yaml`` that run on an interval (``BATON_SCHEDULE_<NAME>_S`` overrides it)."""
    path = path or deployments_file()
    environ = dict(os.environ) if environ is None else environ
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BatonError(f"cannot read the deployments file {path}: {exc}.") from None
    found = []
    for entry in document.get("deployments") or []:
        intervals = [s["interval"] for s in entry.get("schedules") or [] if isinstance(s, dict) and "interval" in s]
        if not intervals:
            continue
        deployment = ScheduledDeployment(name=entry["name"], entrypoint=entry["entrypoint"],
                                         interval_s=float(intervals[0]), tags=tuple(entry.get("tags") or ()),
                                         description=entry.get("description") or "")
        override = environ.get(deployment.env_override)
        if override:
            try:
                seconds = float(override)
            except ValueError:
                seconds = 0.0
            if seconds <= 0:
                raise BatonError(f"{deployment.env_override} expects a positive number of seconds, "
                                 f"found {override!r}.")
            deployment = ScheduledDeployment(deployment.name, deployment.entrypoint, seconds, deployment.tags,
                                             deployment.description)
        found.append(deployment)
    return found


def load_flow(entrypoint: str) -> Any:
    """``flows/canary.py:canary_tick`` -> the flow object (imported as a module, as the CLI does)."""
    file, _, name = entrypoint.partition(":")
    module = file.removesuffix(".py").replace("/", ".")
    return getattr(importlib.import_module(module), name)


class ScheduleRunner:
    """Serves a project's scheduled deployments on a background thread until :meth:`stop`."""

    def __init__(self, project: Any, circuit: str, api_url: str,
                 deployments: list[ScheduledDeployment] | None = None) -> None:
        self.project = project
        self.circuit = circuit
        self.api_url = api_url
        self.deployments = scheduled_deployments() if deployments is None else deployments
        self.deployment_name = f"{circuit}-{project.run_tag.removeprefix('project:')[:8]}"
        self.error: str | None = None
        self.deployment_ids: dict[str, str] = {}
        self._runner: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="baton-schedules", daemon=True)

    def start(self, timeout_s: float = 60.0) -> None:
        """Register the deployments and start serving; returns once they are registered (or failed)."""
        if not self.deployments:
            return
        self._thread.start()
        self._ready.wait(timeout_s)

    def describe(self) -> dict[str, Any]:
        return {"deployment": self.deployment_name, "error": self.error,
                "schedules": {d.name: {"interval_s": d.interval_s, "id": self.deployment_ids.get(d.name)}
                              for d in self.deployments}}

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop serving: the Runner pauses the schedules, so no run piles up while the conductor is down."""
        if self._runner is not None and self._loop is not None and not self._loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self._runner.astop(), self._loop).result(timeout_s)
            except Exception as exc:  # noqa: BLE001 - stopping is best effort; the thread is a daemon
                log.warning("the schedule runner did not stop cleanly: %s", exc)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # noqa: BLE001 - a broken schedule must not take the conductor down
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("serving the scheduled deployments failed")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from prefect.runner import Runner
        from tenacity import AsyncRetrying, stop_after_delay, wait_exponential

        from baton.history import HistoryClient

        self._loop = asyncio.get_running_loop()
        shortest = min(d.interval_s for d in self.deployments)
        runner = Runner(name=f"baton-{self.deployment_name}", query_seconds=max(0.5, min(10.0, shortest / 2)),
                        prefetch_seconds=max(1.0, min(10.0, shortest / 2)), pause_on_shutdown=True)
        history = HistoryClient(self.api_url)
        for deployment in self.deployments:
            tags = sorted({*deployment.tags, "baton", f"circuit:{self.circuit}", self.project.run_tag,
                           "actor:schedule"})
            # a busy SQLite-backed server answers 503 now and then: registering is retried, not given up
            async for attempt in AsyncRetrying(stop=stop_after_delay(REGISTER_PATIENCE_S), reraise=True,
                                               wait=wait_exponential(multiplier=0.25, max=5)):
                with attempt:
                    deployment_id = await runner.aadd_flow(
                        load_flow(deployment.entrypoint), name=self.deployment_name, interval=deployment.interval_s,
                        parameters={"root": str(self.project.root)}, tags=tags, paused=False, concurrency_limit=1,
                        description=deployment.description or None)
                    # the server's scheduler visits deployments once a minute: plan the first runs now
                    await asyncio.to_thread(history.schedule_deployment, str(deployment_id))
            self.deployment_ids[deployment.name] = str(deployment_id)
            log.info("serving deployment %s/%s every %g s", deployment.name, self.deployment_name, deployment.interval_s)
        self._runner = runner
        self._ready.set()
        await runner.start()
