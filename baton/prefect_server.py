"""Baton's Prefect server: one per user, shared by every project.

It lives under the user's Baton directory (``$BATON_HOME``, default ``~/.baton``), in ``prefect/``: SQLite by
default, PostgreSQL when started with a database URL (kept for later starts), Prefect's UI on, at a stable
address: the port chosen at the first start is kept, so a restarted server is found where it was. Every
project's runs carry a ``project:`` tag, so one server keeps them apart and history outlives a project
directory.

A ``PREFECT_API_URL`` set by the user (a team server, Prefect Cloud) replaces it and is never started or
stopped by Baton. Nothing here imports Prefect: the server is a child process, readiness an HTTP probe.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from baton.config.document import atomic_write_text
from baton.errors import BatonError, UsageError
from baton.processes import ProcessRecord, is_running, spawn, stop_group
from baton.waiting import wait_for

__all__ = ["PrefectServer", "baton_home", "server_home", "user_api_url", "prefect_environment", "ensure_server",
           "stop_server", "server_status", "running_server", "healthy", "redact", "legacy_server_record"]

START_TIMEOUT_S = float(os.environ.get("BATON_PREFECT_START_TIMEOUT_S", "90"))
PREFERRED_PORT = 4200  # Prefect's own default, when it is free at the first start
MANAGED_MARK = "BATON_MANAGED_API_URL"  # set beside PREFECT_API_URL when Baton chose it, so children tell it apart
# The server's background services poll their tables every 5-20 s by default; Baton schedules nothing through
# them (canary ticks run in conductors), so they look less often: an idle server costs about a third less CPU.
# A value the user set wins.
QUIET_SERVICES = {
    "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "30",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "30",
    "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": "60",
}


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    embedded: bool  # started and kept by Baton (False: the user's PREFECT_API_URL)
    process: ProcessRecord | None = None
    database: str = ""

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def baton_home() -> Path:
    """The user's Baton directory: ``$BATON_HOME``, else ``~/.baton``."""
    return Path(os.environ.get("BATON_HOME") or Path.home() / ".baton").expanduser().resolve()


def server_home() -> Path:
    return baton_home() / "prefect"


def user_api_url() -> str | None:
    """A ``PREFECT_API_URL`` the user set (not one Baton put in this process's environment)."""
    url = (os.environ.get("PREFECT_API_URL") or "").rstrip("/")
    if not url or url == (os.environ.get(MANAGED_MARK) or "").rstrip("/"):
        return None
    return url


def prefect_environment(server: PrefectServer | None = None) -> dict[str, str]:
    """Settings for every process that runs flows (CLI, conductor, tests): quiet, no telemetry, logs to the API."""
    env = {
        "PREFECT_HOME": str(server_home()),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "true",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",  # quiet terminal; the API still gets every log
    }
    if server is not None:
        env["PREFECT_API_URL"] = server.api_url
        if server.embedded:  # children inherit it: mark it as Baton's choice, not the user's
            env[MANAGED_MARK] = server.api_url
    return env


def redact(database: str | None) -> str:
    """A database URL without its password, or ``sqlite`` for the default."""
    if not database:
        return "sqlite"
    parts = urllib.parse.urlsplit(database)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return database


# -- the records under the server's home ----------------------------------------------------------------------


def _settings_path() -> Path:
    return server_home() / "settings.json"  # port and database: kept across stops


def _record_path() -> Path:
    return server_home() / "server.json"  # the running process: removed when stopped


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    os.chmod(path, 0o600)  # a database URL may carry a password


def running_server() -> tuple[str, ProcessRecord] | None:
    """The server Baton started for this user, if its process still runs."""
    data = _read_json(_record_path())
    try:
        record = ProcessRecord.from_json(data["process"])
    except (KeyError, TypeError, ValueError):
        return None
    return (str(data["api_url"]), record) if is_running(record) else None


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (as uvicorn binds: connections in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_port(settings: dict[str, Any]) -> int:
    """The port kept from the first start (a stable address); a new one only when something else took it."""
    for port in (settings.get("port"), int(os.environ.get("BATON_SERVER_PORT") or 0) or None, PREFERRED_PORT):
        if isinstance(port, int) and port > 0 and _port_free(port):
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _validate_database(database: str) -> str:
    scheme = urllib.parse.urlsplit(database).scheme
    if scheme.startswith("postgresql"):
        return database.replace("postgresql://", "postgresql+asyncpg://", 1) if scheme == "postgresql" else database
    if scheme.startswith("sqlite"):
        return database
    raise UsageError(f"--database expects a postgresql:// or sqlite:// URL, found {redact(database)!r}; for example "
                     "postgresql://baton:secret@127.0.0.1:5432/prefect.")


# -- start, find, stop ----------------------------------------------------------------------------------------


def ensure_server(database: str | None = None) -> PrefectServer:
    """The Prefect API to use: the user's, Baton's running one, or Baton's started now.

    ``database`` (a ``postgresql://`` URL) chooses the shared server's database; it is kept for later starts. A
    running server on another database is refused with what to do, never silently switched."""
    user = user_api_url()
    if user:
        if database:
            raise UsageError(f"PREFECT_API_URL is set ({user}): Baton does not start a server of its own; unset it to "
                             "use --database.")
        return PrefectServer(user, embedded=False)
    home = server_home()
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home / "server.lock"), timeout=START_TIMEOUT_S + 10):
        settings = _read_json(_settings_path())
        if database:
            database = _validate_database(database)
        # --database, else what the server was started with before, else Prefect's own setting, else SQLite
        wanted = database or settings.get("database") or os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") \
            or os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") or None
        running = running_server()
        if running and database and database != settings.get("database"):
            raise UsageError(f"the shared Prefect server already runs on {redact(settings.get('database'))}; run "
                             "`baton server stop` first, then start it with --database.")
        if running and _answers(running[0]):
            return PrefectServer(running[0], embedded=True, process=running[1], database=redact(wanted))
        if running:  # alive but not answering, even with patience: replace it
            stop_group(running[1], timeout=15)
        return _start(home, settings, wanted)


def _answers(api_url: str) -> bool:
    """Healthy, allowing a busy machine a few slow answers before the server is judged stuck."""
    return any(healthy(api_url, timeout=timeout) for timeout in (2.0, 5.0, 10.0))


def _start(home: Path, settings: dict[str, Any], database: str | None) -> PrefectServer:
    port = _choose_port(settings)
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**QUIET_SERVICES, **os.environ, **prefect_environment(), "PREFECT_UI_ENABLED": "true",
           "PREFECT_SERVER_UI_ENABLED": "true"}
    for name in ("PREFECT_API_URL", MANAGED_MARK):
        env.pop(name, None)
    if database:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log = home / "server.log"
    record = spawn(argv, env=env, cwd=home, stdout=log)

    def exited() -> None:
        if not is_running(record):
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise BatonError(f"the Prefect server exited while starting ({' | '.join(tail) or 'no output'}); "
                             f"see {log}.")

    def too_slow() -> BaseException:
        stop_group(record)
        return BatonError(f"the Prefect server did not answer within {START_TIMEOUT_S:.0f} s; see {log} or set "
                          "PREFECT_API_URL to a running server.")

    wait_for(lambda: healthy(api_url, timeout=1.0), timeout_s=START_TIMEOUT_S, timeout_error=too_slow, abort=exited,
             first_delay_s=0.05, max_delay_s=0.5)
    _write_private(_settings_path(), {"port": port, "database": database})
    _write_private(_record_path(), {"api_url": api_url, "process": record.to_json(), "database": redact(database),
                                    "started_at": datetime.now(UTC).isoformat(timespec="seconds")})
    return PrefectServer(api_url, embedded=True, process=record, database=redact(database))


def stop_server() -> bool:
    """Stop the shared server (history stays in its database). True if one ran."""
    running = running_server()
    _record_path().unlink(missing_ok=True)
    return bool(running) and stop_group(running[1], timeout=15)


def server_status() -> dict[str, Any]:
    """What ``baton server status`` reports: the API in use, whether it answers, who keeps it."""
    user = user_api_url()
    if user:
        return {"api_url": user, "ui_url": user.removesuffix("/api"), "managed_by": "user (PREFECT_API_URL)",
                "running": healthy(user), "pid": None, "database": None, "home": None}
    settings, record = _read_json(_settings_path()), _read_json(_record_path())
    running = running_server()
    api_url = running[0] if running else (f"http://127.0.0.1:{settings['port']}/api" if settings.get("port") else None)
    return {"api_url": api_url, "ui_url": api_url.removesuffix("/api") if api_url else None, "managed_by": "baton",
            "running": bool(running) and healthy(running[0]), "pid": running[1].pid if running else None,
            "database": redact(settings.get("database")), "home": str(server_home()),
            "started_at": record.get("started_at") if running else None}


def legacy_server_record(state_dir: Path) -> ProcessRecord | None:
    """A per-project server an earlier Baton started under ``.baton/prefect`` and that still runs (its history
    stays in that directory's database; nothing migrates)."""
    data = _read_json(Path(state_dir) / "prefect" / "server.json")
    try:
        record = ProcessRecord.from_json(data["process"])
    except (KeyError, TypeError, ValueError):
        return None
    return record if is_running(record) else None
