"""The config models: fields, defaults and validators of baton.yaml and baton-service.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from baton.config import (
    CircuitConfig,
    EdgePolicy,
    NodeConfig,
    RoutingConfig,
    ServiceManifest,
    TLSConfig,
    YamlDocument,
    derive_management_port,
    validate_document,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load(path: Path) -> CircuitConfig:
    return validate_document(YamlDocument.load(path), CircuitConfig)


@pytest.mark.parametrize(
    ("port", "expected"),
    [(8001, 18001), (55535, 65535), (55536, 56536), (64600, 63600), (65535, 64535), (1024, 11024)],
)
def test_management_port_is_derived_like_the_original(port: int, expected: int) -> None:
    assert derive_management_port(port) == expected
    assert NodeConfig(name="n", port=port).management_port == expected


def test_explicit_management_port_is_kept() -> None:
    assert NodeConfig(name="n", port=8001, management_port=9999).management_port == 9999


@pytest.mark.parametrize("name", ["Api", "1api", "api!", "", "api.v2", "-api"])
def test_node_names_must_match_the_pattern(name: str) -> None:
    with pytest.raises(ValidationError):
        NodeConfig(name=name, port=8001)


@pytest.mark.parametrize("port", [80, 1023, 65536])
def test_ports_outside_1024_65535_are_refused(port: int) -> None:
    with pytest.raises(ValidationError):
        NodeConfig(name="api", port=port)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b"])
def test_metadata_values_refuse_control_characters(value: str) -> None:
    with pytest.raises(ValidationError, match="CR, LF or NUL"):
        NodeConfig(name="api", port=8001, metadata={"k": value})


def test_node_defaults_match_the_original() -> None:
    node = NodeConfig(name="api", port=8001)
    assert (node.host, node.proxy_mode, node.role, node.contract) == ("127.0.0.1", "http", "service", "")
    assert node.data_access.reads == [] and node.authority == [] and node.openapi_spec == ""


def test_edge_policy_defaults_and_bounds() -> None:
    policy = EdgePolicy()
    assert (policy.timeout_ms, policy.retries, policy.retry_backoff_ms, policy.circuit_breaker_threshold) == (
        30000, 0, 100, 0,
    )
    with pytest.raises(ValidationError):
        EdgePolicy(retries=11)
    with pytest.raises(ValidationError):
        EdgePolicy(retries=-1)


def test_policies_of_edges_into_one_node_merge() -> None:
    merged = EdgePolicy.merge([
        EdgePolicy(timeout_ms=5000, retries=1, circuit_breaker_threshold=0),
        EdgePolicy(timeout_ms=2000, retries=3, circuit_breaker_threshold=7),
        EdgePolicy(timeout_ms=9000, retries=0, circuit_breaker_threshold=4),
    ])
    assert (merged.timeout_ms, merged.retries, merged.circuit_breaker_threshold) == (2000, 3, 4)


def test_routing_weights_must_sum_to_100() -> None:
    targets = [{"name": "a", "port": 9001, "weight": 80}, {"name": "b", "port": 9002, "weight": 30}]
    with pytest.raises(ValidationError, match="sum to 100, found 110"):
        RoutingConfig(strategy="weighted", targets=targets)
    targets[1]["weight"] = 20
    assert RoutingConfig(strategy="canary", targets=targets).targets[1].weight == 20


def test_header_routing_needs_rules_and_a_default_target() -> None:
    targets = [{"name": "a", "port": 9001}, {"name": "b", "port": 9002}]
    with pytest.raises(ValidationError, match="default_target"):
        RoutingConfig(strategy="header", targets=targets, rules=[{"header": "x-v", "value": "2", "target": "b"}])
    with pytest.raises(ValidationError, match="at least one rule"):
        RoutingConfig(strategy="header", targets=targets, default_target="a")
    with pytest.raises(ValidationError, match="unknown targets"):
        RoutingConfig(strategy="header", targets=targets, default_target="c",
                      rules=[{"header": "x-v", "value": "2", "target": "b"}])


def test_tls_needs_files_in_full_mode_only_and_ordered_thresholds() -> None:
    default = TLSConfig()
    assert default.mode == "off" and default.rotate_check_interval_s == 3600
    assert (default.warning_days, default.critical_days, default.lifetime_days) == (30, 7, 90)
    with pytest.raises(ValidationError, match="needs both cert and key"):
        TLSConfig(mode="full")
    with pytest.raises(ValidationError, match="found no key: set them to PEM files, or use mode circuit"):
        TLSConfig(mode="full", cert="certs/server.pem")
    assert TLSConfig(mode="full", cert="c.pem", key="k.pem").cert == "c.pem"
    assert TLSConfig(mode="circuit").cert == ""  # the circuit CA issues every certificate
    assert TLSConfig(mode="circuit", lifetime_days=0.0001).lifetime_days == 0.0001  # seconds-long, for tests
    with pytest.raises(ValidationError, match="lifetime_days"):
        TLSConfig(lifetime_days=0)
    with pytest.raises(ValidationError, match="critical_days"):
        TLSConfig(warning_days=5, critical_days=7)


def test_circuit_level_validators() -> None:
    node = {"name": "api", "port": 8001}
    with pytest.raises(ValidationError, match="unique"):
        CircuitConfig(nodes=[node, {"name": "api", "port": 8002}])
    with pytest.raises(ValidationError, match="ports must be unique"):
        CircuitConfig(nodes=[node, {"name": "web", "port": 8001}])
    with pytest.raises(ValidationError, match="ports must be unique"):  # a port colliding with a derived mgmt port
        CircuitConfig(nodes=[node, {"name": "web", "port": 18001}])
    with pytest.raises(ValidationError, match="unknown node 'db'"):
        CircuitConfig(nodes=[node], edges=[{"source": "api", "target": "db"}])
    with pytest.raises(ValidationError, match="itself"):
        CircuitConfig(nodes=[node], edges=[{"source": "api", "target": "api"}])
    with pytest.raises(ValidationError, match="egress node 'stripe' cannot be an edge source"):
        CircuitConfig(nodes=[node, {"name": "stripe", "port": 8003, "role": "egress"}],
                      edges=[{"source": "stripe", "target": "api"}])
    with pytest.raises(ValidationError, match="unknown node 'ghost'"):
        CircuitConfig(nodes=[node], routing={"ghost": {"strategy": "single"}})


def test_a_v1_file_of_the_original_loads_unchanged() -> None:
    config = load(FIXTURES / "original_v1.yaml")
    assert config.version == 1
    assert [n.name for n in config.nodes] == ["api", "database"]
    assert config.node("database").proxy_mode == "tcp" and config.node("database").role == "egress"
    assert config.security.tls.mode == "full"
    assert config.federation.identity.name == "cluster-east"
    assert config.federation.heartbeat_interval_s == 30 and config.federation.failover_threshold == 3


def test_a_v2_file_with_every_section_loads() -> None:
    config = load(FIXTURES / "full_v2.yaml")
    api = config.node("api")
    assert api.data_access.reads == ["PII", "PUBLIC"] and api.authority == ["user.*"]
    assert api.management_port == 18002
    assert config.edges[1].policy.retries == 3 and config.edges[1].data_tiers_in_flight == ["FINANCIAL"]
    assert config.routing["api"].targets[0].weight == 80
    assert config.security.control.token_env == "BATON_TOKEN"
    assert config.taint.categories == ["email", "ssn"] and config.taint.scan_responses is False
    assert config.arbiter.forward_spans is True and config.ledger.api_endpoint.endswith("7701")
    assert config.deploy.region == "europe-west1" and config.services == ["services/api"]
    assert config.inbound_policy("ledger-db").timeout_ms == 2000


def test_service_manifest_dependencies() -> None:
    manifest = ServiceManifest.model_validate({
        "name": "api",
        "api_spec": "specs/openapi.yaml",
        "dependencies": [{"name": "database", "required": True, "expected_api": "specs/db.yaml"},
                         {"name": "cache", "optional": True}],
    })
    assert [d.required for d in manifest.dependencies] == [True, False]
    with pytest.raises(ValidationError, match="itself"):
        ServiceManifest.model_validate({"name": "api", "dependencies": [{"name": "api"}]})
