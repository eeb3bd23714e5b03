"""Reading one contract file (YAML or JSON) into plain data plus a map of JSON pointers to line numbers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._errors import ContractError

__all__ = ["SourceDoc", "pointer_text", "read_source"]

Pointer = tuple[str, ...]


class _Loader(yaml.SafeLoader):
    """A safe YAML loader that keeps dates and times as strings, as JSON Schema expects."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class SourceDoc:
    """One parsed contract file: its display name, ``file://`` URI, contents and line map."""

    name: str
    uri: str
    contents: Any
    lines: Mapping[Pointer, int] = field(default_factory=dict)

    def line_of(self, pointer: Pointer) -> int | None:
        """The 1-based line of ``pointer``, or of its nearest ancestor that has one."""
        for cut in range(len(pointer), -1, -1):
            line = self.lines.get(tuple(pointer[:cut]))
            if line is not None:
                return line
        return None

    def where(self, pointer: Pointer) -> str:
        """``"<file> line N"`` for a pointer, for error messages."""
        line = self.line_of(pointer)
        return f"{self.name} line {line}" if line is not None else self.name


def pointer_text(pointer: Pointer) -> str:
    """A pointer as dotted text, the way a user reads it (``paths./users.get.responses``)."""
    return ".".join(pointer) if pointer else "the document root"


def read_source(path: Path, name: str) -> SourceDoc:
    """Parse ``path`` (YAML or JSON) into a :class:`SourceDoc`; raise :class:`ContractError` on bad input."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ContractError(f"{name}: the contract file does not exist; check the path.", file=name) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{name}: the contract file cannot be read ({exc}); fix the file.", file=name) from exc
    uri = path.resolve().as_uri()
    if path.suffix.lower() == ".json":
        try:
            contents = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"{name} line {exc.lineno}: expected valid JSON, found a syntax error ({exc.msg}); fix the contract.",
                file=name,
                line=exc.lineno,
            ) from exc
        try:
            _, lines = _compose(text, name)
        except ContractError:
            lines = {}
        return SourceDoc(name, uri, contents, lines)
    contents, lines = _compose(text, name)
    return SourceDoc(name, uri, contents, lines)


def _compose(text: str, name: str) -> tuple[Any, dict[Pointer, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ContractError(f"{name}: expected a contract, found an empty file; write the contract.", file=name)
        lines: dict[Pointer, int] = {}
        return _build(loader, node, (), lines), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        where = f"{name} line {line}" if line else name
        raise ContractError(
            f"{where}: expected valid YAML, found a syntax error ({exc.problem}); fix the contract.",
            file=name,
            line=line,
        ) from exc
    except yaml.YAMLError as exc:
        raise ContractError(f"{name}: expected valid YAML ({exc}); fix the contract.", file=name) from exc
    finally:
        loader.dispose()


def _build(loader: _Loader, node: yaml.Node, pointer: Pointer, lines: dict[Pointer, int]) -> Any:
    lines.setdefault(pointer, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = key if isinstance(key, str) else str(key).lower() if isinstance(key, bool) else str(key)
            child = (*pointer, key)
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, child, lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*pointer, str(i)), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
