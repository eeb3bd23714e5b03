"""``python -m cloudrun_standin --port P``: serve the stand-in; one JSON ready line on stdout."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys

from aiohttp import web

from .app import build_app


async def serve(port: int, instance: str) -> None:
    runner = web.AppRunner(build_app(instance), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(json.dumps({"event": "ready", "port": bound, "instance": instance}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()  # removes every container and the network it made


def main() -> None:
    parser = argparse.ArgumentParser(prog="cloudrun_standin")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--instance", default="", help="label value on every container (default: random)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.instance or secrets.token_hex(4)))
    except OSError as exc:
        print(f"cloudrun_standin: cannot serve on port {args.port}: {exc}", file=sys.stderr)
        sys.exit(1)


main()
