"""Service commands as users type them (``"python app.py --port $PORT"``), turned
into an argv without a shell: ``$VAR`` and ``${VAR}`` are expanded from the
given environment, shell metacharacters are refused."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from baton.errors import UsageError

__all__ = ["parse_command"]

_METACHARACTERS = re.compile(r"[;&|<>`]|\$\(|\n")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def parse_command(command: str, env: Mapping[str, str]) -> list[str]:
    """The argv of ``command`` with variables expanded; no shell is ever involved.

    Unknown variables are an error rather than silently empty, so a typo does
    not start a service with a missing argument.
    """
    text = command.strip()
    if not text:
        raise UsageError("the service command is empty; pass the command that starts the service, e.g. \"python app.py\".")
    bad = _METACHARACTERS.search(text)
    if bad:
        raise UsageError(
            f"the service command contains the shell metacharacter {bad.group()!r}; Baton runs commands without a "
            "shell, so wrap pipelines or redirections in a script and slot the script."
        )
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"the service command cannot be split into words ({exc}); check its quotes.") from None

    def expand(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise UsageError(f"the service command uses ${name}, which is not set; export it or write the value.")
        return env[name]

    return [_VARIABLE.sub(expand, word) for word in words]
