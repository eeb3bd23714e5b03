"""Backend health probes: an HTTP GET of the node's health path, or a TCP connect for non-HTTP nodes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .config import validate_health_path

__all__ = ["ProbeResult", "probe_http", "probe_tcp", "HTTP_MODES"]

HTTP_MODES = frozenset({"http", "soap"})


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    latency_ms: float
    detail: str


async def probe_tcp(host: str, port: int, timeout_s: float) -> ProbeResult:
    """Healthy when a TCP connection opens within ``timeout_s``."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, _ms(started), f"tcp connect to {host}:{port} failed: {exc!r}")
    writer.close()
    return ProbeResult(True, _ms(started), f"tcp connect to {host}:{port} ok")


async def probe_http(host: str, port: int, path: str, timeout_s: float) -> ProbeResult:
    """Healthy when ``GET path`` answers a status below 500 within ``timeout_s``."""
    path = validate_health_path(path)
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: baton-adapter-health\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
            )
            line = await reader.readline()
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, _ms(started), f"GET {path} on {host}:{port} failed: {exc!r}")
    finally:
        if writer is not None:
            writer.close()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, _ms(started), f"GET {path} on {host}:{port} answered no HTTP status line")
    status = int(parts[1])
    return ProbeResult(status < 500, _ms(started), f"GET {path} on {host}:{port} answered {status}")


def _ms(started: float) -> float:
    return round(1000 * (time.perf_counter() - started), 3)
