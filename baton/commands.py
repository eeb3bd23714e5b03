"""Service commands as users type them (``"python app.py --port $PORT"``), turned
into an argv without a shell: ``$VAR`` and ``${VAR}`` are expanded from the
given environment, shell metacharacters are refused."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from baton.errors import UsageError

__all__ = ["parse_command"]

_SUBSTITUTION = re.compile(r"`|\$\(")
_OPERATOR_CHARS = set(";&|<>()")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def parse_command(command: str, env: Mapping[str, str]) -> list[str]:
    """The argv of ``command`` with variables expanded; no shell is ever involved.

    Unknown variables are an error rather than silently empty, so a typo does
    not start a service with a missing argument.
    """
    text = command.strip()
    if not text:
        raise UsageError("the service command is empty; pass the command that starts the service, e.g. \"python app.py\".")
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError as exc:
        raise UsageError(f"the service command cannot be split into words ({exc}); check its quotes.") from None
    # Quoted text is an argument like any other; an unquoted operator or a substitution would need a shell.
    operator = next((w for w in words if w and set(w) <= _OPERATOR_CHARS), None)
    substitution = _SUBSTITUTION.search(text)
    if operator or substitution or "\n" in text:
        found = operator or (substitution.group() if substitution else "newline")
        raise UsageError(
            f"the service command contains the shell metacharacter {found!r}; Baton runs commands without a "
            "shell, so wrap pipelines or redirections in a script and slot the script."
        )

    def expand(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise UsageError(f"the service command uses ${name}, which is not set; export it or write the value.")
        return env[name]

    return [_VARIABLE.sub(expand, word) for word in words]
