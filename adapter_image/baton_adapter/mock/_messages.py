"""Generated protobuf messages: values from the mocks' seeded generator, read into messages by ``json_format``.

Each message class given is converted to a JSON Schema (:mod:`._proto_schema`, nested messages included) in one
:mod:`referencing` registry; the :class:`~._generate.Generator` walks it as it walks an OpenAPI contract, and a
value counts as valid when ``json_format.ParseDict`` reads it into the message. So a message is deterministic
for its seed, and seeded canaries land in the string fields of their kind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ._generate import Generator
from ._proto_schema import SCHEMA_URI, message_location, message_schemas, schema_document

__all__ = ["MessageGenerator"]

logger = logging.getLogger(__name__)


class MessageGenerator:
    """Generates messages of the given classes (and of every message they contain)."""

    def __init__(self, classes: Iterable[Any]) -> None:
        self._classes = {message_location(cls.DESCRIPTOR.full_name): cls for cls in classes}
        document = schema_document(message_schemas(cls.DESCRIPTOR for cls in self._classes.values()))
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        registry: Registry[Any] = Registry().with_resource(SCHEMA_URI, resource)
        self._generator = Generator("jsonschema", registry, self._parses)

    def message(self, cls: Any, seed: int) -> Any:
        """A message of ``cls`` (one of the classes given) derived from ``seed``; the default message when no
        generated value parses (logged)."""
        value = self._generator.generate(message_location(cls.DESCRIPTOR.full_name), seed)
        message = cls()
        try:
            json_format.ParseDict(value, message)
        except Exception:  # noqa: BLE001 - ParseError, and ValueError/TypeError from some field values
            logger.warning("no generated %s parses; answering the default message", cls.DESCRIPTOR.full_name)
            return cls()
        return message

    def seed_canaries(self, values: Mapping[str, Sequence[str]]) -> None:
        """Put these canary values (by kind) in the generated string fields of their kind; ``{}`` stops it."""
        self._generator.canaries = {kind: tuple(v) for kind, v in values.items() if v}

    def _parses(self, location: str, direction: str, value: Any) -> bool:
        cls = self._classes.get(location)
        if cls is None:
            return True
        try:
            json_format.ParseDict(value, cls())
        except Exception:  # noqa: BLE001 - as above
            return False
        return True
