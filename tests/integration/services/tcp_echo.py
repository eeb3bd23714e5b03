"""A tiny TCP service for integration tests: answers each connection with ``VERSION:`` and then echoes what it
receives until the client half-closes.

Usage: python tcp_echo.py VERSION [die]  (listens on $BATON_SERVICE_PORT)
  die: exits 4 s after starting (connections are refused from then on)
"""

import asyncio
import os
import sys

VERSION = (sys.argv[1] if len(sys.argv) > 1 else "v1").encode()
DIE = len(sys.argv) > 2 and sys.argv[2] == "die"


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(VERSION + b":")
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", int(os.environ["BATON_SERVICE_PORT"]))
    async with server:
        if DIE:
            await asyncio.sleep(4)
            return
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
