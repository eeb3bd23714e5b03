"""Reading the running adapters' telemetry over their management API (one kept-alive aiohttp session for all of
them, explicit timeouts, the project's management token): ``/metrics``, ``/signals``, ``/events`` and
``/metrics/prometheus``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from baton.control import ControlClient
from baton.errors import BatonError
from baton.state import StateStore

__all__ = ["AdapterReader", "ReadError", "read_all", "running_nodes"]

TIMEOUT = aiohttp.ClientTimeout(total=5.0, connect=2.0)
CONCURRENCY = 16


class ReadError(BatonError):
    """An adapter did not answer, or answered with an error or with something that is not what was asked for."""


def running_nodes(config: Any, state_dir: Path) -> list[str]:
    """Nodes whose adapter host state records as started, in baton.yaml's order (none while the circuit is down)."""
    state = StateStore(state_dir).load()
    if not state.running:
        return []
    return [n.name for n in config.nodes
            if n.name in state.adapters and state.adapters[n.name].host_id in state.hosts]


@dataclass(frozen=True)
class AdapterReader:
    """GETs on one node's management API through a shared session."""

    node: str
    base_url: str
    token: str | None
    session: aiohttp.ClientSession

    @classmethod
    def of(cls, config: Any, state_dir: Path, node: str, session: aiohttp.ClientSession) -> AdapterReader:
        client = ControlClient.for_node(config, node, state_dir=state_dir)
        return cls(node, client.base_url, client.token, session)

    async def text(self, path: str) -> str:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self.session.get(self.base_url + path, headers=headers, timeout=TIMEOUT) as resp:
                body = await resp.text()
                if resp.status >= 400:
                    raise ReadError(f"node {self.node}: the adapter answered {resp.status} to GET {path}: "
                                    f"{_error_of(body)}")
                return body
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
            raise ReadError(f"the adapter of node {self.node} does not answer on {self.base_url} "
                            f"({type(exc).__name__}); is the circuit up? Run `baton status`.") from exc

    async def json(self, path: str) -> Any:
        body = await self.text(path)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ReadError(f"node {self.node}: GET {path} answered something that is not JSON.") from exc

    async def records(self, path: str) -> list[dict[str, Any]]:
        """A JSON list of objects (``/signals``, ``/events``)."""
        found = await self.json(path)
        if not isinstance(found, list):
            raise ReadError(f"node {self.node}: GET {path} answered {type(found).__name__}, expected a list.")
        return [r for r in found if isinstance(r, dict)]


def _error_of(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200]
    return str(data.get("error") if isinstance(data, dict) else data)[:200]


async def read_all(config: Any, state_dir: Path, nodes: Sequence[str], path: str, *,
                   as_text: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """``GET path`` of every node at once (at most ``CONCURRENCY`` in flight): (node -> answer, node -> why it
    has none)."""
    limit = asyncio.Semaphore(CONCURRENCY)
    answers: dict[str, Any] = {}
    failures: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:

        async def one(node: str) -> None:
            async with limit:
                try:
                    reader = AdapterReader.of(config, state_dir, node, session)
                    answers[node] = await (reader.text(path) if as_text else reader.json(path))
                except BatonError as exc:
                    failures[node] = exc.message

        await asyncio.gather(*(one(n) for n in nodes))
    return {n: answers[n] for n in nodes if n in answers}, {n: failures[n] for n in nodes if n in failures}
