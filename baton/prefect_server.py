"""The project's embedded Prefect server: SQLite under ``.baton/prefect``, started
on first need, reused by later commands, stopped by process group.

A ``PREFECT_API_URL`` set by the user (a shared, Postgres-backed server, say)
takes precedence and is never started or stopped by Baton. Nothing here imports
Prefect: the server is a child process and readiness is an HTTP probe.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from baton.config.document import atomic_write_text
from baton.errors import BatonError
from baton.processes import ProcessRecord, is_running, spawn, stop_group

__all__ = ["PrefectServer", "prefect_environment", "ensure_server", "stop_server", "server_record"]

START_TIMEOUT_S = float(os.environ.get("BATON_PREFECT_START_TIMEOUT_S", "90"))


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    embedded: bool
    process: ProcessRecord | None = None


def _home(state_dir: Path) -> Path:
    return state_dir / "prefect"


def prefect_environment(state_dir: Path, api_url: str | None = None) -> dict[str, str]:
    """Settings for every process that runs flows for this project (CLI, conductor, tests)."""
    env = {
        "PREFECT_HOME": str(_home(state_dir)),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "true",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",  # quiet terminal; the API still gets every log
        "PREFECT_UI_ENABLED": "false",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _record_path(state_dir: Path) -> Path:
    return _home(state_dir) / "server.json"


def server_record(state_dir: Path) -> tuple[str, ProcessRecord] | None:
    """The embedded server this project started, if it is still running."""
    try:
        data = json.loads(_record_path(state_dir).read_text())
        record = ProcessRecord.from_json(data["process"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return (str(data["api_url"]), record) if is_running(record) else None


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_server(state_dir: Path) -> PrefectServer:
    """The Prefect API to use: the user's, the project's running one, or a newly started one."""
    user_url = os.environ.get("PREFECT_API_URL")
    if user_url:
        return PrefectServer(user_url.rstrip("/"), embedded=False)
    home = _home(state_dir)
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home / "server.lock"), timeout=START_TIMEOUT_S + 10):
        running = server_record(state_dir)
        if running and _healthy(running[0]):
            return PrefectServer(running[0], embedded=True, process=running[1])
        if running:  # alive but not answering: replace it
            stop_group(running[1])
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = {**os.environ, **prefect_environment(state_dir)}
        env.pop("PREFECT_API_URL", None)
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        record = spawn(argv, env=env, cwd=home, stdout=home / "server.log")
        deadline = time.monotonic() + START_TIMEOUT_S
        delay = 0.05
        while not _healthy(api_url, timeout=1.0):
            if not is_running(record):
                tail = (home / "server.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise BatonError(
                    f"the embedded Prefect server exited while starting ({' | '.join(tail) or 'no output'}); "
                    f"see {home / 'server.log'}."
                )
            if time.monotonic() > deadline:
                stop_group(record)
                raise BatonError(
                    f"the embedded Prefect server did not answer within {START_TIMEOUT_S:.0f} s; "
                    f"see {home / 'server.log'} or set PREFECT_API_URL to a running server."
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        atomic_write_text(_record_path(state_dir), json.dumps({"api_url": api_url, "process": record.to_json()}))
        return PrefectServer(api_url, embedded=True, process=record)


def stop_server(state_dir: Path) -> bool:
    """Stop the project's embedded server (history stays in its database). True if one ran."""
    running = server_record(state_dir)
    _record_path(state_dir).unlink(missing_ok=True)
    return bool(running) and stop_group(running[1], timeout=15)
