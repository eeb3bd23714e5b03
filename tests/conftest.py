"""Shared fixtures: fresh projects for CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_cli import run_baton


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An initialised, empty project."""
    result = run_baton("init", str(tmp_path / "proj"), "--name", "proj")
    assert result.code == 0, result.stderr
    return tmp_path / "proj"


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    """One real Prefect server for the whole session, shared by every CLI subprocess through
    PREFECT_API_URL (the 'user-configured server' path)."""
    import os

    from baton.prefect_server import ensure_server, prefect_environment, stop_server

    state_dir = tmp_path_factory.mktemp("prefect-session") / ".baton"
    state_dir.mkdir()
    saved = dict(os.environ)
    os.environ.pop("PREFECT_API_URL", None)
    server = ensure_server(state_dir)
    os.environ.update(prefect_environment(state_dir, server.api_url))
    yield server.api_url
    stop_server(state_dir)
    os.environ.clear()
    os.environ.update(saved)
