"""Helpers shared by the adapter tests (not a test module): real servers on 127.0.0.1, OS-chosen ports."""

from __future__ import annotations

import sys

import subprocess
import tempfile

import os

import json

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Iterator

from aiohttp import web

from baton_adapter.config import NodeConfig
from baton_adapter.events import EventLog
from baton_adapter.node import Node


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a test coroutine on uvloop when installed (as the adapter does), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def node_config(**fields: Any) -> NodeConfig:
    data: dict[str, Any] = {"name": "api", "port": 0, "management_port": 0}
    data.update(fields)
    return NodeConfig.from_mapping(data)


@contextlib.asynccontextmanager
async def running_node(events: EventLog | None = None, **fields: Any) -> AsyncIterator[Node]:
    """A started node (data and management ports bound on 127.0.0.1), stopped on exit."""
    node = Node(node_config(**fields), events)
    await node.start()
    try:
        yield node
    finally:
        await node.stop(grace_s=2)


@contextlib.asynccontextmanager
async def app_server(app: web.Application) -> AsyncIterator[int]:
    """Serve an aiohttp app on 127.0.0.1; yield its port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def hello_app(text: str = "hello", delay: float = 0.0) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        return web.Response(text=text)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A plain TCP server running ``handler`` per connection; yield its port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


_HELD: list[socket.socket] = []


def refused_port() -> int:
    """A port that refuses connections for the rest of the test session.

    The socket stays bound but never listens, so nothing else (not even a node under test asking the OS for a
    free port) can take the port and connections to it are refused.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return sock.getsockname()[1]


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP head; return status/method line code, lower-case headers and the raw head."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    first = lines[0].split(" ")
    code = int(first[1]) if first[0].startswith("HTTP/") else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return code, headers, raw


async def raw_exchange(port: int, request: bytes, read_body: bool = True) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes to 127.0.0.1:port and read one response (Content-Length or until close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        code, headers, _ = await read_head(reader)
        body = b""
        if read_body:
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                body = await read_chunked(reader)
            else:
                body = await reader.read()
        return code, headers, body
    finally:
        writer.close()


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            await reader.readline()
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(interval)


ADAPTER = [sys.executable, "-m", "baton_adapter"]


class AdapterProcess(subprocess.Popen):
    """An adapter process whose stderr goes to a file, so an adapter that logs a lot never blocks on a full,
    unread pipe; ``communicate`` still answers ``(stdout, stderr)``."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.err_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process's reaping
        super().__init__(argv, stdout=subprocess.PIPE, stderr=self.err_file, text=True, env=env)

    def stderr_text(self) -> str:
        self.err_file.seek(0)
        return self.err_file.read().decode(errors="replace")

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:  # noqa: A002
        out, _ = super().communicate(input, timeout)
        return out, self.stderr_text()


def start_adapter_process(args: list[str], env: dict[str, str] | None = None,
                          program: list[str] | None = None) -> tuple[AdapterProcess, dict[str, Any]]:
    """``python -m baton_adapter ARGS`` (or ``program ARGS``) and its ready line (every node listens), or an
    error with its stderr."""
    proc = AdapterProcess([*(program or ADAPTER), *args], {**os.environ, **(env or {})})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the ready line: every node listens (or the process died)
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(f"adapter exited {proc.returncode}: {proc.stderr_text()}")
    return proc, json.loads(line)


def refused(port: int) -> bool:
    """Nothing listens on ``port`` (a connection is refused)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@contextlib.contextmanager
def grpc_node(**fields: Any) -> Iterator[Node]:
    """A grpc node running on its own event loop in a thread (grpcio's sync clients and servers use threads of
    their own); yields the node."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        async with running_node(mode="grpc", **fields) as node:
            box["node"] = node
            started.set()
            await stop.wait()

    def thread_main() -> None:
        try:
            run(main())
        except BaseException as exc:  # surfaced to the test below
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    assert started.wait(30), "the adapter did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["node"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
    if "error" in box:
        raise box["error"]


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling, from a thread other than the node's) until ``predicate`` holds; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met within the deadline"
        time.sleep(0.01)


def on_loop(node: Node, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run ``coro`` on the node's loop (its thread) and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, node.loop).result(timeout)


class SteadyCalls:
    """``workers`` threads calling ``call()`` back to back until the block ends: each answer is appended to
    ``served``, each ``grpc.RpcError``'s code to ``failed`` (a steady gRPC load for swap and heal tests)."""

    def __init__(self, call: Callable[[], Any], workers: int = 4) -> None:
        self.call = call
        self.served: list[Any] = []
        self.failed: list[Any] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(workers)]

    def _run(self) -> None:
        import grpc

        while not self._stop.is_set():
            try:
                self.served.append(self.call())
            except grpc.RpcError as exc:
                self.failed.append(exc.code())

    def __enter__(self) -> SteadyCalls:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
