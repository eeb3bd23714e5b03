"""A contract that does not parse or resolve gives one sentence naming the file and the place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from baton_adapter.mock import ContractError, MockEngine

HEADER = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n"


def _load(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ContractError) as caught:
        MockEngine.from_contract(str(path), "n")
    message = str(caught.value)
    assert message.startswith(str(path))
    assert message.count(". ") == 0 or message.endswith(".")
    return message


def test_a_list_where_a_mapping_belongs(tmp_path: Path) -> None:
    text = HEADER + "paths:\n  /users:\n    get:\n      responses:\n        - 200\n"
    message = _load(tmp_path, "users.yaml", text)
    assert message == (
        f"{tmp_path / 'users.yaml'} line 6: expected a mapping under paths./users.get.responses, "
        "found a list; fix the contract."
    )


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    message = _load(tmp_path, "bad.yaml", HEADER + "paths:\n  /x: {get: [\n")
    assert "line 5" in message and "expected valid YAML" in message


def test_json_syntax_errors_name_the_line(tmp_path: Path) -> None:
    message = _load(tmp_path, "bad.json", '{\n  "openapi": "3.1.0",\n  "paths": {,}\n}\n')
    assert "bad.json line 3: expected valid JSON" in message


def test_an_unresolvable_ref_names_its_line(tmp_path: Path) -> None:
    text = HEADER + (
        "paths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: ok\n"
        "          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/Nope'}\n"
    )
    message = _load(tmp_path, "refs.yaml", text)
    assert "refs.yaml line 11: $ref '#/components/schemas/Nope'" in message and "does not resolve" in message


def test_a_missing_referenced_file(tmp_path: Path) -> None:
    text = HEADER + (
        "paths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: './missing.yaml#/R'}\n"
    )
    message = _load(tmp_path, "files.yaml", text)
    assert "files.yaml line 7" in message and "does not exist" in message


def test_a_broken_cross_file_pointer_names_the_other_file(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("A:\n  type: object\n  properties:\n    b: {$ref: '#/B'}\n")
    text = HEADER + (
        "paths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: ok\n"
        "          content:\n            application/json:\n              schema: {$ref: './other.yaml#/A'}\n"
    )
    path = tmp_path / "main.yaml"
    path.write_text(text)
    with pytest.raises(ContractError) as caught:
        MockEngine.from_contract(str(path), "n")
    assert "other.yaml line 4: $ref '#/B'" in str(caught.value)


def test_semantic_openapi_errors(tmp_path: Path) -> None:
    text = HEADER + "paths:\n  /a:\n    get:\n      description: no responses\n"
    message = _load(tmp_path, "sem.yaml", text)
    assert "line 5" in message and "responses" in message


def test_swagger_2_and_unknown_versions(tmp_path: Path) -> None:
    assert "convert the contract to OpenAPI 3" in _load(tmp_path, "s.yaml", "swagger: '2.0'\npaths: {}\n")
    assert "expected openapi 3.0.x or 3.1.x" in _load(tmp_path, "v.yaml", "openapi: 4.0.0\npaths: {}\n")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    assert "empty file" in _load(tmp_path, "empty.yaml", "")
    with pytest.raises(ContractError, match="does not exist"):
        MockEngine.from_contract(os.fspath(tmp_path / "absent.yaml"), "n")


def test_contract_errors_carry_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(HEADER + "paths:\n  /u:\n    get:\n      responses: []\n")
    with pytest.raises(ContractError) as caught:
        MockEngine.from_contract(str(path), "n")
    assert (caught.value.file, caught.value.line) == (str(path), 6)


def test_an_invalid_plain_json_schema(tmp_path: Path) -> None:
    text = '{\n  "type": "object",\n  "properties": {\n    "a": {"type": "strin"}\n  }\n}\n'
    message = _load(tmp_path, "s.json", text)
    assert "s.json line 4: expected a valid JSON Schema under properties.a.type" in message


def test_paths_without_an_openapi_version(tmp_path: Path) -> None:
    message = _load(tmp_path, "nov.yaml", "info: {title: t, version: '1'}\npaths: {}\n")
    assert "expected an openapi version field" in message
