"""Every Cloud Run API call passes one gate: the conductor's provider limits (concurrency, calls per window, a
circuit breaker; :class:`baton.custodian.core.ProviderGate`), shared by the threads of one provider, and a
retry of quota errors (429) with exponential backoff, each attempt admitted by the gate again.

A permanent error is never retried; a breaker opened by repeated provider failures refuses at once with why."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from baton.custodian.core import ProviderGate
from baton.errors import BatonError

__all__ = ["ApiGate", "GateRefused", "shared_gate"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class GateRefused(BatonError):
    """The provider's breaker is open: no call goes out until it cools down."""


class ApiGate:
    def __init__(self, limits: ProviderGate | None = None, *, retries: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, clock: Callable[[], float] = time.monotonic) -> None:
        # Cloud Run's Admin API allows about 1,000 reads and 180 writes a minute per region; operation polls
        # count, so the window is set for reads and writes together, below the sum
        self.limits = limits or ProviderGate(concurrency=4, rate=600, window_s=60.0, breaker_after=5,
                                             breaker_cooldown_s=30.0)
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.retried = 0  # quota errors retried since the gate was made
        self.waited_s = 0.0  # time calls spent held by the limits
        self._cond = threading.Condition()

    def call(self, what: str, fn: Callable[[], T], *, retryable: Callable[[BaseException], bool]) -> T:
        """``fn()`` admitted by the gate; quota errors (``retryable``) retried up to ``retries`` times."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            self._enter(what)
            try:
                result = fn()
            except BaseException as exc:
                transient = retryable(exc)
                self._leave(ok=False, blame="provider" if transient else "caller")
                if not transient or attempt == self.retries:
                    raise
                self.retried += 1
                log.info("%s hit a quota error; retry %d of %d in %.1f s", what, attempt + 1, self.retries, delay)
                threading.Event().wait(delay)  # backoff before the next attempt
                delay = min(delay * 2, self.max_backoff_s)
            else:
                self._leave(ok=True, blame="")
                return result
        raise AssertionError("unreachable")

    def _enter(self, what: str) -> None:
        with self._cond:
            while True:
                now = self.clock()
                reason = self.limits.admits(now)
                if not reason:
                    self.limits.opened(now)
                    return
                if "breaker" in reason:
                    raise GateRefused(f"{what} was not sent: {reason}; it cools down in "
                                      f"{max(0.0, self.limits.open_until - now):.0f} s.")
                # a slot frees when a call ends (notify) or when the oldest call leaves the rate window
                wait = None if self.limits.in_flight >= self.limits.concurrency else \
                    max(0.01, self.limits.started[0] + self.limits.window_s - now)
                self._cond.wait(wait)
                self.waited_s += self.clock() - now

    def _leave(self, *, ok: bool, blame: str) -> None:
        with self._cond:
            self.limits.closed(ok, blame, self.clock())
            self._cond.notify_all()

    def to_json(self) -> dict[str, object]:
        with self._cond:
            return {**self.limits.to_json(self.clock()), "retried": self.retried, "waited_s": round(self.waited_s, 2)}


_SHARED: dict[str, ApiGate] = {}
_SHARED_LOCK = threading.Lock()


def shared_gate(name: str) -> ApiGate:
    """The one gate of provider ``name`` in this process: every flow the conductor runs (and every step of a
    flow, each with its own provider object) draws on the same limits, as its event core's dispatch does."""
    with _SHARED_LOCK:
        if name not in _SHARED:
            _SHARED[name] = ApiGate()
        return _SHARED[name]
