"""Backend health probes: an HTTP GET of the node's health path, or a TCP connect for non-HTTP nodes.

On a soap node the HTTP probe also reads the answer's body (at most ``SOAP_PROBE_BYTES``) and judges one carrying a
``soap:Fault`` unhealthy, whatever its status.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .config import validate_health_path
from .soap import MAX_HEAD, MAX_TOKEN, SoapFault, detector_for

__all__ = ["ProbeResult", "probe_http", "probe_tcp", "HTTP_MODES"]

HTTP_MODES = frozenset({"http", "soap"})
SOAP_PROBE_BYTES = MAX_HEAD + MAX_TOKEN  # what a soap probe reads of an answer (the fault detector's budget)


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


async def probe_http(host: str, port: int, path: str, timeout_s: float, soap: bool = False) -> ProbeResult:
    """Healthy when ``GET path`` answers a status below 500 within ``timeout_s`` (with ``soap``: and its body
    carries no ``soap:Fault``)."""
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
            rest = await _read_bounded(reader, SOAP_PROBE_BYTES) if soap else b""
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, _ms(started), f"GET {path} on {host}:{port} failed: {exc!r}")
    finally:
        if writer is not None:
            writer.close()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, _ms(started), f"GET {path} on {host}:{port} answered no HTTP status line")
    status = int(parts[1])
    fault = answer_fault(status, rest) if soap else None
    if fault is not None:
        return ProbeResult(False, _ms(started), f"GET {path} on {host}:{port} answered {status} with a SOAP "
                                                f"{fault.version} Fault ({fault.code or 'no faultcode'})")
    return ProbeResult(status < 500, _ms(started), f"GET {path} on {host}:{port} answered {status}")


async def _read_bounded(reader: asyncio.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes, until the peer closes."""
    parts, size = [], 0
    while size < limit:
        chunk = await reader.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def answer_fault(status: int, rest: bytes) -> SoapFault | None:
    """The Fault in an HTTP answer, given its status and what followed the status line (headers and the start of
    the body, possibly cut short); None when there is none or the head is incomplete."""
    head, sep, body = rest.partition(b"\r\n\r\n")
    if not sep:
        return None
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(b":") for line in head.split(b"\r\n"))]
    detector = detector_for(status, headers, b"GET")
    if detector is None:
        return None
    if any(n.lower() == b"transfer-encoding" and b"chunked" in v.lower() for n, v in headers):
        body = _dechunk(body)
    detector.feed(body)
    return detector.fault


def _dechunk(body: bytes) -> bytes:
    """The data of a chunked body (as much as arrived)."""
    out, pos = [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(body[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(body[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out)


def _ms(started: float) -> float:
    return round(1000 * (time.perf_counter() - started), 3)
