"""Baton's deployments as ``flows/prefect.yaml`` declares them, for ``prefect deploy`` with a real server and
worker (the scheduled canary tick, ``apply`` and ``deploy`` for CI).

The conductor does not serve them: it runs the same ``canary-tick`` flow in-process when an evaluation is due,
so an idle project spawns nothing and writes no idle runs.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from baton.errors import BatonError

__all__ = ["ScheduledDeployment", "deployments_file", "scheduled_deployments", "load_flow"]



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
