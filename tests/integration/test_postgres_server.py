"""The shared Prefect server on PostgreSQL: the flow suite run against it, and `baton server start --database`
as a user meets it. A throwaway cluster on 127.0.0.1 (tests/postgres.py) backs both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baton_cli import BATON, ROOT, Result, free_port, ok, processes_under
from postgres import create_database, query

pytestmark = pytest.mark.integration

FLOW_SUITE = "tests/integration/test_flows_local.py"
SERVER_VARS = ("PREFECT_API_URL", "BATON_MANAGED_API_URL", "BATON_HOME", "PREFECT_HOME", "BATON_TEST_DATABASE")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the session server's settings: the child finds its own."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", "BATON_NO_SCHEDULES": "1", "BATON_NO_CUSTODIAN": "1", **extra}


def flow_runs(url: str) -> list[str]:
    """Names of the flow runs Prefect stored in the database at ``url`` (none when it has no tables yet)."""
    if not query(url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'flow_run'"):
        return []
    return [row["name"] for row in query(url, "SELECT name FROM flow_run")]


def gone(*paths: Path, timeout: float = 15) -> list[str]:
    """Processes still under ``paths`` once they had ``timeout`` s to exit (empty when all are gone)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for path in paths for p in processes_under(path)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.mark.timeout(1500)
def test_the_flow_suite_passes_on_a_postgres_backed_server(postgres_url: str, tmp_path: Path) -> None:
    database = create_database(postgres_url, "flow_suite")
    assert flow_runs(database) == []
    inner = tmp_path / "suite"  # everything the suite makes (its BATON_HOME, projects) lives under here
    proc = subprocess.run([sys.executable, "-m", "pytest", FLOW_SUITE, "-q", "-p", "no:cacheprovider",
                           f"--basetemp={inner}"], cwd=ROOT, env=clean_env(BATON_TEST_DATABASE=database),
                          capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, f"flow suite on PostgreSQL failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
    settings = [json.loads(p.read_text()) for p in inner.glob("baton-home[0-9]*/prefect/settings.json")]
    assert [s["database"] for s in settings] == [database], settings  # the session's server was started on it
    names = flow_runs(database)  # and kept the suite's runs in PostgreSQL, not in a SQLite file
    for expected in ("up-shop", "slot-api", "swap-api", "route-weighted-api"):
        assert expected in names, sorted(set(names))
    completed = query(database, "SELECT count(*) AS n FROM flow_run WHERE state_type = 'COMPLETED'")[0]["n"]
    assert completed >= 10, f"only {completed} completed runs recorded"
    assert gone(inner) == []  # its PostgreSQL-backed server and circuits stopped with it


def baton(*args: str, cwd: Path, home: Path, timeout: float = 120) -> Result:
    proc = subprocess.run([str(BATON), *args], cwd=cwd, env=clean_env(BATON_HOME=str(home)), capture_output=True,
                          text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.timeout(600)
def test_baton_server_start_database_runs_flows_on_postgres_and_keeps_it(postgres_url: str, tmp_path: Path) -> None:
    database = create_database(postgres_url, "server_cli")
    secret = "s3cret-pw"  # trust authentication ignores it; it must never be shown
    given = database.replace("postgresql+asyncpg://baton@", f"postgresql://baton:{secret}@")
    shown = database.replace("baton@", "baton:***@")
    home, project = tmp_path / "home", tmp_path / "shop"
    try:
        started = ok(baton("server", "start", "--database", given, "--json", cwd=tmp_path, home=home)).json()
        status = ok(baton("server", "status", "--json", cwd=tmp_path, home=home)).json()
        for info in (started, status):
            assert info["running"] is True and info["managed_by"] == "baton", info
            assert info["database"] == shown and secret not in json.dumps(info), info
            assert info["home"] == str(home / "prefect")
        assert secret not in (home / "prefect" / "server.json").read_text()

        ok(baton("init", str(project), cwd=tmp_path, home=home))
        ok(baton("node", "add", "api", "--port", str(free_port()), cwd=project, home=home))
        ok(baton("up", "--mock", cwd=project, home=home, timeout=180))
        ok(baton("route", "lock", "api", cwd=project, home=home))
        runs = ok(baton("history", "--json", cwd=project, home=home)).json()["runs"]
        assert [r["state"] for r in runs if r["name"] == "route-lock-api"] == ["Completed"], runs
        assert {"up-shop", "route-lock-api"} <= set(flow_runs(database))  # written to PostgreSQL

        ok(baton("down", "--all", cwd=project, home=home))
        assert ok(baton("server", "stop", "--json", cwd=tmp_path, home=home)).json() == {"stopped": True}
        assert baton("server", "status", "--json", cwd=tmp_path, home=home).code == 1
        assert gone(home, project) == []

        ok(baton("server", "start", cwd=tmp_path, home=home))  # no --database: the setting is sticky
        status = ok(baton("server", "status", "--json", cwd=tmp_path, home=home)).json()
        assert status["running"] is True and status["database"] == shown, status
        runs = ok(baton("history", "--json", cwd=project, home=home)).json()["runs"]
        assert "route-lock-api" in [r["name"] for r in runs]  # history outlived the server's restart
    finally:
        if project.exists():
            baton("down", "--all", cwd=project, home=home)
        baton("server", "stop", cwd=tmp_path, home=home)
    assert gone(home, project) == []
