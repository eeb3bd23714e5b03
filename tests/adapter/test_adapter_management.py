"""The management API: auth, status/health, Prometheus exposition, signals, events, mocks, config checks."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from baton_adapter.config import AdapterConfig, ConfigError, NodeConfig, default_management_port, load_config
from baton_adapter.events import EventLog
from baton_adapter.node import Node

from _adapter_support import app_server, refused_port, hello_app, node_config, raw_exchange, run, running_node


def test_token_auth_401_without_200_with_and_503_when_the_token_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTER_TEST_TOKEN", "s3cret-token")

    async def main() -> None:
        async with running_node(token_env="ADAPTER_TEST_TOKEN") as node, aiohttp.ClientSession() as client:
            base = f"http://127.0.0.1:{node.management_port}"
            for path in ("/status", "/metrics", "/metrics/prometheus", "/signals", "/routing", "/events"):
                async with client.get(base + path) as resp:
                    assert resp.status == 401, path
            async with client.post(base + "/backend", json={"mock": True}) as resp:
                assert resp.status == 401
            async with client.get(base + "/status", headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
            async with client.get(base + "/status", headers={"Authorization": "Bearer s3cret-token"}) as resp:
                assert resp.status == 200
            monkeypatch.delenv("ADAPTER_TEST_TOKEN")
            async with client.get(base + "/status", headers={"Authorization": "Bearer s3cret-token"}) as resp:
                assert resp.status == 503
                assert "ADAPTER_TEST_TOKEN" in (await resp.json())["error"]

    run(main())


def test_non_loopback_management_bind_without_token_is_refused() -> None:
    async def main() -> None:
        node = Node(node_config(management_host="0.0.0.0"))
        with pytest.raises(ConfigError, match="without a token"):
            await node.start()
        assert node.server is None

    run(main())


def test_status_and_health_shapes() -> None:
    async def main() -> None:
        async with app_server(hello_app()) as port, running_node(backend={"port": port}) as node, \
                aiohttp.ClientSession() as client:
            base = f"http://127.0.0.1:{node.management_port}"
            async with client.get(base + "/status") as resp:
                status = await resp.json()
            for key in ("node", "listening", "mode", "backend", "running", "routing_strategy", "routing_locked"):
                assert key in status
            assert status["listening"] is True and status["backend"]["port"] == port
            async with client.get(base + "/health") as resp:
                health = await resp.json()
            assert set(health) == {"node", "verdict", "latency_ms", "detail", "instance", "pid"}
            assert health["verdict"] == "healthy"
            async with client.post(base + "/backend", json={"host": "127.0.0.1", "port": refused_port()}) as resp:
                assert resp.status == 200
            async with client.get(base + "/health") as resp:
                assert (await resp.json())["verdict"] == "unhealthy"

    run(main())


def test_prometheus_exposition_parses_and_counts_by_target_and_class() -> None:
    async def main() -> None:
        async with app_server(hello_app()) as port, running_node(backend={"port": port}, role="ingress") as node:
            for _ in range(3):
                await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            async with aiohttp.ClientSession() as client:
                async with client.get(f"http://127.0.0.1:{node.management_port}/metrics/prometheus") as resp:
                    assert resp.status == 200
                    text = await resp.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {"baton_requests", "baton_requests_failed", "baton_latency_seconds", "baton_active_connections",
                "baton_bytes_sent", "baton_attempts"} <= set(families)
        requests = [s for s in families["baton_requests"].samples if s.name == "baton_requests_total"]
        assert requests[0].labels == {"node": "api", "role": "ingress", "target": "primary", "status_class": "2xx"}
        assert requests[0].value == 3
        counts = [s for s in families["baton_latency_seconds"].samples if s.name.endswith("_count")]
        assert counts[0].value == 3
        assert families["baton_latency_seconds"].type == "histogram"
        assert "# HELP baton_requests_total" in text and "# TYPE baton_requests_total counter" in text

    run(main())


def test_signals_ring_is_bounded_and_last_n_works() -> None:
    async def main() -> None:
        async with app_server(hello_app()) as port, running_node(backend={"port": port},
                                                              limits={"signals_size": 5}) as node:
            for i in range(8):
                await raw_exchange(node.port, f"GET /p{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            async with aiohttp.ClientSession() as client:
                async with client.get(f"http://127.0.0.1:{node.management_port}/signals") as resp:
                    all_signals = await resp.json()
                async with client.get(f"http://127.0.0.1:{node.management_port}/signals?last_n=2") as resp:
                    last = await resp.json()
                async with client.get(f"http://127.0.0.1:{node.management_port}/signals?last_n=x") as resp:
                    assert resp.status == 400
            assert [s["path"] for s in all_signals] == [f"/p{i}" for i in range(3, 8)]
            assert [s["path"] for s in last] == ["/p6", "/p7"]
            assert last[0]["method"] == "GET" and last[0]["status_code"] == 200 and len(last[0]["trace_id"]) == 32
            assert last[0]["body_bytes"] == 5

    run(main())


def test_events_are_validated_persisted_and_listed(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"

    async def main() -> None:
        async with running_node(events=EventLog(str(events_file))) as node, aiohttp.ClientSession() as client:
            base = f"http://127.0.0.1:{node.management_port}"
            event = {"type": "order_failed", "message": "card declined", "severity": "warning", "data": {"id": 7}}
            async with client.post(base + "/events", json=event) as resp:
                assert resp.status == 201
            async with client.post(base + "/events", json={"type": "x", "severity": "loud"}) as resp:
                assert resp.status == 400
                assert "severity" in (await resp.json())["error"]
            async with client.get(base + "/events?last_n=5") as resp:
                listed = await resp.json()
        assert len(listed) == 1 and listed[0]["type"] == "order_failed" and listed[0]["node_name"] == "api"
        lines = events_file.read_text().splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0])["data"] == {"id": 7}

    run(main())


def test_mock_backend_and_switching_between_mock_and_real() -> None:
    async def main() -> None:
        async with app_server(hello_app("real")) as port, running_node(mock=True) as node, \
                aiohttp.ClientSession() as client:
            code, _, body = await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 200 and json.loads(body)["node"] == "api"
            code, _, body = await raw_exchange(node.port, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 200
            base = f"http://127.0.0.1:{node.management_port}"
            async with client.post(base + "/backend", json={"host": "127.0.0.1", "port": port}) as resp:
                assert resp.status == 200
            assert (await raw_exchange(node.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))[2] == b"real"
            async with client.post(base + "/backend", json={"mock": True}) as resp:
                assert resp.status == 200
            code, _, body = await raw_exchange(node.port, b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
            assert code < 500
            async with client.get(base + "/status") as resp:
                assert (await resp.json())["backend"]["mock"] is True

    run(main())


def test_config_model_validation_and_defaults() -> None:
    node = NodeConfig.from_mapping({"name": "api", "port": 9001, "backend": {"host": "127.0.0.1", "port": 8001}})
    assert node.management_port == 19001 and node.policy.timeout_ms == 30000 and node.policy.retries == 0
    assert default_management_port(60000) == 61000
    with pytest.raises(ConfigError, match="health_path"):
        NodeConfig.from_mapping({"name": "api", "port": 9001, "health_path": "/x\r\nHost: evil"})
    with pytest.raises(ConfigError, match="health_path"):
        NodeConfig.from_mapping({"name": "api", "port": 9001, "health_path": "health"})
    with pytest.raises(ConfigError, match="retries"):
        NodeConfig.from_mapping({"name": "api", "port": 9001, "policy": {"retries": 11}})
    with pytest.raises(ConfigError, match="name"):
        NodeConfig.from_mapping({"name": "Api", "port": 9001})
    with pytest.raises(ConfigError, match="unknown"):
        NodeConfig.from_mapping({"name": "api", "port": 9001, "colour": "red"})
    egress = NodeConfig.from_mapping({"name": "pay", "port": 9002, "role": "egress"})
    assert egress.backend is not None and egress.backend.mock
    config = AdapterConfig.from_mapping({"nodes": [{"name": "a", "port": 9001}, {"name": "b", "port": 9002}]})
    assert [n.name for n in config.nodes] == ["a", "b"]
    with pytest.raises(ConfigError, match="unique"):
        AdapterConfig.from_mapping({"nodes": [{"name": "a", "port": 9001}, {"name": "a", "port": 9002}]})


def test_yaml_config_file_with_several_nodes_and_routing(tmp_path: Path) -> None:
    path = tmp_path / "adapter.yaml"
    path.write_text(
        "events_file: events.jsonl\n"
        "shutdown_grace_s: 3\n"
        "nodes:\n"
        "  - name: api\n"
        "    port: 9001\n"
        "    backend: {host: 127.0.0.1, port: 8001}\n"
        "    policy: {timeout_ms: 500, retries: 2}\n"
        "  - name: users\n"
        "    port: 9002\n"
        "    mock: true\n"
        "    routing:\n"
        "      strategy: weighted\n"
        "      targets: [{name: a, host: 127.0.0.1, port: 8001, weight: 90}, {name: b, mock: true, weight: 10}]\n"
    )
    config = load_config(path)
    assert config.shutdown_grace_s == 3 and config.events_file == "events.jsonl"
    api, users = config.nodes
    assert api.policy.retries == 2 and api.management_port == 19001
    assert users.backend is not None and users.backend.mock
    assert Node(users).routing.strategy == "weighted"


def test_contract_mock_answers_through_the_proxy(tmp_path: Path) -> None:
    contract = tmp_path / "pets.yaml"
    contract.write_text(
        "openapi: 3.0.3\n"
        "info: {title: pets, version: '1'}\n"
        "paths:\n"
        "  /pets/{id}:\n"
        "    get:\n"
        "      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]\n"
        "      responses:\n"
        "        '200':\n"
        "          description: a pet\n"
        "          content:\n"
        "            application/json:\n"
        "              schema: {type: object, properties: {name: {type: string}}, required: [name]}\n"
        "              example: {name: Rex}\n"
    )

    async def main() -> None:
        async with running_node(mock=True, contract=str(contract)) as node:
            code, headers, body = await raw_exchange(node.port, b"GET /pets/7 HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 200 and headers["content-type"].startswith("application/json")
            assert "name" in json.loads(body)
            code, head_headers, head_body = await raw_exchange(
                node.port, b"HEAD /pets/7 HTTP/1.1\r\nHost: t\r\n\r\n", read_body=False)
            assert code == 200 and head_body == b"" and int(head_headers["content-length"]) == len(body)
            code, _, _ = await raw_exchange(node.port, b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 404
            code, _, body = await raw_exchange(node.port, b"GET /pets/seven HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code == 422 and json.loads(body)["problems"]
        async with running_node(mock=True, contract=str(contract), validate_requests=False) as lenient:
            code, _, _ = await raw_exchange(lenient.port, b"GET /pets/seven HTTP/1.1\r\nHost: t\r\n\r\n")
            assert code != 422  # validation off for this node: the mock answers anyway

    run(main())
