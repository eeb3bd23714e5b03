"""A YAML file edited losslessly: comments, key order, unknown keys and
indentation survive every edit, and writes are atomic.

ruamel.yaml's round-trip mode does the YAML work (we do not hand-write a
round-tripping parser). The one thing it cannot read off a file is the
indentation style, so we pick the style whose re-rendering of the untouched
file matches the original best.
"""

from __future__ import annotations

import difflib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from baton.config.bounded import Limits, check_tree, config_limits, read_text
from baton.errors import ConfigError

__all__ = ["YamlDocument", "atomic_write_text", "to_plain", "line_of", "describe"]

_SECTIONS = "a mapping of sections (name, nodes, edges, ...)"

# (mapping, sequence, offset) styles seen in hand-written files, most common first.
_INDENT_STYLES = ((2, 2, 0), (2, 4, 2), (4, 4, 0), (4, 6, 4), (4, 4, 2), (2, 3, 1), (3, 3, 0))


def _yaml(style: tuple[int, int, int]) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a user's long lines
    mapping, sequence, offset = style
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _bounded_yaml(limits: Limits, label: str) -> YAML:
    """The round-trip parser, refusing deep nesting and alias bombs before it builds anything."""

    class BoundedComposer(Composer):
        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                check_tree(node, limits, label)
            return node

    yaml = _yaml(_INDENT_STYLES[0])
    yaml.Composer = BoundedComposer
    return yaml


def _render(yaml: YAML, data: Any) -> str:
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half of one.

    ``mode`` sets the new file's permissions before it appears (secrets: 0o600, never readable by others even
    for an instant); without it an existing file keeps its mode and a new one gets 0o600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_plain(value: Any) -> Any:
    """ruamel's round-trip containers and scalars as plain Python values."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def describe(value: Any) -> str:
    """What a parsed document turned out to be, as a user would say it ("plain text", "a list")."""
    if isinstance(value, str):
        return "plain text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest element of ``loc`` that the document can place."""
    line: int | None = None
    node = data
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (AttributeError, KeyError, TypeError, IndexError):
            break
    return line


class YamlDocument:
    """One YAML file held as a round-trip tree; ``save`` writes it back atomically.

    Reading is bounded (:mod:`baton.config.bounded`): the file's size, its nesting and what its aliases
    repeat are capped before the tree is built.
    """

    def __init__(self, path: Path, text: str, data: CommentedMap, style: tuple[int, int, int]) -> None:
        self.path = Path(path)
        self.original_text = text
        self.data = data
        self._writer = _yaml(style)

    @classmethod
    def load(
        cls, path: Path, *, label: str | None = None, limits: Limits | None = None, expected: str = _SECTIONS
    ) -> YamlDocument:
        path = Path(path)
        label = label or path.name
        limits = limits or config_limits()
        return cls.parse(read_text(path, limits, label), path=path, label=label, limits=limits, expected=expected)

    @classmethod
    def parse(
        cls, text: str, *, path: Path, label: str, limits: Limits | None = None, expected: str = _SECTIONS
    ) -> YamlDocument:
        """Parse ``text``; ``expected`` says what the document should be, for the error when it is not a mapping."""
        limits = limits or config_limits()
        try:
            data = _bounded_yaml(limits, label).load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = (exc.problem or exc.context or "invalid YAML").strip()
            raise ConfigError(f"{label}{where}: {problem}; fix the YAML syntax there.") from None
        except YAMLError as exc:
            raise ConfigError(f"{label} is not valid YAML ({exc}); fix the YAML syntax.") from None
        except TypeError:  # ruamel's complex keys (`? ` with a mapping or list) are unhashable
            raise ConfigError(f"{label}: expected plain keys, found a mapping or list used as a key (`? ...`); "
                              "use strings as keys.") from None
        except RecursionError:
            raise ConfigError(
                f"{label}: expected values nested at most {limits.max_depth} levels deep, found deeper nesting; "
                "flatten the file."
            ) from None
        if data is None:
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            raise ConfigError(f"{label} line 1: expected {expected}, found {describe(data)}; fix {label}.")
        return cls(path, text, data, cls._guess_style(text, data))

    @staticmethod
    def _guess_style(text: str, data: CommentedMap) -> tuple[int, int, int]:
        if not text.strip():
            return _INDENT_STYLES[0]
        original = text.splitlines()
        best, best_score = _INDENT_STYLES[0], -1.0
        for style in _INDENT_STYLES:
            rendered = _render(_yaml(style), data)
            if rendered == text:
                return style
            score = difflib.SequenceMatcher(None, original, rendered.splitlines(), autojunk=False).ratio()
            if score > best_score:
                best, best_score = style, score
        return best

    def render(self) -> str:
        return _render(self._writer, self.data)

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        return line_of(self.data, loc)

    def plain(self) -> dict[str, Any]:
        return to_plain(self.data)

    def save(self, path: Path | None = None) -> None:
        atomic_write_text(path or self.path, self.render())
