"""Bounded reading of the files Baton parses: ``baton.yaml``, ``baton-service.yaml`` and contracts.

Every input has a size cap, a nesting cap and an alias budget, checked before anything walks the data:

- **size**: ``baton.yaml`` and manifests at most 1 MiB (``BATON_MAX_CONFIG_BYTES``), a contract together
  with the files its ``$ref`` entries name at most 10 MiB (``BATON_MAX_CONTRACT_BYTES``); read with a bounded
  ``read()``, so a huge file or ``/dev/zero`` costs no more than the cap.
- **aliases**: YAML aliases are allowed (``<<: *defaults`` is handy), but together they may repeat at most
  10,000 values in Baton's own files and 100,000 in a contract; a recursive alias is refused. The check
  runs on the composed node graph, where an alias is a shared node, so a "billion laughs" costs
  microseconds to refuse and nothing is ever expanded.
- **nesting**: at most 64 levels in Baton's own files, 200 in a contract.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from baton.errors import ConfigError

__all__ = ["Limits", "config_limits", "contract_limits", "read_text", "check_tree", "check_depth", "load_yaml",
           "load_json", "compose_yaml"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The caps for one kind of file; ``env`` names the variable that raises ``max_bytes``."""

    max_bytes: int
    max_alias_values: int
    max_depth: int
    env: str


def _env_bytes(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of bytes, found {raw!r}; set it to e.g. {default}.") from None
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number of bytes, found {value}; set it to e.g. {default}.")
    return value


def config_limits() -> Limits:
    """Caps for ``baton.yaml`` and ``baton-service.yaml``."""
    return Limits(_env_bytes("BATON_MAX_CONFIG_BYTES", MIB), 10_000, 64, "BATON_MAX_CONFIG_BYTES")


def contract_limits() -> Limits:
    """Caps for a contract (OpenAPI or JSON Schema, YAML or JSON) and the files it references."""
    return Limits(_env_bytes("BATON_MAX_CONTRACT_BYTES", 10 * MIB), 100_000, 200, "BATON_MAX_CONTRACT_BYTES")


def _size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.1f} MiB".replace(".0 ", " ")
    if n >= 1024:
        return f"{n / 1024:.1f} KiB".replace(".0 ", " ")
    return f"{n} bytes"


def read_text(path: Path, limits: Limits, label: str, *, budget: int | None = None) -> str:
    """The UTF-8 text of ``path``, refusing more than ``budget`` (default: the cap) bytes without reading them."""
    cap = limits.max_bytes if budget is None else budget
    try:
        with open(path, "rb") as handle:
            raw = handle.read(cap + 1)
            if len(raw) > cap:
                try:
                    size = os.fstat(handle.fileno()).st_size
                except OSError:
                    size = 0
                found = _size(size) if size > cap else f"more than {_size(cap)}"
                raise ConfigError(
                    f"{label}: expected at most {_size(limits.max_bytes)}, found {found}; shrink the file "
                    f"or raise {limits.env} (bytes) if it really must be this large."
                )
    except FileNotFoundError:
        raise ConfigError(f"{label} does not exist; create it or pass the right path.") from None
    except IsADirectoryError:
        raise ConfigError(f"{label} is a directory, expected a file; pass the file's path.") from None
    except OSError as exc:
        raise ConfigError(f"{label} cannot be read ({exc.strerror or exc}); fix the file's permissions.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: expected UTF-8 text, found a byte it cannot decode at offset {exc.start}; save it as UTF-8."
        ) from None


def _children(node: Any) -> list[Any]:
    if node.id == "mapping":
        return [part for pair in node.value for part in pair]
    if node.id == "sequence":
        return list(node.value)
    return []


def _line(node: Any) -> int:
    return node.start_mark.line + 1


def check_tree(root: Any, limits: Limits, label: str) -> None:
    """Refuse a composed YAML node graph (PyYAML's or ruamel's) that nests too deep or whose aliases
    repeat too much or refer to themselves; costs one pass over the distinct nodes."""
    sizes: dict[int, int] = {}  # expanded value count under each node
    heights: dict[int, int] = {}
    refs: dict[int, int] = {}
    nodes: dict[int, Any] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
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
            if depth + heights[key] - 1 > limits.max_depth:
                _too_deep(node, limits, label)
            continue
        if depth > limits.max_depth:
            _too_deep(node, limits, label)
        nodes[key] = node
        on_path.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            ckey = id(child)
            refs[ckey] = refs.get(ckey, 0) + 1
            if ckey in on_path:
                anchor = getattr(child, "anchor", None)
                name = f"the anchor &{anchor}" if anchor else "an anchor"
                raise ConfigError(
                    f"{label} line {_line(child)}: expected YAML aliases to refer to finished values, found "
                    f"{name} used inside itself; remove the recursive alias."
                )
            stack.append((child, depth + 1, False))
    repeated = sizes[id(root)] - len(nodes)
    if repeated <= limits.max_alias_values:
        return
    shared = [k for k, n in refs.items() if n > 1]
    worst = nodes[max(shared, key=lambda k: sizes[k] * (refs[k] - 1))]
    anchor = getattr(worst, "anchor", None)
    name = f"the anchor &{anchor} defined there" if anchor else "the value defined there"
    raise ConfigError(
        f"{label} line {_line(worst)}: expected YAML aliases to repeat at most {limits.max_alias_values:,} values, "
        f"found {name} repeated into {repeated:,}; write the values out or use far fewer aliases."
    )


def _too_deep(node: Any, limits: Limits, label: str) -> None:
    raise ConfigError(
        f"{label} line {_line(node)}: expected values nested at most {limits.max_depth} levels deep, "
        "found deeper nesting there; flatten the file."
    )


def check_depth(data: Any, limits: Limits, label: str) -> None:
    """Refuse plain data (from JSON) nested deeper than the cap; iterative, so depth costs no stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limits.max_depth:
            raise ConfigError(
                f"{label}: expected values nested at most {limits.max_depth} levels deep, found deeper nesting; "
                "flatten the file."
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """libyaml's safe loader refusing duplicate keys (as the round-trip parser does) and keeping dates as text."""


def _construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    if len(keys) != len(set(map(repr, keys))):
        raise yaml.constructor.ConstructorError(None, None, "found a duplicate key", node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_error(exc: yaml.YAMLError, label: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{label} line {mark.line + 1}, column {mark.column + 1}" if mark is not None else label
    problem = (getattr(exc, "problem", None) or getattr(exc, "context", None) or "invalid YAML").strip()
    return ConfigError(f"{where}: {problem}; fix the YAML syntax there.")


def compose_yaml(text: str, limits: Limits, label: str) -> Any:
    """The checked node graph of ``text`` (None for an empty document), for callers that need line numbers."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_tree(node, limits, label)
        return node
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, label) from None
    finally:
        loader.dispose()


def load_yaml(text: str, limits: Limits, label: str) -> Any:
    """Plain data from YAML text via libyaml, after :func:`check_tree`; any problem is one ConfigError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_tree(node, limits, label)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, label) from None
    except RecursionError:
        raise ConfigError(
            f"{label}: expected values nested at most {limits.max_depth} levels deep, found deeper nesting; "
            "flatten the file."
        ) from None
    finally:
        loader.dispose()


def load_json(text: str, limits: Limits, label: str) -> Any:
    """Plain data from JSON text, nesting checked; any problem is one ConfigError naming the line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{label} line {exc.lineno}, column {exc.colno}: {exc.msg}; fix the JSON syntax there.") from None
    except RecursionError:
        raise ConfigError(
            f"{label}: expected values nested at most {limits.max_depth} levels deep, found deeper nesting; "
            "flatten the file."
        ) from None
    check_depth(data, limits, label)
    return data
