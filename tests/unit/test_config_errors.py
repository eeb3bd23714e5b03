"""Bad baton.yaml files give one sentence naming the file, the line or field path, and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.config import CircuitConfig, YamlDocument, validate_document
from baton.errors import ConfigError


def check(tmp_path: Path, text: str) -> str:
    path = tmp_path / "baton.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        validate_document(YamlDocument.load(path, label="baton.yaml"), CircuitConfig)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("baton.yaml")
    return message


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    message = check(tmp_path, "name: x\nnodes:\n  - name: api\n   port: 8001\n")
    assert "line 4, column 4" in message and "fix the YAML syntax" in message


def test_unclosed_flow_mapping(tmp_path: Path) -> None:
    assert "line " in check(tmp_path, "name: x\nnodes: [{name: api, port: 8001\n")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    message = check(tmp_path, "name: x\nname: y\n")
    assert "line 2" in message and "duplicate" in message


def test_a_list_at_top_level_is_refused(tmp_path: Path) -> None:
    assert "expected a mapping" in check(tmp_path, "- name: api\n")


def test_unknown_node_in_an_edge(tmp_path: Path) -> None:
    message = check(tmp_path, "nodes:\n  - name: api\n    port: 8001\nedges:\n  - source: api\n    target: db\n")
    assert message.startswith("baton.yaml line 6 (edges[0].target): edge api -> db names unknown node 'db'")


def test_duplicate_port(tmp_path: Path) -> None:
    message = check(tmp_path, "nodes:\n  - name: api\n    port: 8001\n  - name: web\n    port: 8001\n")
    assert "line 5 (nodes[1].port)" in message and "8001" in message


def test_egress_as_source(tmp_path: Path) -> None:
    message = check(
        tmp_path,
        "nodes:\n- name: api\n  port: 8001\n- name: stripe\n  port: 8002\n  role: egress\n"
        "edges:\n- source: stripe\n  target: api\n",
    )
    assert "line 8 (edges[0].source)" in message and "egress node 'stripe' cannot be an edge source" in message


def test_wrong_type_names_field_and_value(tmp_path: Path) -> None:
    message = check(tmp_path, "nodes:\n  - name: api\n    port: eighty\n")
    assert "line 3 (nodes[0].port)" in message and "'eighty'" in message


def test_bad_enum_value(tmp_path: Path) -> None:
    message = check(tmp_path, "nodes:\n  - name: api\n    port: 8001\n    role: admin\n")
    assert "nodes[0].role" in message and "'service'" in message and "'admin'" in message


def test_a_mode_no_adapter_could_serve_is_refused_by_its_name(tmp_path: Path) -> None:
    # any well-formed name may be a plugin's mode (checked when the circuit starts: tests/unit/test_modes.py)
    message = check(tmp_path, "nodes:\n  - name: api\n    port: 8001\n    proxy_mode: FTP!\n")
    assert "nodes[0].proxy_mode" in message and "'FTP!'" in message


def test_missing_required_field(tmp_path: Path) -> None:
    message = check(tmp_path, "nodes:\n  - name: api\n")
    assert "line 2 (nodes[0].port): this field is required but missing" in message


def test_unsupported_version(tmp_path: Path) -> None:
    assert "(version)" in check(tmp_path, "name: x\nversion: 3\n")


def test_several_problems_are_counted(tmp_path: Path) -> None:
    assert "and 1 more problem" in check(tmp_path, "nodes:\n  - name: API\n    port: 1\n")


def test_tls_full_without_a_key_names_the_missing_field(tmp_path: Path) -> None:
    message = check(tmp_path, "nodes:\n  - name: api\n    port: 8001\nsecurity:\n  tls:\n    mode: full\n"
                              "    cert: certs/server.pem\n")
    assert message.startswith("baton.yaml line 5 (security.tls.key): tls mode full needs both cert and key")
    assert "found no key" in message and "use mode circuit" in message
