"""A grpc node's ``.proto`` contract: compiled into the descriptor set its adapter entry names (again only when the
``.proto`` changed), baked into Cloud Run's adapter image under the compiled name, and a ``.proto`` that does not
compile is one sentence naming the file and protoc's first error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baton.config import CircuitConfig
from baton.errors import ConfigError
from baton.wiring import adapter_node

pytest.importorskip("grpc_tools")
descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")

PROTO = """
syntax = "proto3";
package inventory;
import "google/protobuf/timestamp.proto";
message Item { string sku = 1; google.protobuf.Timestamp updated_at = 2; }
message Query { string sku = 1; }
service Stock { rpc Get(Query) returns (Item); }
"""


def _config(contract: str, mode: str = "grpc") -> CircuitConfig:
    return CircuitConfig.model_validate({"name": "c", "nodes": [
        {"name": "stock", "port": 8001, "proxy_mode": mode, "contract": contract}]})


def _entry(root: Path, contract: str, mode: str = "grpc") -> dict:
    config = _config(contract, mode)
    return adapter_node(config, config.node("stock"), root=root, backend=None)


def test_a_proto_contract_is_compiled_into_the_entrys_descriptor_set(tmp_path: Path) -> None:
    proto = tmp_path / "protos" / "stock.proto"
    proto.parent.mkdir()
    proto.write_text(PROTO)
    entry = _entry(tmp_path, "protos/stock.proto")
    compiled = tmp_path / ".baton" / "contracts" / "stock.protoset"
    assert entry["contract"] == str(compiled)
    files = descriptor_pb2.FileDescriptorSet.FromString(compiled.read_bytes()).file
    assert [f.name for f in files] == ["google/protobuf/timestamp.proto", "stock.proto"]  # imports included
    assert [s.name for s in files[1].service] == ["Stock"]
    assert compiled.stat().st_mode & 0o777 == 0o644

    os.utime(compiled, (1, 1e9 + 1))  # an older .proto is not compiled again
    os.utime(proto, (1, 1e9))
    _entry(tmp_path, "protos/stock.proto")
    assert compiled.stat().st_mtime == 1e9 + 1
    proto.write_text(PROTO.replace("string sku = 1; google", "string sku = 1; int32 count = 3; google"))
    _entry(tmp_path, "protos/stock.proto")  # a newer one is
    item = descriptor_pb2.FileDescriptorSet.FromString(compiled.read_bytes()).file[1].message_type[0]
    assert [f.name for f in item.field] == ["sku", "count", "updated_at"]


def test_a_descriptor_set_or_another_modes_contract_is_given_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "stock.protoset").write_bytes(b"")
    assert _entry(tmp_path, "stock.protoset")["contract"] == str(tmp_path / "stock.protoset")
    (tmp_path / "stock.proto").write_text("not compiled: an http node's contract is never a .proto")
    assert _entry(tmp_path, "stock.proto", mode="http")["contract"] == str(tmp_path / "stock.proto")
    assert not (tmp_path / ".baton").exists()


def test_a_proto_that_does_not_compile_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "stock.proto").write_text('syntax = "proto3";\nmessage Item { int32 count = ; }\n')
    with pytest.raises(ConfigError) as info:
        _entry(tmp_path, "stock.proto")
    assert str(info.value) == ("contract stock.proto does not compile: stock.proto:2:30: Expected field number; "
                               "fix the .proto.")
    assert not list((tmp_path / ".baton" / "contracts").iterdir())  # nothing half-written is left


def test_a_missing_import_names_it(tmp_path: Path) -> None:
    (tmp_path / "stock.proto").write_text('syntax = "proto3";\nimport "shared/money.proto";\n')
    with pytest.raises(ConfigError, match=r"^contract stock\.proto does not compile: shared/money\.proto: File not "
                                          r"found; fix the \.proto\.$"):
        _entry(tmp_path, "stock.proto")


def test_cloud_run_bakes_in_the_compiled_descriptor_set(tmp_path: Path) -> None:
    from providers.cloudrun.spec import CONTRACTS_DIR, adapter_nodes, contracts

    (tmp_path / "stock.proto").write_text(PROTO)
    config = _config("stock.proto")
    assert contracts(config, tmp_path) == {"stock.protoset": tmp_path / ".baton" / "contracts" / "stock.protoset"}
    assert adapter_nodes(config, tmp_path)["stock.mock.json"]["node"]["contract"] == f"{CONTRACTS_DIR}/stock.protoset"
