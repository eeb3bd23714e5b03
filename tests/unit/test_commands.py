"""Service commands: no shell, variables expanded, metacharacters refused."""

from __future__ import annotations

import pytest

from baton.commands import parse_command
from baton.errors import UsageError

ENV = {"BATON_SERVICE_PORT": "9100", "HOME": "/home/u"}


def test_plain_words_and_quotes() -> None:
    assert parse_command("python -m http.server 8002", ENV) == ["python", "-m", "http.server", "8002"]
    assert parse_command("app --name 'two words'", ENV) == ["app", "--name", "two words"]


def test_variables_expand_inside_words() -> None:
    assert parse_command("app --port $BATON_SERVICE_PORT --dir ${HOME}/data", ENV) == [
        "app", "--port", "9100", "--dir", "/home/u/data"]


@pytest.mark.parametrize("command", ["a; rm -rf /", "a && b", "a | b", "a > out", "a < in", "echo `id`", "echo $(id)", "a &"])
def test_metacharacters_are_refused(command: str) -> None:
    with pytest.raises(UsageError, match="metacharacter"):
        parse_command(command, ENV)


def test_unknown_variables_and_bad_quotes_and_empty() -> None:
    with pytest.raises(UsageError, match=r"\$NOPE"):
        parse_command("app $NOPE", ENV)
    with pytest.raises(UsageError, match="quotes"):
        parse_command("app 'unclosed", ENV)
    with pytest.raises(UsageError, match="empty"):
        parse_command("   ", ENV)


def test_quoted_metacharacters_are_plain_arguments() -> None:
    assert parse_command("python -c 'import time; time.sleep(1)'", ENV) == ["python", "-c", "import time; time.sleep(1)"]
    assert parse_command('app --filter "a|b" --x "<y>"', ENV) == ["app", "--filter", "a|b", "--x", "<y>"]
