"""Pure wiring: env names, dependency URLs, service env, adapter config entries; log severities."""

from __future__ import annotations

from pathlib import Path

from baton.config import CircuitConfig
from baton.logpump import severity
from baton.state import CircuitState, NodeState, ProcessInfo, ServiceSlot
from baton.wiring import adapter_node, dependency_env, env_name, service_env

CONFIG = CircuitConfig.model_validate({
    "name": "c",
    "nodes": [
        {"name": "web", "port": 8001, "role": "ingress"},
        {"name": "ledger-db", "port": 8002, "role": "egress", "contract": "specs/db.yaml"},
        {"name": "api", "port": 8003},
    ],
    "edges": [
        {"source": "web", "target": "api", "policy": {"timeout_ms": 900, "retries": 1}},
        {"source": "api", "target": "ledger-db"},
        {"source": "web", "target": "ledger-db", "policy": {"timeout_ms": 500, "circuit_breaker_threshold": 3}},
    ],
    "security": {"control": {"auth": True, "token_env": "BATON_TOKEN"}},
})


def test_env_names_and_dependency_urls() -> None:
    assert env_name("ledger-db") == "LEDGER_DB"
    assert dependency_env(CONFIG, "web") == {"BATON_API_URL": "http://127.0.0.1:8003",
                                             "BATON_LEDGER_DB_URL": "http://127.0.0.1:8002"}
    assert dependency_env(CONFIG, "ledger-db") == {}


def test_service_env_names_match_the_original() -> None:
    env = service_env(CONFIG, CONFIG.node("api"), service_port=41000)
    assert env["BATON_SERVICE_PORT"] == "41000" and env["BATON_NODE_NAME"] == "api"
    assert env["BATON_CONTROL_PORT"] == "18003" and env["BATON_LEDGER_DB_URL"] == "http://127.0.0.1:8002"


def test_adapter_entries_merge_inbound_policies_and_mock_egress() -> None:
    db = adapter_node(CONFIG, CONFIG.node("ledger-db"), root=Path("/p"), backend={"host": "127.0.0.1", "port": 1})
    assert db["backend"] == {"mock": True}  # egress is always mocked
    assert db["contract"] == "/p/specs/db.yaml"
    assert db["policy"]["timeout_ms"] == 500 and db["policy"]["circuit_breaker_threshold"] == 3
    assert db["token_env"] == "BATON_TOKEN"
    api = adapter_node(CONFIG, CONFIG.node("api"), root=Path("/p"), backend={"host": "127.0.0.1", "port": 41000})
    assert api["backend"] == {"host": "127.0.0.1", "port": 41000} and api["policy"]["retries"] == 1
    assert adapter_node(CONFIG, CONFIG.node("web"), root=Path("/p"), backend=None)["backend"] == {"mock": True}


def test_pending_services_are_settled_by_pid() -> None:
    slot = ServiceSlot(is_mock=False, port=1, process=ProcessInfo(pid=11, pgid=11, start_ticks=1))
    other = ServiceSlot(is_mock=False, port=2, process=ProcessInfo(pid=12, pgid=12, start_ticks=1))
    state = CircuitState(pending=[slot, other], adapters={"api": NodeState(node_name="api", service=other)})
    state.settle(other)
    assert state.pending == [slot]
    assert [s.port for s in state.owned()] == [2, 1]
    boxed = ServiceSlot(is_mock=False, port=3, container="svc-a")
    state.pending.append(boxed)
    state.settle(ServiceSlot(is_mock=False, port=3, container="svc-b"))
    assert boxed in state.pending  # another container is not this one
    state.settle(ServiceSlot(is_mock=False, port=3, container="svc-a"))
    assert boxed not in state.pending


def test_log_severity() -> None:
    assert severity("<3>disk on fire", "stdout") == "error"
    assert severity("2026-01-01 WARNING low memory", "stdout") == "warning"
    assert severity("Traceback (most recent call last):", "stderr") == "error"
    assert severity("GET / 200", "stderr") == "warning"
    assert severity("GET / 200", "stdout") == "info"
    assert severity("FATAL: cannot bind", "stdout") == "critical"


def test_node_limits_in_baton_yaml_reach_the_adapter_which_accepts_them() -> None:
    from baton_adapter.config import NodeConfig as AdapterNodeConfig

    config = CircuitConfig.model_validate({"name": "c", "nodes": [
        {"name": "wire", "port": 8001, "proxy_mode": "protobuf",
         "limits": {"stream_idle_s": 30, "max_frame_bytes": 1048576}},
        {"name": "api", "port": 8002}]})
    wire = adapter_node(config, config.node("wire"), root=Path("/p"), backend=None)
    assert wire["limits"] == {"hold_s": wire["limits"]["hold_s"], "stream_idle_s": 30.0, "max_frame_bytes": 1048576}
    limits = AdapterNodeConfig.from_mapping({**wire, "port": 8001}).limits
    assert (limits.stream_idle_s, limits.max_frame_bytes) == (30.0, 1048576)
    assert set(adapter_node(config, config.node("api"), root=Path("/p"), backend=None)["limits"]) == {"hold_s"}
