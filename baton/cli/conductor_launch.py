"""Finding, starting and stopping a project's conductor from the CLI.

One conductor per project: it holds ``.baton/conductor.lock`` (an ``flock``, released by the kernel when the
process dies, even by ``kill -9``) for its whole life. Whether the lock is held is the truth about whether a
conductor runs; ``.baton/conductor.json`` only says where it listens. Nothing here imports Prefect or aiohttp.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from baton.conductor_client import CONDUCTOR_FILE, ConductorClient
from baton.errors import BatonError
from baton.processes import is_running, spawn, stop_group
from baton.waiting import wait_for

__all__ = ["LOCK_FILE", "conductor_lock", "conductor_running", "ensure_conductor", "start_conductor_in_background",
           "stop_conductor", "START_TIMEOUT_S"]

START_TIMEOUT_S = float(os.environ.get("BATON_CONDUCTOR_START_TIMEOUT_S", "90"))
LOCK_FILE = "conductor.lock"


def conductor_lock(state_dir: Path) -> Any:
    """The lock a conductor holds for its life (not thread-local: the event loop's threads share it)."""
    from filelock import FileLock

    Path(state_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(state_dir) / LOCK_FILE), thread_local=False)


def conductor_running(state_dir: Path) -> bool:
    """True while some process holds the project's conductor lock."""
    from filelock import Timeout

    if not (Path(state_dir) / LOCK_FILE).exists():
        return False
    lock = conductor_lock(state_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def _spawn(project: Any) -> Any:
    argv = [sys.executable, "-m", "baton.cli.main", "-C", str(project.root), "serve"]
    # not the lease of a service it may be started from (it would count as part of that service)
    env = {k: v for k, v in os.environ.items() if k not in ("BATON_NO_CONDUCTOR", "BATON_LEASE")}
    project.state_dir.mkdir(exist_ok=True)
    return spawn(argv, env=env, cwd=project.root, stdout=project.state_dir / "conductor.log")


def start_conductor_in_background(project: Any) -> bool:
    """Start a conductor without waiting for it (reading commands such as ``status``); False when one runs."""
    if os.environ.get("BATON_NO_CONDUCTOR") or conductor_running(project.state_dir):
        return False
    _spawn(project)
    return True


def ensure_conductor(project: Any, progress: Any = None) -> ConductorClient:
    """The running conductor, or a new one (started in the background and waited for)."""
    client = ConductorClient.discover(project.state_dir)
    if client is not None and not client.stale and client.ping():
        return client
    if client is not None and client.stale:  # started before the code changed: replace it
        stop_conductor(project)
    if not conductor_running(project.state_dir):
        if progress is not None:
            progress("starting the project's conductor")
        record = _spawn(project)
    else:  # one is starting (another command launched it): wait for it to answer
        record = None

    def answering() -> ConductorClient | None:
        found = ConductorClient.discover(project.state_dir)
        return found if found is not None and not found.stale and found.ping() else None

    def exited() -> None:
        if record is not None and not is_running(record) and not conductor_running(project.state_dir):
            raise BatonError(f"the conductor exited while starting ({_log_tail(project)}); "
                             f"see {project.state_dir / 'conductor.log'}.")

    return wait_for(answering, timeout_s=START_TIMEOUT_S, abort=exited, first_delay_s=0.05, max_delay_s=0.3,
                    timeout_error=lambda: BatonError(f"the conductor did not answer within {START_TIMEOUT_S:.0f} s "
                                                     f"({_log_tail(project)}); see "
                                                     f"{project.state_dir / 'conductor.log'}."))


def _log_tail(project: Any) -> str:
    try:
        lines = (project.state_dir / "conductor.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return " | ".join(lines[-3:]) or "no output"


def stop_conductor(project: Any, timeout_s: float = 10.0) -> bool:
    """Stop the project's conductor (SIGTERM, then SIGKILL by process group); True when one ran."""
    client = ConductorClient.discover(project.state_dir)
    if client is None or client.process is None:
        return False
    stop_group(client.process, timeout=timeout_s)
    (Path(project.state_dir) / CONDUCTOR_FILE).unlink(missing_ok=True)
    return True
