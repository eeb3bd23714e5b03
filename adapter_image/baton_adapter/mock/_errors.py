"""The mock engine's errors: one root, one sentence each."""

from __future__ import annotations

__all__ = ["ContractError", "MockError"]


class MockError(Exception):
    """Root of every error the mock engine raises."""


class ContractError(MockError):
    """A contract cannot be read, resolved or served.

    The message is one sentence naming the file and the place, what was expected, what was found and
    what to do, e.g. ``contracts/users.yaml line 14: expected a mapping under paths./users.get.responses,
    found a list; fix the contract``.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
