"""Protobuf messages as JSON Schemas: what a gRPC mock feeds the seeded generator (pure, no I/O).

A message becomes the JSON object ``google.protobuf.json_format.ParseDict`` reads, keyed by the fields' proto
names (so ``email`` or ``created_at`` drive the generator's realistic strings and canaries as JSON properties
do). Every message reachable from the roots gets a definition under ``$defs``, named by its full name, and is
referred to by ``$ref``, so nested and recursive messages cost one definition each::

    int32 sint32 sfixed32          integer (format int32: the generator keeps to its bounds)
    int64 sint64 sfixed64          integer (format int64; json_format takes ints)
    uint32 fixed32 uint64 fixed64  integer, minimum 0
    float double                   number
    bool, string                   boolean, string
    bytes                          string, base64 (format byte)
    enum                           one of the value names (google.protobuf.NullValue: null)
    repeated                       array of at most three
    map<string, V>                 object of V; int and bool keys are written as the strings json_format reads
    message                        $ref to its definition; optional (dropped past the generator's depth), so
                                   a recursive message ends
    oneof                          allOf of a oneOf per group: one member at most is set
    well-known types               as json_format writes them: Timestamp a date-time string, Duration "1.5s",
                                   FieldMask "a,b", wrappers their bare value, Struct an object, Value
                                   anything, ListValue an array, Empty {}; Any is left unset (its type URL
                                   would have to name a message the client knows)

Scalar, enum, repeated and map fields are required (a proto3 reader sees every one, non-default); singular
message fields and oneof members that are messages are optional.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

__all__ = ["DEFS", "SCHEMA_URI", "message_location", "message_schemas", "schema_document"]

SCHEMA_URI = "urn:baton:grpc-mock"
DEFS = "$defs"
_MAX_ITEMS = 3

# FieldDescriptor.TYPE_* numbers (descriptor.proto), so this module needs no protobuf import
_DOUBLE, _FLOAT, _INT64, _UINT64, _INT32, _FIXED64, _FIXED32, _BOOL, _STRING = 1, 2, 3, 4, 5, 6, 7, 8, 9
_GROUP, _MESSAGE, _BYTES, _UINT32, _ENUM, _SFIXED32, _SFIXED64, _SINT32, _SINT64 = 10, 11, 12, 13, 14, 15, 16, 17, 18
_LABEL_REPEATED = 3

_SCALARS: dict[int, dict[str, Any]] = {
    _INT32: {"type": "integer", "format": "int32"},
    _SINT32: {"type": "integer", "format": "int32"},
    _SFIXED32: {"type": "integer", "format": "int32"},
    _INT64: {"type": "integer", "format": "int64"},
    _SINT64: {"type": "integer", "format": "int64"},
    _SFIXED64: {"type": "integer", "format": "int64"},
    _UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    _FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    _UINT64: {"type": "integer", "format": "int64", "minimum": 0},
    _FIXED64: {"type": "integer", "format": "int64", "minimum": 0},
    _FLOAT: {"type": "number"},
    _DOUBLE: {"type": "number"},
    _BOOL: {"type": "boolean"},
    _STRING: {"type": "string"},
    _BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_BYTES_VALUE = _SCALARS[_BYTES]

# well-known types, as json_format writes them
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^[1-9][0-9]{0,3}(\\.[0-9]{1,3})?s$"},
    "google.protobuf.FieldMask": {"type": "string", "pattern": "^[a-z]{2,8}(,[a-z]{2,8}){0,2}$"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": {"type": "string"}},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {"type": "string"}, "maxItems": _MAX_ITEMS},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {"type": "null"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int64Value": {"type": "integer", "format": "int64"},
    "google.protobuf.UInt64Value": {"type": "integer", "format": "int64", "minimum": 0},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int32", "minimum": 0},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": _BYTES_VALUE,
}
_MAP_KEYS: dict[int, tuple[str, ...]] = {  # names of the properties a map with non-string keys is generated with
    _BOOL: ("true", "false"),
    **{t: ("1", "2", "3") for t in (_INT32, _SINT32, _SFIXED32, _INT64, _SINT64, _SFIXED64, _UINT32, _FIXED32,
                                    _UINT64, _FIXED64)},
}


def message_location(full_name: str) -> str:
    """The location (URI with a JSON pointer) of a message's schema in :func:`schema_document`."""
    return f"{SCHEMA_URI}#/{DEFS}/{full_name}"


def schema_document(definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A JSON Schema (2020-12) document holding ``definitions`` under ``$defs``, for a ``referencing`` registry."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_URI, DEFS: definitions}


def message_schemas(roots: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """``{full name: schema}`` for the message descriptors ``roots`` and every message they reach."""
    definitions: dict[str, dict[str, Any]] = {}
    todo = deque(roots)
    while todo:
        message = todo.popleft()
        if message.full_name in definitions:
            continue
        schema, reached = _message(message)
        definitions[message.full_name] = schema
        todo.extend(reached)
    return definitions


def _ref(message: Any) -> dict[str, Any]:
    return {"$ref": f"#/{DEFS}/{message.full_name}"}


def _message(message: Any) -> tuple[dict[str, Any], list[Any]]:
    """The schema of one message and the messages its fields refer to."""
    well_known = _WELL_KNOWN.get(message.full_name)
    if well_known is not None:
        return dict(well_known), []
    reached: list[Any] = []
    properties: dict[str, Any] = {}
    required: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for field in message.fields:
        schema, needed = _field(field, reached)
        oneof = field.containing_oneof
        if oneof is not None and not _synthetic(oneof, field):
            groups.setdefault(oneof.name, []).append(
                {"type": "object", "properties": {field.name: schema}, **({"required": [field.name]} if needed else {})})
            continue
        properties[field.name] = schema
        if needed:
            required.append(field.name)
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    if groups:
        result["allOf"] = [{"oneOf": branches} for branches in groups.values()]
    return result, reached


def _field(field: Any, reached: list[Any]) -> tuple[dict[str, Any], bool]:
    """A field's schema and whether it is required (everything but a singular message)."""
    entry = field.message_type if field.type == _MESSAGE else None
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        value_schema = _single(value, reached)
        names = _MAP_KEYS.get(key.type)
        if names is None:  # string keys
            return {"type": "object", "additionalProperties": value_schema, "maxProperties": _MAX_ITEMS}, True
        return {"type": "object", "properties": {n: value_schema for n in names}, "additionalProperties": False}, True
    single = _single(field, reached)
    if _repeated(field):
        return {"type": "array", "items": single, "maxItems": _MAX_ITEMS}, True
    return single, entry is None


def _single(field: Any, reached: list[Any]) -> dict[str, Any]:
    """The schema of one value of ``field`` (an element, for a repeated field)."""
    if field.type in (_MESSAGE, _GROUP):
        reached.append(field.message_type)
        return _ref(field.message_type)
    if field.type == _ENUM:
        enum = field.enum_type
        if enum.full_name == "google.protobuf.NullValue":
            return {"type": "null"}
        return {"enum": [v.name for v in enum.values]}
    return dict(_SCALARS[field.type])


def _repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; older ones only have the label
    return bool(repeated) if repeated is not None else field.label == _LABEL_REPEATED


def _synthetic(oneof: Any, field: Any) -> bool:
    """A proto3 ``optional`` field's own oneof (protoc names it ``_<field>``): an ordinary field, not a group."""
    return len(oneof.fields) == 1 and oneof.name == f"_{field.name}"
