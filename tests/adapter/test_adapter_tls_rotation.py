"""Certificate rotation through the management API: stage, commit, abort; under load, on both event loops."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from _adapter_support import app_server, hello_app, read_head, running_node, wait_for
from _tls_support import LOOPS, TestCA, key_pem, peer_fingerprint, run_on

TOKEN = "rotate-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLS_TEST_TOKEN", TOKEN)


def tls_node(tmp: Path, ca: TestCA, **fields: Any) -> dict[str, Any]:
    cert, key = ca.issue().write(tmp, "api")
    section = fields.pop("tls_extra", {})
    return {"token_env": "TLS_TEST_TOKEN", "tls": {"cert_file": str(cert), "key_file": str(key), **section},
            **fields}


async def tls_connect(port: int, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="api.test")


async def get_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, close: bool = False) -> int:
    writer.write(b"GET / HTTP/1.1\r\nHost: api.test\r\n%s\r\n" % (b"Connection: close\r\n" if close else b""))
    code, headers, _ = await read_head(reader)
    await reader.readexactly(int(headers["content-length"]))
    return code


async def new_connection_fingerprint(port: int, context: ssl.SSLContext) -> str:
    reader, writer = await tls_connect(port, context)
    try:
        assert await get_on(reader, writer, close=True) == 200
        return peer_fingerprint(writer)
    finally:
        writer.close()


class Management:
    """The node's management API, with the token."""

    def __init__(self, client: aiohttp.ClientSession, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        scheme = "http" if ssl_context is None else "https"
        self.client, self.base, self.ssl = client, f"{scheme}://127.0.0.1:{port}", ssl_context or False

    async def call(self, method: str, path: str, json: Any = None, auth: bool = True) -> tuple[int, dict[str, Any]]:
        async with self.client.request(method, self.base + path, json=json, headers=AUTH if auth else {},
                                       ssl=self.ssl) as resp:
            return resp.status, await resp.json()

    async def stage(self, leaf: Any, ca_pem: bytes | None = None, query: str = "") -> tuple[int, dict[str, Any]]:
        body = {"cert_pem": leaf.cert_pem.decode(), "key_pem": leaf.key_pem.decode()}
        if ca_pem is not None:
            body["ca_pem"] = ca_pem.decode()
        return await self.call("PUT", "/tls/staged" + query, body)


@pytest.mark.parametrize("loop", LOOPS)
def test_rotation_under_load_loses_nothing_and_only_new_handshakes_see_the_new_certificate(
        loop: str, tmp_path: Path) -> None:
    ca = TestCA()
    new = ca.issue("api-v2")

    async def main() -> None:
        clock = asyncio.get_running_loop()
        async with app_server(hello_app()) as port, running_node(backend={"port": port}, **tls_node(tmp_path, ca)) \
                as node, aiohttp.ClientSession() as client:
            api = Management(client, node.management_port)
            old = node.tls.current.info.fingerprint_sha256
            context = ca.client_context()
            stop = asyncio.Event()
            failures: list[str] = []
            handshakes: list[tuple[float, float, str]] = []  # started, finished, fingerprint
            live = [await tls_connect(node.port, context) for _ in range(4)]  # keep-alive, opened before the commit
            answered: list[list[float]] = [[] for _ in live]  # when each keep-alive request was answered

            async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: list[float]) -> None:
                while not stop.is_set():
                    try:
                        code = await get_on(reader, writer)
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        failures.append(f"keep-alive: {exc!r}")
                        return
                    if code != 200:
                        failures.append(f"keep-alive: {code}")
                    log.append(clock.time())

            async def handshaking() -> None:
                while not stop.is_set():
                    started = clock.time()
                    try:
                        fingerprint = await new_connection_fingerprint(node.port, context)
                    except (OSError, AssertionError, asyncio.IncompleteReadError) as exc:
                        failures.append(f"new connection: {exc!r}")
                        continue
                    handshakes.append((started, clock.time(), fingerprint))

            def progressed(since: float) -> bool:  # counts, not times: a busy machine only makes this slower
                return (sum(s > since for s, _, _ in handshakes) >= 10
                        and all(sum(t > since for t in log) >= 5 for log in answered)) or bool(failures)

            workers = [asyncio.create_task(keep_alive(r, w, log)) for (r, w), log in zip(live, answered)]
            workers += [asyncio.create_task(handshaking()) for _ in range(4)]
            await wait_for(lambda: progressed(0.0), timeout=60)
            status, body = await api.stage(new)
            assert status == 200, body
            assert body["staged"]["fingerprint_sha256"] == new.fingerprint and body["current"]["fingerprint_sha256"] == old
            staged_at = clock.time()
            await wait_for(lambda: progressed(staged_at), timeout=60)  # staged is not served
            committing = clock.time()
            status, body = await api.call("POST", "/tls/commit")
            committed = clock.time()
            assert status == 200 and body["changed"] is True and body["staged"] is None, body
            assert body["current"]["fingerprint_sha256"] == new.fingerprint and body["previous_fingerprint_sha256"] == old
            await wait_for(lambda: progressed(committed), timeout=60)
            stop.set()
            await asyncio.gather(*workers)

            assert failures == []
            while_staged = {fp for s, f, fp in handshakes if s > staged_at and f < committing}
            after = {fp for s, f, fp in handshakes if s > committed}
            assert while_staged == {old} and after == {new.fingerprint}
            for reader, writer in live:
                assert peer_fingerprint(writer) == old  # the same connection, never re-handshaken, kept answering
                writer.close()

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_abort_keeps_the_old_certificate_and_commit_is_idempotent_by_fingerprint(loop: str, tmp_path: Path) -> None:
    ca = TestCA()
    first, second = ca.issue("v2"), ca.issue("v3")

    async def main() -> None:
        async with running_node(mock=True, **tls_node(tmp_path, ca)) as node, aiohttp.ClientSession() as client:
            api = Management(client, node.management_port)
            context = ca.client_context()
            old = node.tls.current.info.fingerprint_sha256
            assert (await api.stage(first))[0] == 200
            status, body = await api.call("DELETE", "/tls/staged")
            assert status == 200 and body["aborted"] is True and body["staged"] is None
            assert (await api.call("DELETE", "/tls/staged"))[1]["aborted"] is False  # idempotent
            status, body = await api.call("POST", "/tls/commit")
            assert status == 409 and body["error"] == "no certificate is staged; PUT /tls/staged first."
            assert await new_connection_fingerprint(node.port, context) == old

            assert (await api.stage(second))[0] == 200
            status, body = await api.call("POST", "/tls/commit", {"fingerprint_sha256": first.fingerprint})
            assert status == 409 and "stage the intended certificate again" in body["error"]
            fingerprint = ":".join(second.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()  # openssl style
            for changed in (True, False):  # a retried commit (its answer was lost) succeeds without a change
                status, body = await api.call("POST", "/tls/commit", {"fingerprint_sha256": fingerprint})
                assert status == 200 and body["changed"] is changed
            assert await new_connection_fingerprint(node.port, context) == second.fingerprint
            status, body = await api.call("GET", "/tls")
            assert status == 200
            assert body["current"]["fingerprint_sha256"] == second.fingerprint and body["commits"] == 1
            assert body["current"]["subject"] == "CN=v3" and body["current"]["serial"] == format(
                second.cert.serial_number, "x")
            assert body["current"]["not_after"] == second.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert body["current"]["ip_addresses"] == ["127.0.0.1"] and "api.test" in body["current"]["dns_names"]
            assert {body[k] for k in ("node", "listener", "min_version", "client_auth")} == {"api", "data", "1.2", "none"}
            assert body["enabled"] is True and body["alpn"] == ["http/1.1"]

    run_on(loop, main())


def _bad_bodies(ca: TestCA) -> list[tuple[str, Any, str]]:
    good = ca.issue()
    other = ca.issue()
    expired = ca.issue(starts=datetime.timedelta(days=-3), lasts=datetime.timedelta(days=1))
    future = ca.issue(starts=datetime.timedelta(hours=2))
    weak = ca.issue(rsa_bits=1024)
    cert, key = good.cert_pem.decode(), good.key_pem.decode()
    return [
        ("not-pem", {"cert_pem": "hello", "key_pem": key}, "cert_pem holds no PEM certificate"),
        ("key-not-pem", {"cert_pem": cert, "key_pem": cert}, "key_pem holds no PEM private key"),
        ("mismatch", {"cert_pem": cert, "key_pem": other.key_pem.decode()},
         "key_pem holds a private key that does not match the certificate in cert_pem"),
        ("expired", {"cert_pem": expired.cert_pem.decode(), "key_pem": expired.key_pem.decode()},
         "cert_pem holds a certificate (subject CN=api) that expired at"),
        ("not-yet-valid", {"cert_pem": future.cert_pem.decode(), "key_pem": future.key_pem.decode()},
         "that is not valid before"),
        ("encrypted-key", {"cert_pem": cert, "key_pem": key_pem(good.key, b"pw").decode()},
         "key_pem holds an encrypted private key"),
        ("weak-key", {"cert_pem": weak.cert_pem.decode(), "key_pem": weak.key_pem.decode()},
         "cert_pem holds a certificate that OpenSSL refuses with its key (ee key too small)"),
        ("bad-ca", {"cert_pem": cert, "key_pem": key, "ca_pem": "nope"}, "ca_pem holds no PEM certificate"),
        ("missing-key", {"cert_pem": cert}, "expected a JSON object {cert_pem, key_pem, ca_pem?}"),
        ("unknown-field", {"cert_pem": cert, "key_pem": key, "chain": ""}, "got ['cert_pem', 'chain', 'key_pem']"),
        ("not-text", {"cert_pem": 7, "key_pem": key}, "cert_pem must be PEM text (a JSON string), got int."),
    ]


@pytest.mark.parametrize("loop", LOOPS)
def test_each_unusable_input_is_a_400_with_one_sentence_and_changes_nothing(loop: str, tmp_path: Path) -> None:
    ca = TestCA()
    staged = ca.issue("staged")

    async def main() -> None:
        async with running_node(mock=True, **tls_node(tmp_path, ca)) as node, aiohttp.ClientSession() as client:
            api = Management(client, node.management_port)
            assert (await api.stage(staged))[0] == 200
            for case, body, fragment in _bad_bodies(ca):
                status, answer = await api.call("PUT", "/tls/staged", body)
                message = answer["error"]
                assert status == 400 and fragment in message, (case, message)
                assert message.endswith(".") and "\n" not in message and message.count("; ") <= 1, (case, message)
                assert node.tls.staged.info.fingerprint_sha256 == staged.fingerprint, case  # a good stage survives

    run_on(loop, main())


def test_tls_routes_need_the_token_and_a_tls_listener(tmp_path: Path) -> None:
    ca = TestCA()

    async def main() -> None:
        async with running_node(mock=True, **tls_node(tmp_path, ca)) as node, \
                running_node(mock=True, token_env="TLS_TEST_TOKEN") as plain, aiohttp.ClientSession() as client:
            api = Management(client, node.management_port)
            for method, path in (("GET", "/tls"), ("PUT", "/tls/staged"), ("POST", "/tls/commit"),
                                 ("DELETE", "/tls/staged")):
                status, body = await api.call(method, path, {}, auth=False)
                assert status == 401 and body["error"] == "expected `Authorization: Bearer <token>` with the node's token."
            status, body = await api.call("GET", "/tls?listener=control")
            assert status == 400 and body["error"] == "listener must be one of ['data', 'management'], got 'control'."

            plain_api = Management(client, plain.management_port)
            status, body = await plain_api.call("GET", "/tls")
            assert status == 200 and body == {"node": "api", "listener": "data", "enabled": False, "current": None,
                                              "staged": None}
            for method, path in (("PUT", "/tls/staged"), ("POST", "/tls/commit"), ("DELETE", "/tls/staged")):
                status, body = await plain_api.call(method, path, {})
                assert status == 409 and body["error"].startswith("node api serves its data port without TLS;")
            status, body = await api.call("PUT", "/tls/staged?listener=management", {})
            assert status == 409 and "`management_tls` config section" in body["error"]

    run_on("uvloop", main())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_new_ca_bundle_changes_which_client_certificates_new_handshakes_accept(loop: str, tmp_path: Path) -> None:
    ca, next_ca = TestCA(), TestCA("next CA")

    async def main() -> None:
        fields = tls_node(tmp_path, ca, mock=True,
                          tls_extra={"ca_file": str(ca.write(tmp_path)), "client_auth": "required"})
        async with running_node(**fields) as node, aiohttp.ClientSession() as client:
            api = Management(client, node.management_port)
            old_client = ca.client_context(client=ca.issue("web", usage="client"), tmp=tmp_path)
            next_client = ca.client_context(client=next_ca.issue("web", usage="client"), tmp=tmp_path)
            reader, writer = await tls_connect(node.port, old_client)  # kept open across the rotation
            assert await get_on(reader, writer) == 200

            # a certificate-only stage keeps the CA bundle; a stage with ca_pem replaces it
            assert (await api.stage(ca.issue("api-v2")))[1]["staged"]["ca_fingerprints_sha256"] == [
                node.tls.current.ca_fingerprints[0]]
            status, body = await api.stage(ca.issue("api-v3"), ca_pem=next_ca.pem)
            assert status == 200 and body["staged"]["ca_fingerprints_sha256"] != body["current"]["ca_fingerprints_sha256"]
            assert (await api.call("POST", "/tls/commit"))[0] == 200

            assert await new_connection_fingerprint(node.port, next_client)
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await new_connection_fingerprint(node.port, old_client)
            handshakes = (await api.call("GET", "/tls"))[1]["current"]["handshakes"]
            assert handshakes["ok"] == 1 and handshakes["failed"] == 1  # the refused client is counted
            assert "CERTIFICATE_VERIFY_FAILED" in handshakes["last_error"]
            assert await get_on(reader, writer) == 200  # the established connection is untouched
            writer.close()

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_the_management_port_serves_tls_and_rotates_on_its_own(loop: str, tmp_path: Path) -> None:
    ca = TestCA()
    cert, key = ca.issue("mgmt").write(tmp_path, "mgmt")
    new = ca.issue("mgmt-v2")

    async def main() -> None:
        fields = tls_node(tmp_path, ca, mock=True, management_tls={"cert_file": str(cert), "key_file": str(key)})
        async with running_node(**fields) as node, aiohttp.ClientSession() as client:
            data_fingerprint = node.tls.current.info.fingerprint_sha256
            context = ca.client_context()
            api = Management(client, node.management_port, context)
            status, body = await api.call("GET", "/tls?listener=management")
            assert status == 200 and body["current"]["subject"] == "CN=mgmt"
            assert (await api.stage(new, query="?listener=management"))[0] == 200
            assert (await api.call("POST", "/tls/commit?listener=management"))[0] == 200
            reader, writer = await asyncio.open_connection("127.0.0.1", node.management_port, ssl=context,
                                                           server_hostname="localhost")
            assert peer_fingerprint(writer) == new.fingerprint
            writer.close()
            assert (await api.call("GET", "/status"))[1]["management_tls"] is True
            assert node.tls.current.info.fingerprint_sha256 == data_fingerprint  # the data port is unchanged
            with pytest.raises(aiohttp.ClientError):  # plain HTTP no longer reaches it
                await Management(client, node.management_port).call("GET", "/status")

    run_on(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sessions_resume_within_a_certificate_generation_but_not_across_a_commit(
        loop: str, version: ssl.TLSVersion, tmp_path: Path) -> None:
    ca = TestCA()
    new = ca.issue("api-v2")
    context = ca.client_context()
    context.maximum_version = version

    def connect(port: int, session: ssl.SSLSession | None = None) -> tuple[str, bool, ssl.SSLSession | None]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="api.test", session=session) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
            while tls.recv(65536):
                pass
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest(), tls.session_reused, tls.session

    async def main() -> None:
        async with running_node(mock=True, **tls_node(tmp_path, ca)) as node, aiohttp.ClientSession() as client:
            api = Management(client, node.management_port)
            old = node.tls.current.info.fingerprint_sha256
            _, reused, session = await asyncio.to_thread(connect, node.port)
            assert not reused
            fingerprint, reused, _ = await asyncio.to_thread(connect, node.port, session)
            assert (fingerprint, reused) == (old, True)  # resumption works within a generation
            assert (await api.stage(new))[0] == 200 and (await api.call("POST", "/tls/commit"))[0] == 200
            fingerprint, reused, _ = await asyncio.to_thread(connect, node.port, session)
            assert (fingerprint, reused) == (new.fingerprint, False)  # the old session is unknown: full handshake
            status, body = await api.call("GET", "/tls")
            assert body["current"]["handshakes"] == {"ok": 1, "failed": 0, "last_error": None}

    run_on(loop, main())
