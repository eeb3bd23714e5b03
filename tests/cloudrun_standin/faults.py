"""Injected failures: the next N API calls (of one method, or any) answer a Google API error."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Fault", "Faults", "STATUS_NAMES"]

STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass
class Fault:
    code: int
    message: str
    method: str = "*"  # an API method name (createService, getService, ...) or * for any
    times: int = 1  # how many calls it hits; -1: every call until cleared


@dataclass
class Faults:
    pending: list[Fault] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    def add(self, fault: Fault) -> None:
        self.pending.append(fault)

    def clear(self) -> None:
        self.pending.clear()

    def take(self, method: str) -> Fault | None:
        """Count the call; the fault it meets, if any (used up when its count runs out)."""
        self.calls[method] = self.calls.get(method, 0) + 1
        for fault in self.pending:
            if fault.method in ("*", method):
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.pending.remove(fault)
                return fault
        return None
