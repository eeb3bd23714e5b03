"""What the log pumps say of their progress (``baton.logpump._Progress``: ``.baton/logpumps/<pid>.json``), read
by the taint soak: has every live pump loaded the canaries just seeded, and has it scanned every line printed
before a given time? Conditions to wait for, instead of a guessed settling time."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from baton.taint.registry import CANARIES_FILE

__all__ = ["PUMPS_DIR", "PumpProgress", "behind", "live_pumps", "not_scanning", "registry_version"]

PUMPS_DIR = "logpumps"


@dataclass(frozen=True)
class PumpProgress:
    pid: int
    node: str
    registry: tuple[int, int, int] | None  # the canaries file version it scans for
    caught_up: float  # every line printed before this time has been scanned


def registry_version(state_dir: Path) -> tuple[int, int, int] | None:
    """The version of the canaries file as the pumps see it: (inode, size, mtime_ns); None when absent."""
    try:
        stat = os.stat(Path(state_dir) / CANARIES_FILE)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_pumps(state_dir: Path) -> list[PumpProgress]:
    """The progress of every pump whose process is alive (a file left by a killed pump is removed)."""
    found = []
    for path in sorted((Path(state_dir) / PUMPS_DIR).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            progress = PumpProgress(int(record["pid"]), str(record["node"]),
                                    tuple(record["registry"]) if record.get("registry") else None,  # type: ignore[arg-type]
                                    float(record["caught_up"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced, or not a pump's
        if _alive(progress.pid):
            found.append(progress)
        else:
            path.unlink(missing_ok=True)
    return found


def not_scanning(pumps: list[PumpProgress], version: tuple[int, int, int] | None) -> list[str]:
    """The nodes whose pump does not scan for the canaries file at ``version`` yet."""
    return sorted({p.node for p in pumps if p.registry != version})


def behind(pumps: list[PumpProgress], since: float) -> list[str]:
    """The nodes whose pump has not scanned every line printed before ``since`` yet."""
    return sorted({p.node for p in pumps if p.caught_up < since})
