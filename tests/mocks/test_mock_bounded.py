"""The mock's contract loader reads bounded input and keeps ``$ref``s inside the contract's root."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from baton_adapter.mock import ContractError, MockEngine
from baton_adapter.mock._contract import contract_root, load_contract

HEADER = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n"


def _with_ref(ref: str) -> str:
    return HEADER + (
        "paths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: ok\n"
        "          content:\n            application/json:\n"
        f"              schema: {{$ref: '{ref}'}}\n"
    )


def _refused(path: Path, **kwargs) -> str:
    with pytest.raises(ContractError) as caught:
        load_contract(path, **kwargs)
    return str(caught.value)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "contracts").mkdir(parents=True)
    (root / "baton.yaml").write_text("name: proj\n")
    (root / "schemas").mkdir()
    (root / "schemas" / "thing.yaml").write_text("type: object\nproperties: {id: {type: integer}}\n")
    (tmp_path / "outside.yaml").write_text("type: object\n")
    return root


def test_the_root_is_the_project_then_the_service_then_the_contracts_directory(tmp_path: Path, project: Path) -> None:
    assert contract_root(project / "contracts" / "api.yaml") == project.resolve()
    service = tmp_path / "svc"
    (service / "api").mkdir(parents=True)
    (service / "baton-service.yaml").write_text("name: svc\n")
    assert contract_root(service / "api" / "x.yaml") == service.resolve()
    (tmp_path / "loose").mkdir()
    assert contract_root(tmp_path / "loose" / "x.yaml") == (tmp_path / "loose").resolve()


def test_a_ref_elsewhere_in_the_project_is_followed(project: Path) -> None:
    spec = project / "contracts" / "api.yaml"
    spec.write_text(_with_ref("../schemas/thing.yaml"))
    engine = MockEngine.from_contract(str(spec), "n")
    assert [op.path for op in engine.operations] == ["/a"]


@pytest.mark.parametrize("ref", ["/etc/passwd#/x", "../../outside.yaml", "file:///etc/hostname"])
def test_a_ref_leaving_the_project_is_refused_and_named(project: Path, ref: str) -> None:
    spec = project / "contracts" / "api.yaml"
    spec.write_text(_with_ref(ref))
    message = _refused(spec)
    assert "line 11" in message and repr(ref) in message and "points outside it" in message, message
    assert str(project.resolve()) in message


def test_a_symlink_pointing_out_is_refused(project: Path, tmp_path: Path) -> None:
    (project / "schemas" / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    spec = project / "contracts" / "api.yaml"
    spec.write_text(_with_ref("../schemas/link.yaml"))
    assert "points outside it" in _refused(spec)


def test_a_remote_ref_is_refused(project: Path) -> None:
    spec = project / "contracts" / "api.yaml"
    spec.write_text(_with_ref("https://example.com/thing.yaml"))
    assert "found the remote 'https://example.com/thing.yaml'" in _refused(spec)


def test_an_explicit_root_narrows_the_confinement(project: Path) -> None:
    spec = project / "contracts" / "api.yaml"
    spec.write_text(_with_ref("../schemas/thing.yaml"))
    assert "points outside it" in _refused(spec, root=project / "contracts")


def test_plain_text_is_told_what_a_contract_is(tmp_path: Path) -> None:
    spec = tmp_path / "notes.yaml"
    spec.write_text("just some notes about the API\n")
    assert _refused(spec) == (
        f"expected an OpenAPI 3.x or JSON Schema document in {spec}, found plain text; "
        "point at the contract file or write one there."
    )


def _laughs() -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(f"  {line}" for line in lines) + "\n"


def test_a_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "laughs.yaml"
    spec.write_text(HEADER + "paths: {}\nx-laughs:\n" + _laughs() + "x-all: *l8\n")
    started = time.monotonic()
    message = _refused(spec)
    assert time.monotonic() - started < 1
    assert "line 13: expected YAML aliases to repeat at most 100,000 values" in message, message


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "loop.yaml"
    spec.write_text(HEADER + "paths: {}\nx-loop: &a [1, *a]\n")
    assert "used inside itself" in _refused(spec)


def test_deep_nesting_is_refused_in_yaml_and_json(tmp_path: Path) -> None:
    deep_yaml = tmp_path / "deep.yaml"
    deep_yaml.write_text(HEADER + "paths: {}\nx-deep: " + "[" * 900 + "]" * 900 + "\n")
    assert "nested at most 200 levels deep" in _refused(deep_yaml)
    deep_json = tmp_path / "deep.json"
    deep_json.write_text('{"openapi": "3.0.3", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "nested at most 200 levels deep" in _refused(deep_json)


def test_the_size_cap_counts_referenced_files(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = project / "contracts" / "api.yaml"
    spec.write_text(_with_ref("../schemas/big.json"))
    (project / "schemas" / "big.json").write_text(json.dumps({"type": "object", "description": "x" * 5000}))
    monkeypatch.setenv("BATON_MAX_CONTRACT_BYTES", "4000")
    assert "total at most 4,000 bytes" in _refused(spec)
    monkeypatch.setenv("BATON_MAX_CONTRACT_BYTES", "100")
    assert "total at most 100 bytes" in _refused(spec)
