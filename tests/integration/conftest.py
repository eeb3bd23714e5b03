"""Integration tests all run against the session's Prefect server (see tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_prefect(prefect_api: str) -> str:
    return prefect_api
