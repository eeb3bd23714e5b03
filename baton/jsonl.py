"""JSON-lines files under ``.baton/`` (taint analysis, telemetry, the dashboard, DORA): read leniently (a corrupt line is skipped and
counted, never a crash), appended and rewritten under an flock on ``<file>.lock``, rewritten atomically, and
bounded by rotation: past ``max_bytes`` the file becomes ``<file>.1``, the previous ``.1`` becomes ``.2`` and so on
up to ``keep`` rotated files (the oldest is dropped)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.config.document import atomic_write_text
from baton.locking import held

__all__ = ["Lines", "append_lines", "file_lock", "read_lines", "rewrite_lines", "rotated_paths", "tail_lines"]

LOCK_TIMEOUT_S = 30.0  # appends and rewrites are short: a lock held this long is held by a stuck process


@dataclass(frozen=True)
class Lines:
    """The JSON objects of a file, and how many of its lines were not one."""

    records: tuple[dict[str, Any], ...]
    corrupt: int = 0


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    return record if isinstance(record, dict) else None


def rotated_paths(path: Path, keep: int) -> list[Path]:
    """``<path>.keep`` ... ``<path>.1``: the rotated files of ``path``, oldest first."""
    return [path.with_name(f"{path.name}.{i}") for i in range(int(keep), 0, -1)]


def _records(data: bytes) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    corrupt = 0
    for raw in data.splitlines():
        if not raw.strip():
            continue
        record = _parse(raw)
        if record is None:
            corrupt += 1
        else:
            records.append(record)
    return records, corrupt


def read_lines(path: Path, *, rotated: bool | int = False) -> Lines:
    """Every JSON object of ``path``, oldest first: after those of its rotated files when ``rotated`` (True: the
    one ``<path>.1``; a number: that many, ``<path>.N`` first); a missing file is empty."""
    paths = [*rotated_paths(path, int(rotated)), path]
    records: list[dict[str, Any]] = []
    corrupt = 0
    for one in paths:
        try:
            data = one.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue
        found, bad = _records(data)
        records += found
        corrupt += bad
    return Lines(tuple(records), corrupt)


def tail_lines(path: Path, max_bytes: int) -> Lines:
    """The JSON objects of the last ``max_bytes`` of ``path`` (the first, cut line left out), oldest first."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read()
    except OSError:  # missing, or unreadable: nothing to show
        return Lines(())
    if start:
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    found, bad = _records(data)
    return Lines(tuple(found), bad)


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (a file of its own, so that an atomic replace of ``path`` does not
    take the lock away with the old inode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with held(path.with_name(path.name + ".lock"), timeout_s, "another baton process"):
        yield


def _encode(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records)


def _rotate(path: Path, keep: int) -> None:
    """``path`` becomes ``<path>.1``, each ``.i`` becomes ``.i+1``; ``.keep`` is dropped."""
    older = rotated_paths(path, keep)  # .keep ... .1
    with contextlib.suppress(FileNotFoundError):
        older[0].unlink()
    for source, target in zip(older[1:], older, strict=False):
        with contextlib.suppress(FileNotFoundError):
            os.replace(source, target)
    os.replace(path, older[-1])


def _chunks(lines: list[bytes], size: int, max_bytes: int) -> Iterator[tuple[bool, bytes]]:
    """(rotate first?, bytes to write) so that no file passes ``max_bytes`` (a single longer line stands alone)."""
    chunk: list[bytes] = []
    used = size
    for line in lines:
        if used and used + len(line) > max_bytes:
            if chunk:
                yield False, b"".join(chunk)
                chunk = []
            yield True, b""
            used = 0
        chunk.append(line)
        used += len(line)
    if chunk:
        yield False, b"".join(chunk)


def append_lines(path: Path, records: Iterable[dict[str, Any]], *, max_bytes: int | None = None,
                 keep: int = 1) -> int:
    """Append ``records`` under the file's lock. With ``max_bytes``, no file passes it (unless one record alone
    does): the file is rotated first whenever the next line would take it past (``keep`` rotated files kept,
    the oldest dropped), so together they hold at most ``(keep + 1) * max_bytes``. Returns how many rotations
    happened."""
    lines = [(json.dumps(r, separators=(",", ":"), default=str) + "\n").encode() for r in records]
    if not lines:
        return 0
    rotations = 0
    with file_lock(path):
        if max_bytes is None:
            parts: Iterable[tuple[bool, bytes]] = [(False, b"".join(lines))]
        else:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            parts = _chunks(lines, size, max_bytes)
        for rotate, data in parts:
            if rotate:
                with contextlib.suppress(FileNotFoundError):
                    _rotate(path, max(1, keep))
                    rotations += 1
                continue
            with path.open("ab") as handle:
                handle.write(data)
    return rotations


def rewrite_lines(path: Path, records: Iterable[dict[str, Any]], *, rotated: bool | int = False) -> None:
    """Replace the file with ``records`` atomically under its lock (and drop its rotated files when ``rotated``:
    True, the one ``.1``; a number, that many)."""
    with file_lock(path):
        atomic_write_text(path, _encode(records), mode=0o644)
        for old in rotated_paths(path, int(rotated)):
            old.unlink(missing_ok=True)
