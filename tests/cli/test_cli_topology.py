"""The topology CLI as a user meets it: `baton` run as a subprocess on real files."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from baton_cli import BATON, FIXTURES, ROOT, run_baton


def assert_clean_failure(result, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_the_done_when_sequence(tmp_path: Path) -> None:
    assert run_baton("init", "demo", cwd=tmp_path).code == 0
    demo = tmp_path / "demo"
    assert (demo / "baton.yaml").is_file() and (demo / ".baton").is_dir()
    assert run_baton("node", "add", "gateway", "--port", "8001", "--role", "ingress", cwd=demo).code == 0
    assert run_baton("node", "add", "api", cwd=demo).code == 0
    assert run_baton("edge", "add", "gateway", "api", cwd=demo).code == 0
    status = run_baton("status", "--json", cwd=demo)
    assert status.code == 0, status.stderr
    doc = status.json()
    assert doc["name"] == "demo"
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert nodes["gateway"]["role"] == "ingress" and nodes["gateway"]["management_port"] == 18001
    assert 9001 <= nodes["api"]["port"] <= 9999
    assert doc["edges"] == [{"source": "gateway", "target": "api", "label": ""}]
    assert doc["start_order"] == ["api", "gateway"]


def test_status_from_a_subdirectory_and_with_dir(project_dir: Path) -> None:
    sub = project_dir / "deep" / "er"
    sub.mkdir(parents=True)
    assert run_baton("status", "--json", cwd=sub).json()["name"] == "proj"
    assert run_baton("-C", str(project_dir), "status", "--json").json()["name"] == "proj"


def test_every_command_prints_one_json_document(project_dir: Path) -> None:
    spec = ROOT / "examples" / "shop" / "specs" / "users.yaml"
    docs = [
        run_baton("node", "add", "api", "--port", "8100", "--json", cwd=project_dir),
        run_baton("node", "add", "db", "--role", "egress", "--mode", "tcp", "--json", cwd=project_dir),
        run_baton("edge", "add", "api", "db", "--json", cwd=project_dir),
        run_baton("contract", "set", "api", str(spec), "--json", cwd=project_dir),
        run_baton("edge", "rm", "api", "db", "--json", cwd=project_dir),
        run_baton("node", "rm", "db", "--json", cwd=project_dir),
        run_baton("migrate-config", "--json", cwd=project_dir),
        run_baton("status", "--json", cwd=project_dir),
    ]
    parsed = [d.json() for d in docs]
    assert parsed[0]["node"] == {"name": "api", "host": "127.0.0.1", "port": 8100, "management_port": 18100,
                                 "proxy_mode": "http", "role": "service", "contract": ""}
    assert parsed[1]["node"]["role"] == "egress" and parsed[1]["node"]["proxy_mode"] == "tcp"
    assert parsed[3]["kind"] == "openapi" and "GET /users/{id}" in parsed[3]["operations"]
    assert Path(parsed[3]["contract"]).is_absolute() or parsed[3]["contract"].startswith("..")
    assert parsed[5] == {"removed": "db", "edges_removed": []}
    assert parsed[6]["changed"] is False
    assert [n["name"] for n in parsed[7]["nodes"]] == ["api"]


def test_init_name_defaults_to_directory_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = run_baton("init", "--json", cwd=tmp_path)
    assert result.json()["name"] == tmp_path.name
    assert_clean_failure(run_baton("init", cwd=tmp_path), 1, "already exists")


def test_usage_errors_exit_2_with_one_sentence(project_dir: Path) -> None:
    run_baton("node", "add", "api", "--port", "8001", cwd=project_dir)
    assert_clean_failure(run_baton("node", "add", "Bad_Name", cwd=project_dir), 2, "node names must match", "'Bad_Name'")
    assert_clean_failure(run_baton("node", "add", "web", "--port", "8001", cwd=project_dir), 2, "port 8001 is already used")
    assert_clean_failure(run_baton("node", "add", "web", "--port", "80", cwd=project_dir), 2, "--port")
    assert_clean_failure(run_baton("node", "add", "api", cwd=project_dir), 2, "already exists")
    assert_clean_failure(run_baton("edge", "add", "api", "ghost", cwd=project_dir), 2, "no node named 'ghost'")
    assert_clean_failure(run_baton("node", "add", "web", "--mode", "ftp", cwd=project_dir), 2, "'ftp'")
    assert_clean_failure(run_baton("nodes", cwd=project_dir), 2, "No such command")
    run_baton("node", "add", "stripe", "--role", "egress", cwd=project_dir)
    assert_clean_failure(run_baton("edge", "add", "stripe", "api", cwd=project_dir), 2, "egress node 'stripe'")


def test_no_project_is_a_clear_failure(tmp_path: Path) -> None:
    assert_clean_failure(run_baton("status", cwd=tmp_path), 1, "no baton.yaml found", "baton init")


def test_a_broken_file_is_reported_and_never_rewritten(project_dir: Path) -> None:
    config = project_dir / "baton.yaml"
    broken = "name: proj\nnodes:\n  - name: api\n    port: 8001\n  - name: web\n    port: 8001\n"
    config.write_text(broken)
    assert_clean_failure(run_baton("status", cwd=project_dir), 1, "baton.yaml line 6 (nodes[1].port)", "8001")
    assert_clean_failure(run_baton("node", "add", "x", cwd=project_dir), 1, "baton.yaml line 6")
    config.write_text("name: proj\nnodes:\n  - name: api\n   port: 8001\n")
    assert_clean_failure(run_baton("status", "--json", cwd=project_dir), 1, "baton.yaml line 4, column 4")
    assert config.read_text() == "name: proj\nnodes:\n  - name: api\n   port: 8001\n"


def test_a_commented_v2_file_survives_node_add_changed_only_by_the_node(project_dir: Path) -> None:
    config = project_dir / "baton.yaml"
    original = (FIXTURES / "full_v2.yaml").read_text()
    config.write_text(original)
    result = run_baton("node", "add", "search", "--port", "8600", "--mode", "grpc", cwd=project_dir)
    assert result.code == 0, result.stderr
    diff = [l for l in difflib.unified_diff(original.splitlines(), config.read_text().splitlines(), lineterm="", n=0)
            if l[:1] in "+-" and l[:3] not in ("+++", "---")]
    assert diff == ["+  - name: search", "+    port: 8600", "+    proxy_mode: grpc"]


def test_concurrent_node_adds_from_separate_processes_are_serialized(project_dir: Path) -> None:
    names = [f"svc{i}" for i in range(8)]

    def add(name: str):
        return subprocess.run([str(BATON), "node", "add", name, "--json"], cwd=project_dir,
                              capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(add, names))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    data = yaml.safe_load((project_dir / "baton.yaml").read_text())
    assert sorted(n["name"] for n in data["nodes"]) == sorted(names)
    ports = [n["port"] for n in data["nodes"]]
    assert len(set(ports)) == len(ports)
    assert not list((project_dir).glob(".baton.yaml.*.tmp"))


def test_node_rm_removes_its_edges(project_dir: Path) -> None:
    for args in (("node", "add", "a"), ("node", "add", "b"), ("node", "add", "c"), ("edge", "add", "a", "b"),
                 ("edge", "add", "b", "c")):
        assert run_baton(*args, cwd=project_dir).code == 0
    result = run_baton("node", "rm", "b", "--json", cwd=project_dir).json()
    assert result["edges_removed"] == [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]
    assert run_baton("status", "--json", cwd=project_dir).json()["edges"] == []


def test_contract_set_validates_the_spec(project_dir: Path, tmp_path: Path) -> None:
    run_baton("node", "add", "api", cwd=project_dir)
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      responses: []\n")
    before = (project_dir / "baton.yaml").read_text()
    assert_clean_failure(run_baton("contract", "set", "api", str(bad), cwd=project_dir), 1,
                         "line 6", "paths./a.get.responses", "not valid OpenAPI 3.0.3")
    neither = tmp_path / "neither.yaml"
    neither.write_text("hello: world\n")
    assert_clean_failure(run_baton("contract", "set", "api", str(neither), cwd=project_dir), 1,
                         "expected an OpenAPI 3.x document")
    assert_clean_failure(run_baton("contract", "set", "api", str(tmp_path / "missing.yaml"), cwd=project_dir), 1,
                         "does not exist")
    assert (project_dir / "baton.yaml").read_text() == before
    schema = project_dir / "contracts" / "event.json"
    schema.parent.mkdir()
    schema.write_text('{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}')
    ok = run_baton("contract", "set", "api", str(schema), "--json", cwd=project_dir).json()
    assert ok == {"node": "api", "contract": "contracts/event.json", "kind": "json-schema",
                  "version": "https://json-schema.org/draft/2020-12/schema", "operations": ["POST /"]}


def test_a_grpc_node_takes_a_proto_contract_checked_by_compiling_it(project_dir: Path) -> None:
    proto = project_dir / "protos" / "stock.proto"
    proto.parent.mkdir()
    proto.write_text('syntax = "proto3";\npackage inv;\nmessage Q { string sku = 1; }\n'
                     "service Stock { rpc Get(Q) returns (Q); rpc Watch(Q) returns (stream Q); }\n")
    added = run_baton("node", "add", "stock", "--mode", "grpc", "--contract", str(proto), "--json", cwd=project_dir)
    assert added.code == 0, added.stderr
    assert added.json()["node"]["contract"] == "protos/stock.proto"
    broken = project_dir / "protos" / "broken.proto"
    broken.write_text('syntax = "proto3";\nmessage Q { string sku = ; }\n')
    before = (project_dir / "baton.yaml").read_text()
    assert_clean_failure(run_baton("contract", "set", "stock", str(broken), cwd=project_dir), 1,
                         f"contract {broken} does not compile: broken.proto:2:26: Expected field number; fix the .proto.")
    assert (project_dir / "baton.yaml").read_text() == before
    ok = run_baton("contract", "set", "stock", str(proto), "--json", cwd=project_dir).json()
    assert ok == {"node": "stock", "contract": "protos/stock.proto", "kind": "protobuf", "version": "",
                  "operations": ["/inv.Stock/Get", "/inv.Stock/Watch"]}


def test_migrate_config_dry_run_output_and_in_place(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(FIXTURES / "original_v1.yaml", project / "baton.yaml")
    original = (project / "baton.yaml").read_text()
    dry = run_baton("migrate-config", "--dry-run", cwd=project)
    assert dry.code == 0 and "version: 2" in dry.stdout
    assert (project / "baton.yaml").read_text() == original
    out = run_baton("migrate-config", "--output", str(tmp_path / "v2.yaml"), "--json", cwd=project).json()
    assert out["changed"] and (tmp_path / "v2.yaml").read_text() == original.replace("version: 1", "version: 2")
    assert (project / "baton.yaml").read_text() == original
    in_place = run_baton("migrate-config", "--config", str(project / "baton.yaml"), "--json").json()
    assert in_place["changes"] == ["version: 1 -> 2"]
    assert (project / "baton.yaml").read_text() == original.replace("version: 1", "version: 2")


def test_human_output_is_a_table(project_dir: Path) -> None:
    run_baton("node", "add", "api", "--port", "8100", cwd=project_dir)
    text = run_baton("status", cwd=project_dir).stdout
    assert "Nodes" in text and "api" in text and "8100" in text and "18100" in text


def test_node_add_with_a_contract_and_cycles_in_status(project_dir: Path) -> None:
    spec = ROOT / "examples" / "shop" / "specs" / "orders.yaml"
    local = project_dir / "specs" / "orders.yaml"
    local.parent.mkdir()
    local.write_text(spec.read_text())
    (project_dir / "specs" / "common.yaml").write_text((spec.parent / "common.yaml").read_text())
    added = run_baton("node", "add", "orders", "--contract", "specs/orders.yaml", "--json", cwd=project_dir).json()
    assert added["node"]["contract"] == "specs/orders.yaml"
    run_baton("node", "add", "billing", cwd=project_dir)
    run_baton("edge", "add", "orders", "billing", cwd=project_dir)
    run_baton("edge", "add", "billing", "orders", cwd=project_dir)
    status = run_baton("status", "--json", cwd=project_dir).json()
    assert status["cycles"] == [["orders", "billing"]]
    assert "Cycle:" in run_baton("status", cwd=project_dir).stdout
