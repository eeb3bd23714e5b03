"""Reading one contract file (YAML or JSON) into plain data plus a map of JSON pointers to line numbers.

Reading is bounded as in Baton's control plane: at most ``BATON_MAX_CONTRACT_BYTES`` (default 10 MiB) per
contract, all its referenced files counted together (see :func:`read_source`'s ``budget``), values nested
at most 200 levels deep, and YAML aliases repeating at most 100,000 values (a recursive alias is refused).
The alias check runs on the composed node graph, where an alias is a shared node, so nothing is expanded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._errors import ContractError

__all__ = ["MAX_ALIAS_VALUES", "MAX_DEPTH", "SourceDoc", "max_contract_bytes", "pointer_text", "read_source"]

Pointer = tuple[str, ...]

MAX_ALIAS_VALUES = 100_000
MAX_DEPTH = 200
_MIB = 1024 * 1024


def max_contract_bytes() -> int:
    """The size cap of a contract with the files it references (``BATON_MAX_CONTRACT_BYTES``, default 10 MiB)."""
    try:
        value = int(os.environ.get("BATON_MAX_CONTRACT_BYTES", "") or 10 * _MIB)
    except ValueError:
        value = 10 * _MIB
    return value if value > 0 else 10 * _MIB


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


def read_source(path: Path, name: str, *, budget: int | None = None) -> SourceDoc:
    """Parse ``path`` (YAML or JSON) into a :class:`SourceDoc`; raise :class:`ContractError` on bad input.

    ``budget`` is how many bytes the file may have (default: the whole contract cap).
    """
    cap = max_contract_bytes()
    allowed = cap if budget is None else max(budget, 0)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(allowed + 1)
        if len(raw) > allowed:
            raise ContractError(
                f"{name}: expected a contract and the files it references to total at most {cap:,} bytes, found "
                f"more; shrink them or raise BATON_MAX_CONTRACT_BYTES.",
                file=name,
            )
        text = raw.decode("utf-8")
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
        except RecursionError:
            raise _too_deep(name, None) from None
        _check_depth(contents, name)
        try:
            _, lines = _compose(text, name)
        except ContractError:
            lines = {}
        return SourceDoc(name, uri, contents, lines)
    contents, lines = _compose(text, name)
    return SourceDoc(name, uri, contents, lines)


def _too_deep(name: str, line: int | None) -> ContractError:
    where = f"{name} line {line}" if line else name
    return ContractError(
        f"{where}: expected values nested at most {MAX_DEPTH} levels deep, found deeper nesting; flatten the contract.",
        file=name,
        line=line,
    )


def _check_depth(data: Any, name: str) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(name, None)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_tree(root: yaml.Node, name: str) -> None:
    """Refuse a node graph nested too deep, with a recursive alias, or whose aliases repeat too much."""
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    refs: dict[int, int] = {}
    nodes: dict[int, yaml.Node] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            heights[key] = 1 + max((heights[id(c)] for c in children), default=0)
            continue
        if key in sizes:
            if depth + heights[key] - 1 > MAX_DEPTH:
                raise _too_deep(name, node.start_mark.line + 1)
            continue
        if depth > MAX_DEPTH:
            raise _too_deep(name, node.start_mark.line + 1)
        nodes[key] = node
        on_path.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            refs[id(child)] = refs.get(id(child), 0) + 1
            if id(child) in on_path:
                line = child.start_mark.line + 1
                raise ContractError(
                    f"{name} line {line}: expected YAML aliases to refer to finished values, found one used inside "
                    "itself; remove the recursive alias.",
                    file=name,
                    line=line,
                )
            stack.append((child, depth + 1, False))
    repeated = sizes[id(root)] - len(nodes)
    if repeated > MAX_ALIAS_VALUES:
        worst = nodes[max((k for k, n in refs.items() if n > 1), key=lambda k: sizes[k] * (refs[k] - 1))]
        line = worst.start_mark.line + 1
        raise ContractError(
            f"{name} line {line}: expected YAML aliases to repeat at most {MAX_ALIAS_VALUES:,} values, found the "
            f"value defined there repeated into {repeated:,}; write the values out or use far fewer aliases.",
            file=name,
            line=line,
        )


def _compose(text: str, name: str) -> tuple[Any, dict[Pointer, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ContractError(f"{name}: expected a contract, found an empty file; write the contract.", file=name)
        _check_tree(node, name)
        lines: dict[Pointer, int] = {}
        return _build(loader, node, (), lines), lines
    except RecursionError:
        raise _too_deep(name, None) from None
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
