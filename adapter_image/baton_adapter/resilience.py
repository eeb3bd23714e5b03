"""Per-target circuit breakers and the node's retry budget (pure state, injected clock)."""

from __future__ import annotations

import time
from enum import Enum
from typing import Callable

__all__ = ["BreakerState", "CircuitBreaker", "RetryBudget", "IDEMPOTENT_METHODS"]

IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown_s`` lets one probe through.

    The probe's success closes the breaker, its failure opens it again. ``threshold == 0`` disables it.
    """

    __slots__ = ("threshold", "cooldown_s", "state", "failures", "opened_at", "probing", "_clock")

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False
        self._clock = clock

    def available(self) -> bool:
        """Whether a request could be sent now (does not claim the half-open probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return self._clock() - self.opened_at >= self.cooldown_s
        return not self.probing

    def acquire(self) -> bool:
        """Claim the right to send one request; in half-open state only one probe is let through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            if self._clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        if self.state is not BreakerState.CLOSED:
            self.state = BreakerState.CLOSED
            self.probing = False

    def failure(self) -> None:
        if self.threshold <= 0:
            return
        if self.state is BreakerState.HALF_OPEN:
            self._open()
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self._open()

    def release(self) -> None:
        """Give back an unused half-open probe (its request ended with no verdict)."""
        if self.state is BreakerState.HALF_OPEN:
            self.probing = False

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self._clock()
        self.probing = False


class RetryBudget:
    """Retries limited to ``ratio`` of requests: each request deposits ``ratio``, each retry spends 1.

    A small initial reserve (``reserve`` retries) lets a quiet node retry at all; the balance is capped.
    """

    __slots__ = ("ratio", "balance", "cap")

    def __init__(self, ratio: float = 0.2, reserve: float = 10.0, cap: float = 100.0) -> None:
        self.ratio = ratio
        self.balance = reserve
        self.cap = cap

    def deposit(self) -> None:
        balance = self.balance + self.ratio
        self.balance = balance if balance < self.cap else self.cap

    def withdraw(self) -> bool:
        if self.balance >= 1.0:
            self.balance -= 1.0
            return True
        return False
