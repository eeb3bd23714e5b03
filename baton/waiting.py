"""Waiting for something to become ready: the one polling helper of the control plane.

Every wait polls a check with a growing delay (never a fixed sleep standing in for readiness), fails fast
when what it waits for is gone (``abort`` raises), and ends in one clear error at the deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from baton.errors import BatonError

__all__ = ["WaitTimeout", "wait_for", "wait_for_async"]

T = TypeVar("T")


class WaitTimeout(BatonError):
    """What we waited for did not happen before the deadline."""


def _timeout_error(timeout_error: str | Callable[[], BaseException]) -> BaseException:
    return WaitTimeout(timeout_error) if isinstance(timeout_error, str) else timeout_error()


def wait_for(check: Callable[[], T], *, timeout_s: float, timeout_error: str | Callable[[], BaseException],
             abort: Callable[[], None] | None = None, first_delay_s: float = 0.02, max_delay_s: float = 0.25) -> T:
    """The first truthy value of ``check()``; ``abort()`` raises when waiting longer is pointless (the process
    died); at the deadline, ``timeout_error`` (a message, or a factory of the exception) is raised."""
    deadline = time.monotonic() + timeout_s
    delay = first_delay_s
    while True:
        value = check()
        if value:
            return value
        if abort is not None:
            abort()
        if time.monotonic() >= deadline:
            raise _timeout_error(timeout_error)
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_delay_s)


async def wait_for_async(check: Callable[[], Awaitable[T] | T], *, timeout_s: float,
                         timeout_error: str | Callable[[], BaseException],
                         abort: Callable[[], Awaitable[None] | None] | None = None,
                         first_delay_s: float = 0.02, max_delay_s: float = 0.25) -> T:
    """:func:`wait_for` on an event loop; ``check`` and ``abort`` may be coroutines."""
    deadline = time.monotonic() + timeout_s
    delay = first_delay_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if abort is not None:
            aborted = abort()
            if inspect.isawaitable(aborted):
                await aborted
        if time.monotonic() >= deadline:
            raise _timeout_error(timeout_error)
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_delay_s)
