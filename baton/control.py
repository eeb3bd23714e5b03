"""The client of an adapter's management API (JSON over HTTP, bearer token), and where that token comes from.

Every adapter requires a token, on every provider. By default it is generated once per project into
``.baton/control_token`` (mode 0600 from its creation); ``security.control.token_env`` names an
environment variable to take it from instead, and then that variable must be set wherever Baton runs.
The CLI, the conductor and flows find it here (:meth:`ControlClient.for_node`).

aiohttp with explicit timeouts; tenacity retries one connection-level call a
few times (an adapter that is restarting), never an answered request, so
retries do not multiply with the task retries above.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from baton.errors import BatonError

__all__ = ["ControlClient", "ControlError", "ControlUnreachable", "RoutingLocked", "InvalidRequest",
           "ControlTokenMissing", "GENERATED_TOKEN_ENV", "TOKEN_FILE", "EVENTS_TOKEN_FILE", "token_env",
           "control_token", "events_token", "ensure_token_file", "read_token_file"]

GENERATED_TOKEN_ENV = "BATON_CONTROL_TOKEN"  # the variable an adapter reads the generated token from
TOKEN_FILE = "control_token"
EVENTS_TOKEN_FILE = "events_token"  # the events-only token, for services started outside Baton


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


class ControlTokenMissing(ControlError):
    """``security.control.token_env`` names a variable this process does not have."""


# -- the token -------------------------------------------------------------------------------------------------


def token_env(config: Any) -> str:
    """The variable every adapter of ``config`` reads its management token from."""
    return config.security.control.token_env or GENERATED_TOKEN_ENV


def read_token_file(state_dir: str | Path) -> str | None:
    """The generated token of the project at ``state_dir`` (None until one is generated)."""
    try:
        return (Path(state_dir) / TOKEN_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def ensure_token_file(state_dir: str | Path) -> str:
    """The project's generated token, generating it first if needed.

    The file is created with mode 0600 (never readable by others, not even for an instant), written in full
    under a temporary name and then linked into place, so readers never see half a token and two processes
    generating at once agree on the first one linked.
    """
    path = Path(state_dir) / TOKEN_FILE
    existing = read_token_file(state_dir)
    if existing:
        if path.stat().st_mode & 0o077:  # one written by an older Baton: make it private
            os.chmod(path, 0o600)
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)  # fails if another process linked its token first: that one wins
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)
    token = read_token_file(state_dir)
    assert token  # linked above, by us or by a concurrent generator
    return token


def control_token(config: Any, state_dir: str | Path | None, *, create: bool = False) -> str | None:
    """The management token of ``config``'s adapters: from ``security.control.token_env`` when set (a missing
    variable is an error naming it), else the project's generated token (generated when ``create``)."""
    name = config.security.control.token_env
    if name:
        value = os.environ.get(name, "").strip()
        if not value:
            raise ControlTokenMissing(
                f"security.control.token_env names {name}, which is not set in the environment of this process "
                f"(pid {os.getpid()}); export {name} in the shell that runs Baton (a conductor started without it "
                f"keeps lacking it: `baton down --all`, then run again with {name} exported), or remove token_env "
                "to use the token Baton generates in .baton/control_token."
            )
        return value
    if state_dir is None:
        return None
    return ensure_token_file(state_dir) if create else read_token_file(state_dir)


def events_token(config: Any, state_dir: str | Path | None, *, create: bool = False) -> str | None:
    """The events-only token of ``config``'s adapters (what slotted services get as ``BATON_EVENTS_TOKEN``: it
    opens ``POST /events`` and nothing else), derived from the management token as the adapters derive it
    (:mod:`baton_adapter.event_token`). With ``create``, the management token is generated when needed and the
    events token written to ``.baton/events_token`` (mode 0600) for services started by hand."""
    from baton_adapter.event_token import events_token as derive

    management = control_token(config, state_dir, create=create)
    if management is None:
        return None
    token = derive(management)
    if create and state_dir is not None:
        path = Path(state_dir) / EVENTS_TOKEN_FILE
        try:
            current = path.read_text().strip()
        except OSError:
            current = ""
        if current != token:
            from baton.config.document import atomic_write_text

            atomic_write_text(path, token + "\n", mode=0o600)
    return token


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
        """The client of ``name``'s adapter as ``config`` (a CircuitConfig) declares it, token included (see
        :func:`control_token`; ``ControlTokenMissing`` when ``token_env`` names an unset variable)."""
        node = config.node(name)
        token = control_token(config, state_dir)
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
        if status == 401:
            raise ControlError(
                f"node {self.node}: the adapter refused {'the' if self.token else 'a request without a'} management "
                "token (401); Baton uses .baton/control_token, or the variable security.control.token_env names: an "
                "adapter started with another token must be restarted (`baton down`, then `baton up`).", status)
        if status == 503:
            raise ControlError(f"{message} (503: the adapter was started without its management token; restart it "
                               "with `baton down`, then `baton up`).", status)
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

    async def tls(self) -> dict[str, Any]:
        """What the data port serves (``GET /tls``: enabled, current and staged certificates)."""
        return await self.request("GET", "/tls")

    async def stage_tls(self, cert_pem: str, key_pem: str, ca_pem: str | None = None) -> dict[str, Any]:
        """Check and stage a certificate without serving it (400, InvalidRequest, when it is unusable)."""
        body = {"cert_pem": cert_pem, "key_pem": key_pem, **({"ca_pem": ca_pem} if ca_pem else {})}
        return await self.request("PUT", "/tls/staged", body)

    async def commit_tls(self, fingerprint: str) -> dict[str, Any]:
        """New connections get the staged certificate (idempotent for the same fingerprint)."""
        return await self.request("POST", "/tls/commit", {"fingerprint_sha256": fingerprint})

    async def abort_tls(self) -> dict[str, Any]:
        return await self.request("DELETE", "/tls/staged")

    async def taint(self, since: int = 0) -> dict[str, Any]:
        """The node's taint state and its sightings after ``since`` (``GET /taint``, at most 1,000, oldest first)."""
        return await self.request("GET", f"/taint?since={int(since)}")

    async def set_taint(self, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the node's taint state (``PUT /taint``: enabled, generation, canaries, seed)."""
        return await self.request("PUT", "/taint", body)

    async def clear_taint(self) -> dict[str, Any]:
        """Stop scanning; forget canaries and sightings (``DELETE /taint``)."""
        return await self.request("DELETE", "/taint")

    async def drain(self, host: str, port: int, timeout_s: float = 30.0) -> dict[str, Any]:
        return await self.request("POST", "/drain", {"host": host, "port": port, "timeout_s": timeout_s},
                                  timeout_s=timeout_s + 5)


async def served_fingerprints(config: Any, state_dir: Any, nodes: Any) -> dict[str, str]:
    """What each node's adapter says its data port serves (``GET /tls``): node -> SHA-256 fingerprint; a node
    whose adapter does not answer, or serves no TLS, is left out."""
    import asyncio

    async def one(name: str) -> tuple[str, str]:
        try:
            client = ControlClient.for_node(config, name, timeout_s=2.0, connect_attempts=1, state_dir=state_dir)
            answer = await client.tls()
        except ControlError:
            return name, ""
        return name, ((answer or {}).get("current") or {}).get("fingerprint_sha256", "")

    return {name: fp for name, fp in await asyncio.gather(*(one(n) for n in nodes)) if fp}
