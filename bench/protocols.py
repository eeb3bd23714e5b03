"""Benchmark of the adapter's stream data planes (reports figures; not a timed test).

In one run:

- **gRPC unary** (grpcio on both ends, each in a process of its own): calls/s and p50 of a client on one
  channel with ``--callers`` threads, directly against the server and through a ``grpc`` node (the adapter in a
  process of its own), then the p50 at concurrency 1. The service is a generic handler of raw bytes (no
  ``.proto`` to compile). Target: through the adapter at least 0.5 of direct calls/s.
- **TCP throughput**: one connection writing ``--tcp-mib`` MiB into a backend that discards them and answers the
  count at EOF, directly and through a ``tcp`` node: MiB/s.
- **SOAP**: ``--callers`` aiohttp clients posting a SOAP 1.1 request (``SOAPAction`` header) to an aiohttp service
  answering a 2 KB envelope, directly and through a ``soap`` node (action normalized, every answer scanned for a
  Fault): requests/s; the clients run in this process, so the ratio is what the node costs a Python client.

    python bench/protocols.py [--duration 5] [--callers 8] [--tcp-mib 512]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHOD = "/bench.Echo/Unary"

GRPC_SERVER = """
import sys, grpc
from concurrent import futures
handler = grpc.method_handlers_generic_handler("bench.Echo", {
    "Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: request)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
server.add_generic_rpc_handlers((handler,))
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
"""

SINK_SERVER = """
import asyncio, sys
async def sink(reader, writer):
    n = 0
    while data := await reader.read(1 << 20):
        n += len(data)
    writer.write(str(n).encode()); await writer.drain(); writer.close()
async def main():
    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


SOAP_SERVER = """
import asyncio, sys
from aiohttp import web
ANSWER = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
          b'<QuoteResponse xmlns="urn:bench">' + b'<line>quoted</line>' * 90 + b'</QuoteResponse></soap:Body>'
          b'</soap:Envelope>')
async def quote(request):
    await request.read()
    return web.Response(body=ANSWER, content_type="text/xml")
async def main():
    app = web.Application()
    app.router.add_post("/quote", quote)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""
SOAP_REQUEST = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                b'<Quote xmlns="urn:bench"><sku>A-1</sku></Quote></soap:Body></soap:Envelope>')


def start_script(code: str) -> tuple[subprocess.Popen[str], int]:
    """A helper process running ``code``, which prints its port; it stops when its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())  # type: ignore[union-attr]


def start_adapter(mode: str, backend_port: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "baton_adapter", "--node", "bench", "--port", "0",
                             "--management-port", "0", "--mode", mode, "--backend", f"127.0.0.1:{backend_port}"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**__import__("os").environ, "PYTHONPATH": f"{ROOT / 'adapter_image'}"})
    ready = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    return proc, ready["nodes"][0]["port"]


def grpc_load(port: int, duration: float, callers: int) -> tuple[float, float]:
    """Unary calls/s and p50 (us) of ``callers`` threads on one channel for ``duration`` seconds."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD)
        call(b"warm-up", timeout=30)
        latencies: list[float] = []
        deadline = time.perf_counter() + duration

        def caller() -> None:
            mine = []
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                call(b"x" * 32, timeout=30)
                mine.append(time.perf_counter() - started)
            latencies.extend(mine)

        threads = [threading.Thread(target=caller) for _ in range(callers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    latencies.sort()
    return len(latencies) / elapsed, 1e6 * latencies[len(latencies) // 2]


def tcp_throughput(port: int, mib: int) -> float:
    """MiB/s of one connection writing ``mib`` MiB into the sink (counted back at EOF)."""
    chunk = b"\0" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        for _ in range(mib):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(64):
            answer += data
        elapsed = time.perf_counter() - started
    assert int(answer) == mib << 20, f"the sink counted {answer!r} bytes, expected {mib << 20}"
    return mib / elapsed


def soap_load(port: int, duration: float, callers: int) -> float:
    """SOAP requests/s of ``callers`` keep-alive aiohttp clients for ``duration`` seconds (every answer checked)."""
    import asyncio

    import aiohttp

    async def run() -> float:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:bench#Quote"'}
        done = 0
        async with aiohttp.ClientSession() as session:
            deadline = time.perf_counter() + duration

            async def caller() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    async with session.post(f"http://127.0.0.1:{port}/quote", data=SOAP_REQUEST, headers=headers) as r:
                        body = await r.read()
                        assert r.status == 200 and b"QuoteResponse" in body, (r.status, body[:200])
                        done += 1

            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(callers)))
            return done / (time.perf_counter() - started)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--tcp-mib", type=int, default=512)
    args = parser.parse_args()
    procs: list[subprocess.Popen[str]] = []
    try:
        server, grpc_port = start_script(GRPC_SERVER)
        procs.append(server)
        adapter, adapter_port = start_adapter("grpc", grpc_port)
        procs.append(adapter)
        direct = grpc_load(grpc_port, args.duration, args.callers)
        through = grpc_load(adapter_port, args.duration, args.callers)
        direct1 = grpc_load(grpc_port, args.duration / 2, 1)
        through1 = grpc_load(adapter_port, args.duration / 2, 1)
        print(f"gRPC unary, {args.callers} callers on one channel, {args.duration:g} s per run")
        print(f"  {'path':<10} {'calls/s':>10} {'p50 us':>9} {'p50 us (c1)':>12}")
        for name, (rate, p50), (_, p50_1) in (("direct", direct, direct1), ("adapter", through, through1)):
            print(f"  {name:<10} {rate:>10.0f} {p50:>9.0f} {p50_1:>12.0f}")
        print(f"  adapter / direct = {through[0] / direct[0]:.2f} (target >= 0.5); adds {through1[1] - direct1[1]:.0f} "
              f"us to the p50 at concurrency 1")
        sink, sink_port = start_script(SINK_SERVER)
        procs.append(sink)
        tcp_adapter, tcp_port = start_adapter("tcp", sink_port)
        procs.append(tcp_adapter)
        raw = tcp_throughput(sink_port, args.tcp_mib)
        proxied = tcp_throughput(tcp_port, args.tcp_mib)
        print(f"TCP, one connection writing {args.tcp_mib} MiB: direct {raw:.0f} MiB/s, adapter {proxied:.0f} MiB/s "
              f"({proxied / raw:.2f})")
        soap_server, soap_port = start_script(SOAP_SERVER)
        procs.append(soap_server)
        soap_adapter, soap_node = start_adapter("soap", soap_port)
        procs.append(soap_adapter)
        soap_load(soap_port, 1.0, args.callers)  # warm-up
        soap_direct = soap_load(soap_port, args.duration, args.callers)
        soap_through = soap_load(soap_node, args.duration, args.callers)
        print(f"SOAP, {args.callers} clients, 2 KB answers: direct {soap_direct:.0f} req/s, adapter {soap_through:.0f} "
              f"req/s ({soap_through / soap_direct:.2f})")
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
