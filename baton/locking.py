"""One way to hold a lock file across Baton's processes: an ``flock`` (through ``filelock``), released by the
kernel when the holder dies, waited for up to a deadline, and refused then in one sentence naming the file and
who is likely holding it. A sync face (commands, flows' steps) and an async one (the conductor's loops, which
must not block while they wait)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from baton.errors import LockTimeout

__all__ = ["held", "held_async"]


def _refusal(path: Path, label: str, holder: str, timeout_s: float) -> LockTimeout:
    return LockTimeout(f"{holder} has held {label or path} for {timeout_s:.0f} s; wait for it to finish and retry.")


@contextlib.contextmanager
def held(path: Path, timeout_s: float, holder: str, *, label: str = "", mode: int = 0o644) -> Iterator[None]:
    """Hold the lock file ``path`` (created with ``mode``) for the block; ``LockTimeout`` after ``timeout_s``,
    saying that ``holder`` (e.g. "another baton command") has it."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), mode=mode, thread_local=False)
    try:
        lock.acquire(timeout=timeout_s, poll_interval=0.02)
    except Timeout:
        raise _refusal(path, label, holder, timeout_s) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.asynccontextmanager
async def held_async(path: Path, timeout_s: float, holder: str, *, label: str = "",
                     mode: int = 0o644) -> AsyncIterator[None]:
    """``held`` for an event loop: the wait does not block it."""
    from filelock import AsyncFileLock, Timeout

    lock = AsyncFileLock(str(path), mode=mode)
    try:
        await lock.acquire(timeout=timeout_s, poll_interval=0.05)
    except Timeout:
        raise _refusal(path, label, holder, timeout_s) from None
    try:
        yield
    finally:
        await lock.release()
