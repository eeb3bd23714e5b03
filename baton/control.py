"""The client of an adapter's management API (JSON over HTTP, bearer token).

aiohttp with explicit timeouts; tenacity retries one connection-level call a
few times (an adapter that is restarting), never an answered request, so
retries do not multiply with the task retries above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from baton.errors import BatonError

__all__ = ["ControlClient", "ControlError", "ControlUnreachable", "RoutingLocked", "InvalidRequest"]


class ControlError(BatonError):
    """The adapter answered with an error."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ControlUnreachable(ControlError):
    """No adapter answers on the management port."""


class RoutingLocked(ControlError):
    """423: the node's routing is locked."""


class InvalidRequest(ControlError):
    """400: the adapter refused the request body."""


@dataclass(frozen=True)
class ControlClient:
    node: str
    host: str
    port: int
    token: str | None = None
    timeout_s: float = 5.0
    connect_attempts: int = 3

    @classmethod
    def for_node(cls, config: Any, name: str, *, timeout_s: float = 5.0, connect_attempts: int = 3,
                 state_dir: Any = None) -> ControlClient:
        """The client of ``name``'s adapter as ``config`` (a CircuitConfig) declares it, token included.

        Without a configured token, a token the provider generated (``.baton/control_token``) is used.
        """
        import os
        from pathlib import Path

        node = config.node(name)
        control = config.security.control
        token = os.environ.get(control.token_env) if control.auth and control.token_env else None
        if token is None and state_dir is not None:
            generated = Path(state_dir) / "control_token"
            token = generated.read_text().strip() if generated.is_file() else None
        host = "127.0.0.1" if node.host in ("0.0.0.0", "::") else node.host  # a wildcard bind answers on loopback
        return cls(name, host, node.management_port, token=token, timeout_s=timeout_s,
                   connect_attempts=connect_attempts)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def request(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s, connect=min(2.0, timeout_s or self.timeout_s))
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(aiohttp.ClientConnectionError),
                stop=stop_after_attempt(self.connect_attempts),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                reraise=True,
            ):
                with attempt:
                    async with aiohttp.ClientSession(timeout=timeout) as session:
                        async with session.request(method, self.base_url + path, json=body, headers=headers) as resp:
                            payload = await resp.json(content_type=None) if resp.content_length != 0 else None
                            status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ControlUnreachable(
                f"the adapter of node {self.node} does not answer on {self.base_url} ({type(exc).__name__}); "
                "is the circuit up? Run `baton up` or `baton status`.",
            ) from exc
        if status < 400:
            return payload
        message = (payload or {}).get("error") if isinstance(payload, dict) else None
        message = message or f"HTTP {status}"
        if not message.startswith(f"node {self.node}"):
            message = f"node {self.node}: {message}"
        if status == 423:
            raise RoutingLocked(f"node {self.node}: routing is locked; run `baton route unlock {self.node}` first.",
                                status)
        if status == 400:
            raise InvalidRequest(message, status)
        if status in (401, 503):
            raise ControlError(f"{message}; check the management token (security.control.token_env).", status)
        raise ControlError(message, status)

    def request_sync(self, method: str, path: str, body: Any = None) -> Any:
        """One blocking call (for rollback hooks, which Prefect runs synchronously)."""
        import json
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - loopback adapter
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ControlError(f"node {self.node}: HTTP {exc.code} from {path}", exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ControlUnreachable(f"the adapter of node {self.node} does not answer on {self.base_url}.") from exc

    async def health(self) -> dict[str, Any]:
        return await self.request("GET", "/health")

    async def status(self) -> dict[str, Any]:
        return await self.request("GET", "/status")

    async def routing(self) -> dict[str, Any]:
        return await self.request("GET", "/routing")

    async def metrics(self) -> dict[str, Any]:
        return await self.request("GET", "/metrics")

    async def set_backend(self, backend: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/backend", backend)

    async def set_routing(self, routing: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/routing", routing)

    async def set_locked(self, locked: bool) -> dict[str, Any]:
        return await self.request("POST", "/routing", {"locked": locked})

    async def drain(self, host: str, port: int, timeout_s: float = 30.0) -> dict[str, Any]:
        return await self.request("POST", "/drain", {"host": host, "port": port, "timeout_s": timeout_s},
                                  timeout_s=timeout_s + 5)
