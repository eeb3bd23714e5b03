"""The protocol handler registry extended from another distribution, through the ``baton.protocols`` entry points.

Each test builds a directory holding tiny packages and their ``.dist-info`` (``METADATA``, ``entry_points.txt``),
as pip would install them, puts it on the ``sys.path`` of a real adapter process, and talks to its nodes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from _adapter_support import ADAPTER, raw_server, run, start_adapter_process, wait_for
from protocol_plugins import SHOUT, install_distribution

def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    site.mkdir()
    install_distribution(site, "baton-shout", "1.2",
                         {"shout": "baton_shout:ShoutHandler", "tcp": "baton_shout:ShoutHandler"}, {"baton_shout": SHOUT})
    install_distribution(site, "baton-broken", "0.3", {"broken": "baton_broken_missing:Handler",
                                                       "misnamed": "baton_shout:impostor"})
    return site


def _env(site: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(site) + (os.pathsep + path if path else "")}


def _config(tmp_path: Path, nodes: list[dict]) -> Path:
    path = tmp_path / "adapter.json"
    path.write_text(json.dumps({"shutdown_grace_s": 5, "nodes": [
        {"port": 0, "management_port": 0, **node} for node in nodes]}))
    return path


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"echo:" + await reader.read())
    await writer.drain()
    writer.close()


def test_a_node_is_served_by_a_handler_from_another_distribution_beside_the_built_ins(tmp_path: Path) -> None:
    site = _site(tmp_path)

    async def main() -> None:
        async with raw_server(_echo) as backend:
            config = _config(tmp_path, [
                {"name": "loud", "mode": "shout"},
                {"name": "pipe", "mode": "tcp", "backend": {"host": "127.0.0.1", "port": backend}},
                {"name": "web", "mode": "http", "mock": True},
            ])
            proc, ready = start_adapter_process(["--config", str(config)], _env(site))
            try:
                nodes = {n["name"]: n for n in ready["nodes"]}
                assert {n: nodes[n]["mode"] for n in nodes} == {"loud": "shout", "pipe": "tcp", "web": "http"}

                reader, writer = await asyncio.open_connection("127.0.0.1", nodes["loud"]["port"])
                writer.write(b"hello from a plugin\n")
                assert await asyncio.wait_for(reader.read(), 10) == b"loud shouts: HELLO FROM A PLUGIN\n"
                writer.close()
                url = f"http://127.0.0.1:{nodes['loud']['management_port']}"
                await wait_for(lambda: _json(f"{url}/metrics")["requests_total"] == 1)
                assert _json(f"{url}/status")["mode"] == "shout"

                # the built-in tcp handler still serves tcp nodes: the plugin's "tcp" entry point is ignored
                reader, writer = await asyncio.open_connection("127.0.0.1", nodes["pipe"]["port"])
                writer.write(b"bytes")
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 10) == b"echo:bytes"
                writer.close()
                web = f"http://127.0.0.1:{nodes['web']['port']}/health"
                assert urllib.request.urlopen(web, timeout=10).status == 200

                proc.send_signal(signal.SIGTERM)
                await wait_for(lambda: proc.poll() is not None, timeout=30)
                assert proc.returncode == 0
                stderr = proc.stderr_text()
                # the broken distribution beside it was never loaded (no node asked for its modes)
                assert "baton-broken" not in stderr and "baton_broken" not in stderr
                assert "'tcp' from distribution baton-shout 1.2 is ignored: mode 'tcp' already has a handler" in stderr
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)

    run(main())


def test_a_node_of_a_broken_entry_point_fails_to_start_with_one_sentence_naming_the_distribution(
        tmp_path: Path) -> None:
    site = _site(tmp_path)
    # built-ins and the other distribution's handler are untouched by it: test_a_node_is_served_by_...
    for mode, why in (("broken", "(ModuleNotFoundError: No module named 'baton_broken_missing')"),
                      ("misnamed", "(TypeError: it made a handler named 'shout', expected 'misnamed' (the entry "
                                   "point's name))")):
        config = _config(tmp_path, [{"name": "n", "mode": mode}])
        result = subprocess.run([*ADAPTER, "--config", str(config)], capture_output=True, text=True, timeout=60,
                                env={**os.environ, **_env(site)})
        assert result.returncode == 2, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"baton-adapter: the protocol handler for mode {mode!r} from distribution "
                               "baton-broken 0.3 ")
        assert last.endswith(f"could not be loaded {why}; fix or uninstall that distribution.")
        assert result.stdout == ""  # no ready line: nothing listened


def test_a_mode_nobody_offers_names_the_entry_point_group(tmp_path: Path) -> None:
    site = _site(tmp_path)
    config = _config(tmp_path, [{"name": "n", "mode": "mqtt"}])
    result = subprocess.run([*ADAPTER, "--config", str(config)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **_env(site)})
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("baton-adapter: no protocol handler is registered for mode 'mqtt'; available: ['broken', 'grpc', "
                    "'http', 'misnamed', 'protobuf', 'shout', 'soap', 'tcp'] (a distribution can add one through the "
                    "'baton.protocols' entry-point group).")


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())
