"""Lossless editing: comments, key order, unknown keys and indentation survive every edit."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from baton.config import NodeRole, ProxyMode, YamlDocument
from baton.config.edits import add_edge, add_node, add_service_dir, remove_edge, remove_node, set_contract
from baton.errors import UsageError
from baton.migrate import migrate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "baton.yaml"
    target.write_text((FIXTURES / name).read_text())
    return target


def _diff(before: str, after: str) -> tuple[list[str], list[str]]:
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    added = [l[1:] for l in lines if l.startswith("+") and not l.startswith("+++")]
    removed = [l[1:] for l in lines if l.startswith("-") and not l.startswith("---")]
    return added, removed


@pytest.mark.parametrize("fixture", ["full_v2.yaml", "original_v1.yaml"])
def test_an_untouched_file_is_written_back_byte_for_byte(tmp_path: Path, fixture: str) -> None:
    path = _copy(tmp_path, fixture)
    doc = YamlDocument.load(path)
    doc.save()
    assert path.read_text() == (FIXTURES / fixture).read_text()


def test_adding_a_node_changes_only_the_added_lines(tmp_path: Path) -> None:
    path = _copy(tmp_path, "full_v2.yaml")
    before = path.read_text()
    doc = YamlDocument.load(path)
    add_node(doc.data, "search", port=8500, role=NodeRole.SERVICE, mode=ProxyMode.GRPC)
    doc.save()
    added, removed = _diff(before, path.read_text())
    assert removed == []
    assert added == ["  - name: search", "    port: 8500", "    proxy_mode: grpc"]


@pytest.mark.parametrize(
    "text",
    [
        "name: a\nnodes:\n- name: api\n  port: 8001\nedges: []\n",
        "name: a\nnodes:\n    - name: api\n      port: 8001\nsecurity:\n    tls:\n        mode: off\n",
        "name: a\nnodes:\n  - name: api\n    port: 8001\nsecurity:\n  tls:\n    mode: off\n",
    ],
)
def test_indentation_style_is_kept(tmp_path: Path, text: str) -> None:
    path = tmp_path / "baton.yaml"
    path.write_text(text)
    doc = YamlDocument.load(path)
    add_node(doc.data, "web", port=8100)
    doc.save()
    added, removed = _diff(text, path.read_text())
    assert removed == [] and [l.strip() for l in added] == ["- name: web", "port: 8100"]


def test_edges_section_is_created_in_place_and_flow_lists_become_blocks(tmp_path: Path) -> None:
    path = tmp_path / "baton.yaml"
    path.write_text("# mine\nname: a\nversion: 2\nnodes: []\ndeploy:\n  provider: local\n")
    doc = YamlDocument.load(path)
    add_node(doc.data, "api", port=8001)
    add_node(doc.data, "db", port=8002, role=NodeRole.EGRESS)
    add_edge(doc.data, "api", "db", label="reads")
    doc.save()
    assert path.read_text() == (
        "# mine\nname: a\nversion: 2\nnodes:\n- name: api\n  port: 8001\n- name: db\n  port: 8002\n  role: egress\n"
        "edges:\n- source: api\n  target: db\n  label: reads\ndeploy:\n  provider: local\n"
    )


def test_removing_a_node_removes_its_edges_and_routing_only(tmp_path: Path) -> None:
    path = _copy(tmp_path, "full_v2.yaml")
    doc = YamlDocument.load(path)
    removed = remove_node(doc.data, "api")
    doc.save()
    text = path.read_text()
    assert removed == [("gateway", "api"), ("api", "ledger-db")]
    assert "name: api" not in text and "  api:\n" not in text
    for kept in ("# the front door", "x-team-notes:", "oncall:", "token_env: BATON_TOKEN", "name: ledger-db"):
        assert kept in text


def test_edits_refuse_what_cannot_work(tmp_path: Path) -> None:
    path = _copy(tmp_path, "full_v2.yaml")
    doc = YamlDocument.load(path)
    with pytest.raises(UsageError, match="already exists"):
        add_node(doc.data, "api", port=9100)
    with pytest.raises(UsageError, match="already used"):
        add_node(doc.data, "web", port=18001)  # gateway's management port
    with pytest.raises(UsageError, match="egress node 'ledger-db' cannot be an edge source"):
        add_edge(doc.data, "ledger-db", "api")
    with pytest.raises(UsageError, match="no node named 'ghost'"):
        add_edge(doc.data, "api", "ghost")
    with pytest.raises(UsageError, match="no edge"):
        remove_edge(doc.data, "ledger-db", "gateway")
    with pytest.raises(UsageError, match="already exists"):
        add_edge(doc.data, "gateway", "api")


def test_contract_and_service_edits(tmp_path: Path) -> None:
    path = _copy(tmp_path, "full_v2.yaml")
    doc = YamlDocument.load(path)
    set_contract(doc.data, "gateway", "specs/gw.yaml")
    assert add_service_dir(doc.data, "services/web") is True
    assert add_service_dir(doc.data, "services/web") is False
    doc.save()
    added, removed = _diff((FIXTURES / "full_v2.yaml").read_text(), path.read_text())
    assert removed == [] and sorted(l.strip() for l in added) == ["- services/web", "contract: specs/gw.yaml"]


def test_migration_marks_v1_as_v2_and_nothing_else(tmp_path: Path) -> None:
    path = _copy(tmp_path, "original_v1.yaml")
    doc = YamlDocument.load(path)
    migration = migrate(doc.data)
    doc.save()
    added, removed = _diff((FIXTURES / "original_v1.yaml").read_text(), path.read_text())
    assert (migration.from_version, migration.to_version) == (1, 2)
    assert removed == ["version: 1"] and added == ["version: 2"]
    assert not migrate(YamlDocument.load(path).data).changed


def test_migration_inserts_a_missing_version_after_the_name(tmp_path: Path) -> None:
    path = tmp_path / "baton.yaml"
    path.write_text("# c\nname: a\nnodes: []\n")
    doc = YamlDocument.load(path)
    migrate(doc.data)
    doc.save()
    assert path.read_text() == "# c\nname: a\nversion: 2\nnodes: []\n"
