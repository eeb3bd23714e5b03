"""A task cancelled while it waits for the project lock never leaves the lock held."""

from __future__ import annotations

import asyncio
from pathlib import Path

from filelock import FileLock

from baton.project import enter_in_thread


def test_a_cancelled_waiter_does_not_keep_the_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "project.lock")
    holder = FileLock(path, thread_local=False)
    holder.acquire()

    async def main() -> None:
        waiter = FileLock(path, thread_local=False, timeout=10)
        task = asyncio.ensure_future(enter_in_thread(waiter))
        await asyncio.sleep(0.2)  # it waits in its thread
        task.cancel()
        holder.release()  # now the thread gets the lock, after its task was cancelled
        try:
            await task
        except asyncio.CancelledError:
            pass
        for _ in range(100):  # the late acquisition is released at once
            probe = FileLock(path, thread_local=False)
            try:
                probe.acquire(timeout=0)
                probe.release()
                return
            except Exception:  # noqa: BLE001 - still held: look again
                await asyncio.sleep(0.05)
        raise AssertionError("the lock stayed held by a cancelled waiter")

    asyncio.run(main())
