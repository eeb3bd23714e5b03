"""The health probe of ``grpc`` nodes: ``grpc.health.v1.Health/Check`` when the backend offers it, else connect.

One h2c connection per probe, one call with an empty ``HealthCheckRequest`` (the server as a whole). Healthy
when it answers ``SERVING``; unhealthy for another serving status, another non-OK code, or no answer in time.
A backend that answers ``UNIMPLEMENTED`` (no health service) is judged as a TCP node is: it accepted the
connection, so it is healthy.
"""

from __future__ import annotations

import asyncio
import time

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset, TrailersReceived
from h2.exceptions import H2Error

from .grpc_call import CODES, grpc_status
from .health import ProbeResult

__all__ = ["probe_grpc"]

PATH = b"/grpc.health.v1.Health/Check"
SERVING_STATUS = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")
_UNIMPLEMENTED = 12


async def probe_grpc(host: str, port: int, timeout_s: float) -> ProbeResult:
    """Probe a gRPC backend through ``grpc.health.v1`` (falling back to connect when it has no health service)."""
    started = time.perf_counter()
    where = f"{host}:{port}"
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            code, body = await _check(reader, writer, host, port)
    except (OSError, TimeoutError, H2Error) as exc:
        return ProbeResult(False, _ms(started), f"grpc health check on {where} failed: {exc!r}")
    finally:
        if writer is not None:
            writer.close()
    if code == _UNIMPLEMENTED:
        return ProbeResult(True, _ms(started), f"{where} offers no grpc.health.v1 and accepted the connection")
    if code != 0:
        name = CODES[code] if code is not None and 0 <= code < len(CODES) else "no grpc-status"
        return ProbeResult(False, _ms(started), f"grpc health check on {where} answered {name}")
    status = serving_status(body)
    name = SERVING_STATUS[status] if 0 <= status < len(SERVING_STATUS) else str(status)
    return ProbeResult(status == 1, _ms(started), f"grpc health check on {where} answered {name}")


async def _check(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                 port: int) -> tuple[int | None, bytes]:
    """One Check call: its grpc-status (None when the stream ended without one) and the response body."""
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", PATH),
                            (b":authority", f"{host}:{port}".encode()), (b"te", b"trailers"),
                            (b"content-type", b"application/grpc"), (b"user-agent", b"baton-adapter-health")])
    conn.send_data(sid, b"\x00\x00\x00\x00\x00", end_stream=True)  # an uncompressed, empty HealthCheckRequest
    writer.write(conn.data_to_send())
    body = bytearray()
    code: int | None = None
    while True:
        data = await reader.read(65536)
        if not data:
            raise ConnectionResetError("the backend closed the connection before answering")
        for ev in conn.receive_data(data):
            if isinstance(ev, DataReceived) and ev.stream_id == sid:
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, (ResponseReceived, TrailersReceived)) and ev.stream_id == sid:
                code = grpc_status(ev.headers) if code is None else code
            elif isinstance(ev, StreamReset) and ev.stream_id == sid:
                raise ConnectionResetError(f"the backend reset the call (error code {ev.error_code})")
            elif isinstance(ev, StreamEnded) and ev.stream_id == sid:
                return code, bytes(body)
        out = conn.data_to_send()
        if out:
            writer.write(out)


def serving_status(body: bytes) -> int:
    """The ``status`` (field 1, a varint) of a length-prefixed ``HealthCheckResponse``; 0 (UNKNOWN) when absent."""
    message = body[5:]  # the gRPC frame header: compressed flag and length
    i = 0
    while i < len(message):
        key, i = _varint(message, i)
        if key == 0x08:
            return _varint(message, i)[0]
        wire = key & 7
        if wire == 0:
            i = _varint(message, i)[1]
        elif wire == 2:
            length, i = _varint(message, i)
            i += length
        else:
            return 0
    return 0


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while i < len(data):
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
    return value, i


def _ms(started: float) -> float:
    return round(1000 * (time.perf_counter() - started), 3)
