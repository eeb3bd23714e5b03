"""Integration fixtures: one real Prefect server for the whole session, shared by
every CLI subprocess through PREFECT_API_URL (the 'user-configured server' path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baton.prefect_server import ensure_server, prefect_environment, stop_server



@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
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
