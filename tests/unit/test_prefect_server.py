"""The shared server's pure parts: whose PREFECT_API_URL it is, database URLs, the Baton directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import prefect_server
from baton.errors import UsageError
from baton.prefect_server import PrefectServer, prefect_environment, redact, user_api_url


def test_a_url_baton_chose_is_not_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    server = PrefectServer("http://127.0.0.1:4200/api", embedded=True)
    for key, value in prefect_environment(server).items():
        monkeypatch.setenv(key, value)
    assert user_api_url() is None  # a child of a Baton process still manages the server itself
    monkeypatch.setenv("PREFECT_API_URL", "https://team.example/api/")
    assert user_api_url() == "https://team.example/api"  # the user's own wins


def test_the_users_server_is_never_marked_as_batons() -> None:
    env = prefect_environment(PrefectServer("https://team.example/api", embedded=False))
    assert env["PREFECT_API_URL"] == "https://team.example/api" and prefect_server.MANAGED_MARK not in env


def test_database_urls_are_redacted_and_checked() -> None:
    assert redact(None) == "sqlite"
    assert redact("postgresql+asyncpg://baton:s3cret@127.0.0.1:5432/prefect") == \
        "postgresql+asyncpg://baton:***@127.0.0.1:5432/prefect"
    assert prefect_server._validate_database("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    with pytest.raises(UsageError, match="postgresql:// or sqlite://"):
        prefect_server._validate_database("mysql://u:p@h/db")


def test_the_baton_directory_follows_baton_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))
    assert prefect_server.server_home() == (tmp_path / "home" / "prefect").resolve()
    monkeypatch.delenv("BATON_HOME")
    assert prefect_server.baton_home() == (Path.home() / ".baton").resolve()


def test_a_user_url_refuses_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "https://team.example/api")
    monkeypatch.delenv(prefect_server.MANAGED_MARK, raising=False)
    with pytest.raises(UsageError, match="PREFECT_API_URL is set"):
        prefect_server.ensure_server(database="postgresql://u:p@h/db")
    assert prefect_server.ensure_server().api_url == "https://team.example/api"
