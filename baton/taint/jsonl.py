"""The JSON-lines files of taint analysis under ``.baton/``: read leniently (a corrupt line is skipped and
counted, never a crash), appended and rewritten under an flock on ``<file>.lock``, rewritten atomically, and
bounded by rotation to ``<file>.1``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.config.document import atomic_write_text

__all__ = ["Lines", "append_lines", "file_lock", "read_lines", "rewrite_lines"]


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


def read_lines(path: Path, *, rotated: bool = False) -> Lines:
    """Every JSON object of ``path`` (after those of ``<path>.1`` when ``rotated``); a missing file is empty."""
    paths = [path.with_name(path.name + ".1"), path] if rotated else [path]
    records: list[dict[str, Any]] = []
    corrupt = 0
    for one in paths:
        try:
            data = one.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue
        for raw in data.splitlines():
            if not raw.strip():
                continue
            record = _parse(raw)
            if record is None:
                corrupt += 1
            else:
                records.append(record)
    return Lines(tuple(records), corrupt)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``<path>.lock`` (a file of its own, so that an atomic replace of ``path`` does not
    take the lock away with the old inode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _encode(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records)


def append_lines(path: Path, records: Iterable[dict[str, Any]], *, max_bytes: int | None = None) -> None:
    """Append ``records`` under the file's lock; past ``max_bytes`` the file first becomes ``<path>.1`` (the
    previous ``.1`` is dropped), so the two together stay near twice that size."""
    text = _encode(records)
    if not text:
        return
    with file_lock(path):
        if max_bytes is not None:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_size + len(text) > max_bytes:
                    os.replace(path, path.with_name(path.name + ".1"))
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)


def rewrite_lines(path: Path, records: Iterable[dict[str, Any]], *, rotated: bool = False) -> None:
    """Replace the file with ``records`` atomically under its lock (and drop ``<path>.1`` when ``rotated``)."""
    with file_lock(path):
        atomic_write_text(path, _encode(records), mode=0o644)
        if rotated:
            path.with_name(path.name + ".1").unlink(missing_ok=True)
