"""Protobuf messages as JSON Schemas (``baton_adapter.mock._proto_schema``): the shapes, and generated values that
``json_format`` reads back into the message and writes out again unchanged."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from baton_adapter.mock._generate import Generator
from baton_adapter.mock._proto_schema import message_location, message_schemas, schema_document

protoc = pytest.importorskip("grpc_tools.protoc")
json_format = pytest.importorskip("google.protobuf.json_format")

PROTO = """
syntax = "proto3";
package shapes;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }
message Address { string city = 1; string zip = 2; }
message Tree { string label = 1; repeated Tree children = 2; Tree parent = 3; }
message Order {
  string email = 1; int32 qty = 2; int64 total = 3; uint32 count = 4; sint64 delta = 5; fixed32 bits = 6;
  float ratio = 7; double price = 8; bool paid = 9; bytes blob = 10; Color color = 11;
  repeated string tags = 12; repeated Address history = 13;
  map<string, int32> counts = 14; map<int64, Address> by_id = 15; map<bool, string> flags = 16;
  Address ship_to = 17;
  oneof payment { string card_number = 18; Address invoice = 19; }
  optional string note = 20;
  Tree tree = 21;
  google.protobuf.Timestamp created_at = 22; google.protobuf.Duration ttl = 23;
  google.protobuf.StringValue coupon = 24; google.protobuf.Struct meta = 25;
}
"""


@pytest.fixture(scope="module")
def order(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The ``shapes.Order`` message class, from a descriptor set compiled into a pool of its own."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    out: Path = tmp_path_factory.mktemp("shapes")
    (out / "shapes.proto").write_text(PROTO)
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    assert protoc.main(["protoc", f"-I{out}", f"-I{include}", f"--descriptor_set_out={out / 'shapes.pb'}",
                        "--include_imports", str(out / "shapes.proto")]) == 0
    pool = descriptor_pool.DescriptorPool()
    for proto in descriptor_pb2.FileDescriptorSet.FromString((out / "shapes.pb").read_bytes()).file:
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shapes.Order"))


def test_the_shapes(order: Any) -> None:
    defs = message_schemas([order.DESCRIPTOR])
    assert sorted(defs) == ["google.protobuf.Duration", "google.protobuf.StringValue", "google.protobuf.Struct",
                            "google.protobuf.Timestamp", "shapes.Address", "shapes.Order", "shapes.Tree"]
    schema = defs["shapes.Order"]
    props = schema["properties"]
    assert props["email"] == {"type": "string"}
    assert props["qty"] == {"type": "integer", "format": "int32"}
    assert props["count"] == {"type": "integer", "format": "int32", "minimum": 0}
    assert props["blob"]["format"] == "byte"
    assert props["color"] == {"enum": ["COLOR_UNSPECIFIED", "RED", "GREEN"]}
    assert props["history"] == {"type": "array", "items": {"$ref": "#/$defs/shapes.Address"}, "maxItems": 3}
    assert props["counts"]["additionalProperties"] == {"type": "integer", "format": "int32"}
    assert sorted(props["by_id"]["properties"]) == ["1", "2", "3"]  # int keys, as json_format reads them
    assert sorted(props["flags"]["properties"]) == ["false", "true"]
    assert props["note"] == {"type": "string"}  # a proto3 optional is an ordinary field, not a oneof
    assert "ship_to" not in schema["required"] and "tree" not in schema["required"]  # messages are optional
    assert "email" in schema["required"] and "history" in schema["required"]
    assert schema["allOf"] == [{"oneOf": [
        {"type": "object", "properties": {"card_number": {"type": "string"}}, "required": ["card_number"]},
        {"type": "object", "properties": {"invoice": {"$ref": "#/$defs/shapes.Address"}}}]}]
    tree = defs["shapes.Tree"]["properties"]
    assert tree["parent"] == {"$ref": "#/$defs/shapes.Tree"} and tree["children"]["items"] == tree["parent"]
    assert defs["google.protobuf.Timestamp"] == {"type": "string", "format": "date-time"}
    assert defs["google.protobuf.StringValue"] == {"type": "string"}


def _generator(root: Any, canaries: dict[str, tuple[str, ...]] | None = None) -> tuple[Generator, str]:
    """A generator of ``root`` messages whose values must parse (json_format) and validate (jsonschema)."""
    name = root.DESCRIPTOR.full_name
    document = schema_document(message_schemas([root.DESCRIPTOR]))
    registry: Registry[Any] = Registry().with_resource(
        document["$id"], Resource.from_contents(document, default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": message_location(name)}, registry=registry)

    def parses(location: str, direction: str, value: Any) -> bool:
        try:
            json_format.ParseDict(value, root())
        except json_format.ParseError:
            return False
        return validator.is_valid(value)

    generator = Generator("jsonschema", registry, parses)
    generator.canaries = canaries or {}
    return generator, message_location(name)


@pytest.mark.parametrize("seed", range(12))
def test_generated_values_round_trip_through_json_format(order: Any, seed: int) -> None:
    generator, location = _generator(order)
    value = generator.generate(location, seed)
    message = json_format.ParseDict(value, order())
    assert message.email and "@" in message.email and message.qty > 0 and len(message.tags) >= 1
    assert message.created_at.seconds > 0
    assert message.WhichOneof("payment") in ("card_number", "invoice", None)
    again = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert json_format.ParseDict(again, order()) == message
    assert generator.generate(location, seed) == value  # deterministic for the seed


def test_a_recursive_message_ends(order: Any) -> None:
    from google.protobuf import message_factory

    tree = message_factory.GetMessageClass(order.DESCRIPTOR.file.pool.FindMessageTypeByName("shapes.Tree"))
    generator, location = _generator(tree)
    depths = []
    for seed in range(10):
        message = json_format.ParseDict(generator.generate(location, seed), tree())
        depth, node = 0, message
        while node.children:
            depth, node = depth + 1, node.children[0]
        depths.append(depth)
    assert 1 <= max(depths) <= 6  # nested, and ended by the generator's depth


def test_seeded_canaries_go_in_fields_of_their_kind(order: Any) -> None:
    generator, location = _generator(order, {"email": ("canary.0badcafe@example.com",),
                                             "card": ("4000000000000002",)})
    message = json_format.ParseDict(generator.generate(location, 3), order())
    assert message.email == "canary.0badcafe@example.com"
    assert message.WhichOneof("payment") != "card_number" or message.card_number == "4000000000000002"
