"""The one error root of the control plane and its small tree.

Every message is one sentence: what was expected, what was found, what to do.
Only the CLI turns these into exit codes (``exit_code``): 2 for usage errors,
1 for everything else.
"""

from __future__ import annotations

__all__ = [
    "BatonError",
    "UsageError",
    "ConfigError",
    "ContractError",
    "ProjectError",
    "LockTimeout",
    "CertificateError",
]


class BatonError(Exception):
    """Root of every error Baton reports to a user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(BatonError):
    """The command was called with arguments that cannot work."""

    exit_code = 2


class ConfigError(BatonError):
    """A configuration file is malformed or invalid."""


class ContractError(BatonError):
    """A contract file does not parse as OpenAPI 3.x or JSON Schema."""


class ProjectError(BatonError):
    """No project where one was expected, or its files cannot be used."""


class LockTimeout(BatonError):
    """Another Baton command held the project lock for too long."""


class CertificateError(BatonError):
    """A certificate or key file cannot be used: missing, not PEM, not matching its key, outside its validity,
    or a chain whose certificates do not sign one another."""
