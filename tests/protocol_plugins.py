"""A protocol plugin as another distribution would ship it: a tiny ``shout`` handler module and the
``.dist-info`` (``METADATA``, ``entry_points.txt`` in the ``baton.protocols`` group) an installer lays out.
Put the directory on a process's ``PYTHONPATH`` and its adapters serve ``shout`` nodes."""

from __future__ import annotations

import textwrap
from pathlib import Path

SHOUT = """
    import asyncio
    import time


    class ShoutHandler:
        \"\"\"Answers one line per connection, upper-cased, and records it as the node's request.\"\"\"

        name = "shout"

        async def serve(self, node, host, port):
            async def handle(reader, writer):
                started = time.perf_counter()
                line = await reader.readline()
                answer = node.name.encode() + b" shouts: " + line.upper()
                writer.write(answer)
                await writer.drain()
                writer.close()
                node.telemetry.record("-", b"SHOUT", b"-", 200, time.perf_counter() - started, len(line),
                                      len(answer), "")

            return await asyncio.start_server(handle, host, port)


    def impostor():
        return ShoutHandler()  # named "shout", registered under another entry point's name
"""


def install_distribution(site: Path, name: str, version: str, entry_points: dict[str, str],
                         modules: dict[str, str] | None = None) -> None:
    """Install a distribution into ``site`` the way an installer lays it out."""
    for module, text in (modules or {}).items():
        (site / f"{module}.py").write_text(textwrap.dedent(text))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[baton.protocols]\n" + "".join(f"{mode} = {target}\n" for mode, target in entry_points.items()))
