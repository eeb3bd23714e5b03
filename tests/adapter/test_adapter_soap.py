"""SOAP nodes against real peers: zeep (the SOAP client) -> adapter (mode soap) -> a real SOAP service.

Answers pass; a Fault reaches zeep as ``zeep.exceptions.Fault`` and counts as one failed request (500 or 200);
header rules route on the SOAP action of either version; health judges a Fault unhealthy; a mocked soap node
answers zeep from an OpenAPI contract's example envelopes; hostile bodies pass (or get a Client Fault), never a
crash."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

zeep = pytest.importorskip("zeep")

from _adapter_support import app_server, raw_exchange, run, running_node  # noqa: E402
from _soap_service import CALLS, WSDL, envelope, soap_app  # noqa: E402

CONTRACT = Path(__file__).resolve().parents[1] / "fixtures" / "soap" / "calc_openapi.yaml"
BINDING = {"1.1": "{urn:calc}CalcBinding", "1.2": "{urn:calc}CalcBinding12"}


def _service(port: int, version: str = "1.1") -> Any:
    client = zeep.Client(str(WSDL))
    return client.create_service(BINDING[version], f"http://127.0.0.1:{port}/calc")


async def _call(service: Any, op: str, *args: Any) -> Any:
    return await asyncio.to_thread(getattr(service, op), *args)


def test_answers_pass_and_faults_reach_zeep_counted_once_as_errors() -> None:
    async def main() -> None:
        async with app_server(soap_app("one")) as port, \
                running_node(mode="soap", backend={"port": port}) as node:
            service = _service(node.port)
            assert await _call(service, "Add", 2, 3) == 5
            assert await _call(service, "Echo", "hi") == "one:hi"
            with pytest.raises(zeep.exceptions.Fault, match="Boom failed"):
                await _call(service, "Boom", "x")
            with pytest.raises(zeep.exceptions.Fault, match="Quiet failed"):
                await _call(service, "Quiet", "x")  # a Fault with HTTP 200
            stats = node.telemetry.targets["primary"]
            assert stats.requests == 4 and stats.by_class == {"2xx": 3, "5xx": 1}
            assert stats.failed == 2 and stats.soap_faults == 2  # the 500 Fault is not counted twice
            assert node.telemetry.requests_failed == 2
            async with aiohttp.ClientSession() as client:
                base = f"http://127.0.0.1:{node.management_port}"
                async with client.get(base + "/metrics") as resp:
                    metrics = await resp.json()
                async with client.get(base + "/signals") as resp:
                    signals = await resp.json()
                async with client.get(base + "/metrics/prometheus") as resp:
                    exposition = await resp.text()
            assert metrics["soap_faults"] == 2 and metrics["requests_failed"] == 2
            assert metrics["targets"]["primary"]["soap_faults"] == 2
            assert metrics["targets"]["primary"]["error_rate"] == 0.5
            faults = [s for s in signals if "soap_fault" in s]
            assert [(s["status_code"], s["http_status"], s["soap_fault"]) for s in faults] == [
                (500, 500, "soap:Server"), (500, 200, "soap:Server")]
            assert 'baton_soap_faults_total{node="api",role="service",target="primary"} 2.0' in exposition

    run(main())


def test_a_fault_split_across_chunks_is_counted_once() -> None:
    async def main() -> None:
        async with app_server(soap_app("chunky", chunked=True)) as port, \
                running_node(mode="soap", backend={"port": port}) as node:
            service = _service(node.port)
            assert await _call(service, "Add", 20, 22) == 42
            with pytest.raises(zeep.exceptions.Fault):
                await _call(service, "Quiet", "x")
            with pytest.raises(zeep.exceptions.Fault):
                await _call(service, "Boom", "x")
            stats = node.telemetry.targets["primary"]
            assert stats.soap_faults == 2 and stats.failed == 2 and stats.requests == 3

    run(main())


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_header_rules_route_on_the_soap_action(version: str) -> None:
    async def main() -> None:
        one, two = soap_app("one"), soap_app("two")
        async with app_server(one) as p1, app_server(two) as p2:
            routing = {"strategy": "header", "default_target": "b1",
                       "rules": [{"header": "SOAPAction", "value": "urn:calc#Add", "target": "b1"},
                                 {"header": "SOAPAction", "value": "urn:calc#Echo", "target": "b2"}],
                       "targets": [{"name": "b1", "host": "127.0.0.1", "port": p1},
                                   {"name": "b2", "host": "127.0.0.1", "port": p2}]}
            async with running_node(mode="soap", routing=routing) as node:
                service = _service(node.port, version)
                for _ in range(3):
                    assert await _call(service, "Add", 1, 1) == 2
                    assert await _call(service, "Echo", "x") == "two:x"
                assert one[CALLS] == ["urn:calc#Add"] * 3 and two[CALLS] == ["urn:calc#Echo"] * 3
                assert node.telemetry.targets["b1"].requests == node.telemetry.targets["b2"].requests == 3

    run(main())


def test_an_http_node_does_not_read_the_12_action() -> None:
    async def main() -> None:
        one, two = soap_app("one"), soap_app("two")
        async with app_server(one) as p1, app_server(two) as p2:
            routing = {"strategy": "header", "default_target": "b1",
                       "rules": [{"header": "SOAPAction", "value": "urn:calc#Echo", "target": "b2"}],
                       "targets": [{"name": "b1", "host": "127.0.0.1", "port": p1},
                                   {"name": "b2", "host": "127.0.0.1", "port": p2}]}
            async with running_node(routing=routing) as node:
                assert await _call(_service(node.port, "1.2"), "Echo", "x") == "one:x"

    run(main())


def test_health_judges_a_backend_answering_a_fault_unhealthy() -> None:
    async def main() -> None:
        async with app_server(soap_app("sick", health_fault=True)) as sick, app_server(soap_app("well")) as well:
            async with aiohttp.ClientSession() as client:
                for port, verdict in ((sick, "unhealthy"), (well, "healthy")):
                    async with running_node(mode="soap", backend={"port": port}) as node:
                        async with client.get(f"http://127.0.0.1:{node.management_port}/health") as resp:
                            health = await resp.json()
                    assert health["verdict"] == verdict, health
                    if verdict == "unhealthy":
                        assert "SOAP 1.1 Fault (soap:Server)" in health["detail"]
                async with running_node(backend={"port": sick}) as node:  # an http node reads the status only
                    async with client.get(f"http://127.0.0.1:{node.management_port}/health") as resp:
                        assert (await resp.json())["verdict"] == "healthy"

    run(main())


def test_a_mocked_soap_node_answers_zeep_from_the_contract_examples() -> None:
    async def main() -> None:
        async with running_node(mode="soap", backend={"mock": True}, contract=str(CONTRACT)) as node:
            assert await _call(_service(node.port), "Add", 1, 2) == 42  # the example envelope
            assert await _call(_service(node.port, "1.2"), "Add", 1, 2) == 1242  # the 1.2 example
            with pytest.raises(zeep.exceptions.Fault, match="urn:calc#Quiet.*known actions"):
                await _call(_service(node.port), "Quiet", "x")  # no such action in the contract
            async with aiohttp.ClientSession() as client:
                url = f"http://127.0.0.1:{node.port}/calc"
                async with client.post(url, data=envelope("1.1", "<Boom/>"),
                                       headers={"SOAPAction": '"urn:calc#Boom"', "Content-Type": "text/xml"}) as resp:
                    assert resp.status == 200 and b"mocked failure" in await resp.read()
            stats = node.telemetry.targets["primary"]
            assert stats.requests == 4 and stats.soap_faults == 2 and stats.failed == 2

    run(main())


HOSTILE = [
    pytest.param(os.urandom(10 * 1024 * 1024), id="10MB-random"),
    pytest.param(b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' + b"<a>" * 200_000
                 + b"</a>" * 200_000 + b"</s:Body></s:Envelope>", id="deep-nesting"),
    pytest.param(b"\xff\xfe<\x00s\x00:\x00E\x00\x80\x81" * 100, id="non-utf8"),
    pytest.param(b'{"this": "is json"}', id="not-xml"),
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_bodies_pass_through_a_proxy_and_get_a_client_fault_from_a_mock(body: bytes) -> None:
    async def echo(request: Any) -> Any:
        from aiohttp import web

        data = await request.read()
        return web.Response(body=data, content_type="text/xml")

    async def main() -> None:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/calc", echo)
        head = (b"POST /calc HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nSOAPAction: \"urn:calc#Add\"\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        async with app_server(app) as port, running_node(mode="soap", backend={"port": port}) as node:
            status, _, answer = await raw_exchange(node.port, head + body)
            assert status == 200 and answer == body  # passed through unchanged
            assert node.telemetry.targets["primary"].failed == 0
        async with running_node(mode="soap", backend={"mock": True}, contract=str(CONTRACT)) as node:
            status, headers, answer = await raw_exchange(node.port, head + body)
            assert headers["content-type"].startswith("text/xml")
            if body.startswith(b"<s:Envelope"):  # well-formed, however deep: the action's example answers
                assert status == 200 and b"<result>42</result>" in answer
            else:
                assert status == 500 and b"<faultcode>soap:Client</faultcode>" in answer
                assert node.telemetry.targets["primary"].failed == 1

    run(main())
