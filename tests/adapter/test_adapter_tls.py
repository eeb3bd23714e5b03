"""TLS on the data and management ports, and certificate rotation through the management API.

Certificates come from a throwaway CA made per test (``_tls_support``); clients are Python's ``ssl`` with
that CA, curl and ``openssl s_client``. Every test that serves TLS runs on uvloop and on asyncio's loop.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from baton_adapter.config import ConfigError, TlsConfig
from baton_adapter.errors import BindError
from baton_adapter.node import Node

from _adapter_support import (ADAPTER, app_server, node_config, raw_server, read_head, refused, running_node,
                              start_adapter_process, wait_for)
from _tls_support import LOOPS, TestCA, peer_fingerprint, run_on


def tls_fields(tmp: Path, ca: TestCA, **extra: Any) -> dict[str, Any]:
    cert, key = ca.issue().write(tmp, "api")
    return {"tls": {"cert_file": str(cert), "key_file": str(key), **extra}}


async def https_get(port: int, context: ssl.SSLContext, path: str = "/", host: str = "api.test"
                    ) -> tuple[int, dict[str, str], bytes, str, str | None]:
    """One request on a new TLS connection: status, headers, body, server fingerprint, ALPN."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=host)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        code, headers, _ = await read_head(reader)
        body = await reader.readexactly(int(headers["content-length"]))
        return code, headers, body, peer_fingerprint(writer), writer.get_extra_info("ssl_object").selected_alpn_protocol()
    finally:
        writer.close()


def echo_headers_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"proto": request.headers.get("X-Forwarded-Proto"), "path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.mark.parametrize("loop", LOOPS)
def test_an_http_node_serves_tls_with_alpn_http11_to_a_real_backend(loop: str, tmp_path: Path) -> None:
    ca = TestCA()

    async def main() -> None:
        async with app_server(echo_headers_app()) as port, \
                running_node(backend={"port": port}, **tls_fields(tmp_path, ca)) as node:
            code, _, body, fingerprint, alpn = await https_get(node.port, ca.client_context(["h2", "http/1.1"]), "/x")
            assert code == 200 and json.loads(body) == {"proto": "https", "path": "/x"}
            assert alpn == "http/1.1"  # never h2: the parser is HTTP/1.1
            assert fingerprint == node.tls.current.info.fingerprint_sha256
            # plain HTTP on the TLS port gets no answer, only a closed connection
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b"HTTP/1.1 200" not in await asyncio.wait_for(reader.read(), 10)
            writer.close()

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_mocked_node_serves_tls_on_the_same_listener(loop: str, tmp_path: Path) -> None:
    ca = TestCA()

    async def main() -> None:
        async with running_node(mock=True, **tls_fields(tmp_path, ca)) as node:
            code, _, body, _, _ = await https_get(node.port, ca.client_context())
            assert code == 200 and json.loads(body) == {"status": "mock", "node": "api"}
            assert node.status()["tls"] is True and node.status()["listening"] is True
        await wait_for(lambda: refused(node.port))  # stopping the node closes its TLS port

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_min_version_refuses_older_clients(loop: str, tmp_path: Path) -> None:
    ca = TestCA()

    async def main() -> None:
        async with running_node(mock=True, **tls_fields(tmp_path, ca, min_version=1.3)) as node:
            old = ca.client_context()
            old.maximum_version = ssl.TLSVersion.TLSv1_2
            with pytest.raises((ssl.SSLError, ConnectionError)):  # uvloop reports the alert as a reset
                await https_get(node.port, old)
            code, *_ = await https_get(node.port, ca.client_context())
            assert code == 200

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_client_auth_required_checks_client_certificates_against_the_ca(loop: str, tmp_path: Path) -> None:
    ca, other = TestCA(), TestCA("another CA")

    async def main() -> None:
        fields = tls_fields(tmp_path, ca, ca_file=str(ca.write(tmp_path)), client_auth="required")
        async with running_node(mock=True, **fields) as node:
            code, *_ = await https_get(node.port, ca.client_context(client=ca.issue("web", usage="client"), tmp=tmp_path))
            assert code == 200
            for context in (ca.client_context(), ca.client_context(client=other.issue("web", usage="client"), tmp=tmp_path)):
                with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                    await https_get(node.port, context)  # TLS 1.3: refused after the client's Finished

    run_on(loop, main())


async def _echo_per_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(b"echo:" + data)
        await writer.drain()
    writer.close()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(("mode", "alpn"), [("tcp", None)])  # grpc: test_adapter_grpc.py; protobuf: test_adapter_protobuf.py
def test_raw_modes_terminate_tls_and_pass_plain_bytes(loop: str, mode: str, alpn: str | None, tmp_path: Path) -> None:
    ca = TestCA()

    async def main() -> None:
        async with raw_server(_echo_per_read) as port, \
                running_node(mode=mode, backend={"port": port}, **tls_fields(tmp_path, ca)) as node:
            context = ca.client_context(["h2", "http/1.1"])
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port, ssl=context,
                                                           server_hostname="api.test")
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == alpn
            writer.write(b"frame")
            assert await asyncio.wait_for(reader.readexactly(10), 10) == b"echo:frame"
            writer.close()

    run_on(loop, main())


def test_a_handler_without_tls_support_is_refused(tmp_path: Path) -> None:
    from baton_adapter import protocols

    class Plain:
        name = "plainproto"

        async def serve(self, node: Any, host: str, port: int) -> asyncio.AbstractServer:
            raise AssertionError("must not be asked to serve")

    protocols.register(Plain(), replace=True)
    ca = TestCA()

    async def main() -> None:
        node = Node(node_config(mode="plainproto", mock=True, **tls_fields(tmp_path, ca)))
        with pytest.raises(ConfigError, match="cannot serve TLS"):
            await node.start()
        assert node.server is None

    run_on("asyncio", main())


# -- configuration ------------------------------------------------------------------------------------------


def test_tls_config_shape_is_normalised_and_checked() -> None:
    config = TlsConfig.from_mapping({"cert_file": "a.pem", "key_file": "a.key", "min_version": 1.3,
                                     "client_auth": True, "ca_file": "ca.pem"})
    assert (config.min_version, config.client_auth) == ("1.3", "required")
    for data, fragment in [
        ({"cert_file": "a.pem"}, "key_file must be a file path"),
        ({"cert_file": "a", "key_file": "b", "min_version": "1.1"}, "min_version must be one of"),
        ({"cert_file": "a", "key_file": "b", "client_auth": "required"}, "needs tls.ca_file"),
        ({"cert_file": "a", "key_file": "b", "pem": "x"}, "unknown key"),
        ("cert.pem", "must be an object"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            TlsConfig.from_mapping(data)


def _bad_material(tmp: Path, ca: TestCA, case: str) -> tuple[dict[str, Any], str]:
    """A tls section whose files hold ``case``, and a fragment of the expected sentence."""
    good = ca.issue()
    cert, key = good.write(tmp, "good")
    if case == "missing":
        return {"cert_file": str(tmp / "nope.pem"), "key_file": str(key)}, "nope.pem does not exist"
    if case == "not-pem":
        (tmp / "der.pem").write_bytes(good.cert.public_bytes(Encoding.DER))
        return {"cert_file": str(tmp / "der.pem"), "key_file": str(key)}, "der.pem) holds no PEM certificate"
    if case == "mismatch":
        _, other_key = ca.issue().write(tmp, "other")
        return {"cert_file": str(cert), "key_file": str(other_key)}, "other.key) holds a private key that does not match the certificate in cert_file"
    if case == "expired":
        old = ca.issue(starts=datetime.timedelta(days=-3), lasts=datetime.timedelta(days=1))
        c, k = old.write(tmp, "old")
        return {"cert_file": str(c), "key_file": str(k)}, "old.pem) holds a certificate (subject CN=api) that expired at"
    if case == "not-yet-valid":
        new = ca.issue(starts=datetime.timedelta(hours=1))
        c, k = new.write(tmp, "future")
        return {"cert_file": str(c), "key_file": str(k)}, "is not valid before"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing", "not-pem", "mismatch", "expired", "not-yet-valid"])
def test_unusable_tls_files_fail_the_start_with_one_sentence_naming_the_file(case: str, tmp_path: Path) -> None:
    ca = TestCA()
    tls, fragment = _bad_material(tmp_path, ca, case)

    async def main() -> None:
        node = Node(node_config(mock=True, tls=tls))
        with pytest.raises(ConfigError) as caught:
            await node.start()
        message = str(caught.value)
        assert fragment in message and message.startswith("node 'api'.tls.")
        assert message.endswith(".") and "\n" not in message
        assert node.server is None and node.management is None

    run_on("asyncio", main())


# -- the real process with curl and openssl ------------------------------------------------------------------


def _fingerprint_of_s_client(output: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    start = output.index("-----BEGIN CERTIFICATE-----")
    end = output.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return x509.load_pem_x509_certificate(output[start:end].encode()).fingerprint(hashes.SHA256()).hex()


def _s_client(port: int, ca_file: Path) -> str:
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "api.test",
                             "-CAfile", str(ca_file), "-alpn", "h2,http/1.1", "-verify_return_error"],
                            input="", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _management(port: int, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer proc-token", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_the_adapter_process_serves_tls_from_its_config_file_to_curl_and_openssl(tmp_path: Path) -> None:
    ca = TestCA()
    ca_file = ca.write(tmp_path)
    cert, key = ca.issue().write(tmp_path, "api")
    new = ca.issue("api-v2")
    config = tmp_path / "adapter.yaml"
    config.write_text(f"""
node:
  name: api
  port: 0
  management_port: 0
  mock: true
  token_env: PROC_TOKEN
  tls: {{cert_file: {cert}, key_file: {key}, min_version: 1.2}}
""")
    proc, ready = start_adapter_process(["--config", str(config)], env={"PROC_TOKEN": "proc-token"})
    try:
        port, mport = ready["nodes"][0]["port"], ready["nodes"][0]["management_port"]
        url = f"https://api.test:{port}/"
        curl = ["curl", "-sS", "--cacert", str(ca_file), "--resolve", f"api.test:{port}:127.0.0.1"]
        result = subprocess.run([*curl, url, url, "-w", " %{http_code} %{num_connects} %{http_version}\n"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.splitlines()
        assert first.endswith(" 200 1 1.1") and second.endswith(" 200 0 1.1")  # one connection, kept alive
        assert json.loads(first.rsplit(" ", 3)[0]) == {"status": "mock", "node": "api"}

        out = _s_client(port, ca_file)
        assert "Verify return code: 0 (ok)" in out and "ALPN protocol: http/1.1" in out
        old = _fingerprint_of_s_client(out)

        status, _ = _management(mport, "PUT", "/tls/staged", {"cert_pem": new.cert_pem.decode(),
                                                               "key_pem": new.key_pem.decode()})
        assert status == 200
        assert _fingerprint_of_s_client(_s_client(port, ca_file)) == old  # staged, not served
        status, body = _management(mport, "POST", "/tls/commit", {"fingerprint_sha256": new.fingerprint})
        assert status == 200 and body["current"]["fingerprint_sha256"] == new.fingerprint
        assert _fingerprint_of_s_client(_s_client(port, ca_file)) == new.fingerprint
        result = subprocess.run([*curl, url], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "mock" in result.stdout
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_the_adapter_process_exits_2_naming_an_expired_certificate(tmp_path: Path) -> None:
    ca = TestCA()
    cert, key = ca.issue(starts=datetime.timedelta(days=-3), lasts=datetime.timedelta(days=1)).write(tmp_path, "old")
    config = tmp_path / "adapter.json"
    config.write_text(json.dumps({"node": {"name": "api", "port": 0, "management_port": 0, "mock": True,
                                           "tls": {"cert_file": str(cert), "key_file": str(key)}}}))
    result = subprocess.run([*ADAPTER, "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    line, = result.stderr.splitlines()
    assert line.startswith(f"baton-adapter: node 'api'.tls.cert_file ({cert}) holds a certificate (subject CN=api) "
                           "that expired at ") and line.endswith("; issue a new one.")


def test_the_container_healthcheck_speaks_https_to_a_management_tls_port(tmp_path: Path) -> None:
    """With client_auth required it presents the node's own certificate (issued for both usages)."""
    from baton_cli import free_port

    ca = TestCA()
    cert, key = ca.issue("mgmt", usage="both").write(tmp_path, "mgmt")
    config = tmp_path / "adapter.json"
    config.write_text(json.dumps({"node": {
        "name": "api", "port": 0, "management_port": free_port(), "mock": True, "token_env": "PROC_TOKEN",
        "management_tls": {"cert_file": str(cert), "key_file": str(key), "ca_file": str(ca.write(tmp_path)),
                           "client_auth": "required"}}}))
    env = {"PROC_TOKEN": "proc-token", "BATON_ADAPTER_CONFIG": str(config)}
    check = [sys.executable, "-m", "baton_adapter.healthcheck"]
    proc, _ = start_adapter_process(["--config", str(config)], env=env)
    try:
        result = subprocess.run(check, capture_output=True, text=True, timeout=30, env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    result = subprocess.run(check, capture_output=True, text=True, timeout=30, env={**os.environ, **env})
    assert result.returncode == 1 and result.stderr.startswith("unhealthy: node api:")


def test_a_tls_port_in_use_is_a_bind_error_and_nothing_stays_bound(tmp_path: Path) -> None:
    ca = TestCA()

    async def main() -> None:
        async with running_node(mock=True) as other:
            node = Node(node_config(port=other.port, mock=True, **tls_fields(tmp_path, ca)))
            with pytest.raises(BindError, match=f"cannot bind its data port 127.0.0.1:{other.port}: address already"):
                await node.start()
            assert node.management is None

    run_on("uvloop", main())
