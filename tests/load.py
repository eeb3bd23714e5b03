"""A steady load for tests that must prove no request is lost (swaps, canaries)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter

import aiohttp


class Load:
    """Steady concurrent GETs against a URL in a background thread; counts statuses."""

    def __init__(self, url: str, workers: int = 8) -> None:
        self.url, self.workers = url, workers
        self.statuses: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.started = self.elapsed = 0.0

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            try:
                async with session.get(self.url) as resp:
                    body = await resp.read()
                    self.statuses[str(resp.status)] += 1
                    if resp.status == 200:
                        self.versions[json.loads(body).get("version", "?")] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.statuses[type(exc).__name__] += 1

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session) for _ in range(self.workers)))

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)
        self.elapsed = time.monotonic() - self.started

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def flowing(self, answers: int = 20, timeout: float = 10.0) -> None:
        """Wait until ``answers`` more requests have been answered (the load really runs, before and after the
        action under test), rather than sleeping for a guess."""
        target = self.total + answers
        deadline = time.monotonic() + timeout
        while self.total < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"the load did not get {answers} answers within {timeout:g} s: {self.statuses}")
            time.sleep(0.01)
