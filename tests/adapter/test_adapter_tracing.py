"""Request spans over OTLP/HTTP, on real adapters and a real receiver on 127.0.0.1 (tests/otlp_receiver.py decodes
with opentelemetry-proto's messages): a request with a ``traceparent`` through two adapters gives two server
spans of that trace, the first a child of the client's span and the parent of the second; the node whose
contract declares ``x-data-classification`` tags its span; signals carry the span ids; a sampled-out trace is not
recorded; a collector that is down or refuses costs the requests nothing and every span is counted once; a node
without a tracing section has no tracer at all."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from _adapter_support import app_server, hello_app, refused_port, run, running_node, wait_for
from baton_adapter.classification import Classifier
from baton_adapter.config import ConfigError, NodeConfig, TracingConfig
from baton_adapter.tracing import OtlpExporter
from otlp_receiver import OtlpReceiver

CONTRACT = """\
openapi: 3.0.3
info: {title: Users, version: 1.0.0}
paths:
  /users/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses:
        "200":
          description: The user.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/User"}
  /health:
    get:
      responses: {"200": {description: ok}}
  /cards:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                holder: {allOf: [{$ref: "#/components/schemas/Holder"}]}
      responses: {"201": {description: stored}}
components:
  schemas:
    User:
      type: object
      required: [id, email]
      properties:
        id: {type: integer}
        email: {type: string, x-data-classification: PII}
    Holder:
      type: object
      properties:
        number: {type: string, x-data-classification: [FINANCIAL, PII]}
"""


def _traceparent(sampled: bool = True) -> tuple[str, str, str]:
    trace, span = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace}-{span}-{'01' if sampled else '00'}", trace, span


def _tracing(receiver_or_url: Any, **more: Any) -> dict[str, Any]:
    url = receiver_or_url if isinstance(receiver_or_url, str) else receiver_or_url.endpoint
    return {"otlp_endpoint": url, **more}


async def _prometheus(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    async with session.get(f"http://127.0.0.1:{port}/metrics/prometheus") as resp:
        text = await resp.text()
    return {s.labels["outcome"]: s.value for f in text_string_to_metric_families(text)
            if f.name == "baton_trace_spans" for s in f.samples}


def test_a_trace_through_two_adapters_gives_parent_and_child_spans_tagged_with_classifications(
        tmp_path: Path) -> None:
    contract = tmp_path / "users.yaml"
    contract.write_text(CONTRACT)
    header, trace, client_span = _traceparent()

    async def main() -> None:
        with OtlpReceiver() as receiver:
            async with running_node(name="users", mock=True, contract=str(contract),
                                    tracing=_tracing(receiver, service_namespace="shop")) as users, \
                    running_node(name="gateway", role="ingress", backend={"port": users.port},
                                 tracing=_tracing(receiver, service_namespace="shop")) as gateway, \
                    aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{gateway.port}/users/42",
                                       headers={"traceparent": header}) as resp:
                    assert resp.status == 200 and "email" in await resp.json()
                spans = await asyncio.to_thread(receiver.wait_for, lambda got: len(got) >= 2 and got, "two spans")
                by_node = {s.resource["service.name"]: s for s in spans}
                first, second = by_node["gateway"], by_node["users"]
                assert first.trace_id == second.trace_id == trace
                assert first.parent_span_id == client_span  # the client's span is the gateway's parent
                assert second.parent_span_id == first.span_id  # what the gateway sent upstream
                assert first.kind == second.kind == 2  # SERVER
                assert first.name == "GET" and second.name == "GET /users/{id}"
                assert second.attributes["baton.request.classifications"] == ["PII"]
                assert "baton.request.classifications" not in first.attributes  # the gateway has no contract
                assert second.attributes["http.route"] == "/users/{id}"
                assert (second.attributes["http.request.method"], second.attributes["url.path"],
                        second.attributes["http.response.status_code"], second.attributes["baton.node"]) == (
                    "GET", "/users/42", 200, "users")
                assert second.resource["service.namespace"] == "shop"
                assert second.resource["service.instance.id"] == users.instance
                assert first.start_ns <= second.start_ns <= second.end_ns <= first.end_ns
                signal = gateway.telemetry.signals_json(1)[0]
                assert (signal["trace_id"], signal["span_id"]) == (trace, first.span_id)
                assert await _prometheus(session, gateway.management_port) == {
                    "exported": 1.0, "dropped": 0.0, "failed": 0.0, "unsampled": 0.0}

                # a body with nested fields declared FINANCIAL and PII through allOf and $ref
                async with session.post(f"http://127.0.0.1:{users.port}/cards", json={"holder": {"number": "4"}},
                                        headers={"traceparent": _traceparent()[0]}) as resp:
                    assert resp.status == 201
                card = await asyncio.to_thread(receiver.wait_for, lambda got: [s for s in got if s.name ==
                                                                                "POST /cards"], "the POST span")
                assert card[0].attributes["baton.request.classifications"] == ["FINANCIAL", "PII"]

    run(main())


def test_a_sampled_out_trace_is_not_recorded_and_a_ratio_samples_by_trace_id(tmp_path: Path) -> None:
    async def main() -> None:
        with OtlpReceiver() as receiver:
            async with app_server(hello_app()) as backend, \
                    running_node(backend={"port": backend}, tracing=_tracing(receiver)) as node, \
                    running_node(name="none", backend={"port": backend},
                                 tracing=_tracing(receiver.endpoint + "/v1/traces", sample_rate=0.0)) as none, \
                    aiohttp.ClientSession() as session:
                header, trace, _ = _traceparent(sampled=False)
                for port in (node.port, none.port):
                    async with session.get(f"http://127.0.0.1:{port}/", headers={"traceparent": header}) as resp:
                        assert resp.status == 200
                marker = _traceparent()
                for port in (node.port, none.port):
                    async with session.get(f"http://127.0.0.1:{port}/x", headers={"traceparent": marker[0]}) as r:
                        assert r.status == 200
                spans = await asyncio.to_thread(receiver.wait_for, lambda got: got, "the sampled span")
                await wait_for(lambda: node.tracer.unsampled + node.tracer.exported == 2, 10)  # type: ignore[union-attr]
                await wait_for(lambda: none.tracer.unsampled == 2, 10)  # type: ignore[union-attr]
                assert [(s.trace_id, s.resource["service.name"]) for s in receiver.received()] == [(marker[1], "api")]
                assert spans[0].attributes["url.path"] == "/x"

    run(main())


def test_a_collector_down_or_refusing_costs_nothing_and_every_span_is_counted_once() -> None:
    requests = 300

    async def main() -> None:
        with OtlpReceiver(status=503) as refusing:
            async with app_server(hello_app()) as backend, \
                    running_node(backend={"port": backend},
                                 tracing=_tracing(f"http://127.0.0.1:{refused_port()}", queue_size=16)) as down, \
                    running_node(name="refused", backend={"port": backend}, tracing=_tracing(refusing)) as refused, \
                    aiohttp.ClientSession() as session:

                async def burst(port: int) -> list[int]:
                    async def one(i: int) -> int:
                        async with session.get(f"http://127.0.0.1:{port}/r/{i}") as resp:
                            await resp.read()
                            return resp.status
                    return await asyncio.gather(*(one(i) for i in range(requests)))

                assert set(await burst(down.port)) == {200}
                assert set(await burst(refused.port)) == {200}
                for node in (down, refused):
                    tracer = node.tracer
                    assert tracer is not None
                    await wait_for(lambda t=tracer: t.exported + t.dropped + t.failed + t.unsampled == requests, 15)
                    assert tracer.exported == 0 and tracer.failed > 0
                    counts = await _prometheus(session, node.management_port)
                    assert sum(counts.values()) == requests and counts["failed"] == tracer.failed
                assert down.tracer.dropped > 0  # type: ignore[union-attr]  # 300 at once into a queue of 16
                assert refusing.requests >= 1 and refusing.received() == []

    run(main())


def test_without_a_tracing_section_there_is_no_tracer_and_no_exporter() -> None:
    async def main() -> None:
        async with app_server(hello_app()) as backend, running_node(backend={"port": backend}) as node, \
                aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{node.port}/") as resp:
                assert resp.status == 200
            assert node.tracer is None and OtlpExporter._shared == {}
            assert "baton_trace_spans" not in await _prometheus_text(session, node.management_port)

    run(main())


async def _prometheus_text(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/metrics/prometheus") as resp:
        return await resp.text()


@pytest.mark.parametrize(("tracing", "message"), [
    ({"otlp_endpoint": "collector:4318"}, "otlp_endpoint must be an http(s) URL"),
    ({"otlp_endpoint": "http://c:4318", "sample_rate": 2}, "sample_rate must be a number in 0.0..1.0"),
    ({"otlp_endpoint": "http://c:4318", "batch": 1}, "got unknown key(s) ['batch']"),
    ("http://c:4318", "tracing must be an object"),
])
def test_a_bad_tracing_section_is_refused_in_one_sentence(tracing: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        NodeConfig.from_mapping({"name": "api", "port": 0, "tracing": tracing})


def test_the_traces_url_and_the_classifier_without_a_contract() -> None:
    assert TracingConfig("http://c:4318").traces_url == "http://c:4318/v1/traces"
    assert TracingConfig("https://c/otlp/v1/traces/").traces_url == "https://c/otlp/v1/traces"
    assert Classifier.load(None).lookup(b"GET", b"/x") == ("", ())
    assert Classifier.load("/nonexistent/contract.yaml").lookup(b"GET", b"/x") == ("", ())
