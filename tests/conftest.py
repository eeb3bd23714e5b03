"""Shared fixtures: fresh projects for CLI tests, the session's Baton directory, the Docker engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_cli import run_baton


@pytest.fixture(scope="session")
def docker_client():
    """A client of the Docker engine (the docker and cloudrun layers); skipped where none answers, failed when
    BATON_REQUIRE_DOCKER is set (CI)."""
    import os

    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable engine here
        if os.environ.get("BATON_REQUIRE_DOCKER"):
            pytest.fail(f"BATON_REQUIRE_DOCKER is set but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine answers ({exc}); .ci/run installs and starts one")
    yield client
    client.close()


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An initialised, empty project."""
    result = run_baton("init", str(tmp_path / "proj"), "--name", "proj")
    assert result.code == 0, result.stderr
    return tmp_path / "proj"


@pytest.fixture(scope="session", autouse=True)
def baton_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's own Baton directory: no test touches the user's ~/.baton or its shared Prefect server."""
    import os

    home = tmp_path_factory.mktemp("baton-home")
    saved = {k: os.environ.get(k) for k in ("BATON_HOME", "PREFECT_API_URL", "BATON_MANAGED_API_URL")}
    os.environ["BATON_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("BATON_MANAGED_API_URL", None)
    yield home
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="session")
def prefect_api(baton_home: Path):
    """One real Prefect server for the whole session: Baton's shared server under the session's BATON_HOME,
    used by every CLI subprocess. ``BATON_TEST_DATABASE`` (a postgresql:// URL) backs it with PostgreSQL."""
    import os

    from baton.prefect_server import ensure_server, prefect_environment, stop_server

    saved = dict(os.environ)
    server = ensure_server(database=os.environ.get("BATON_TEST_DATABASE") or None)
    os.environ.update(prefect_environment(server))
    yield server.api_url
    stop_server()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A throwaway PostgreSQL cluster for the session (tests/postgres.py): the URL of an empty database on it,
    ``postgresql+asyncpg://baton@127.0.0.1:PORT/DB``. Skipped when PostgreSQL is not installed, unless
    ``BATON_REQUIRE_POSTGRES=1`` (CI), which fails instead."""
    import os

    from postgres import PostgresUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("BATON_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"BATON_REQUIRE_POSTGRES=1 but {exc}")
        pytest.skip(str(exc))
    try:
        yield cluster.url
    finally:
        cluster.stop()
