"""The custodian's state on disk: ``.baton/custodian.json``, written atomically when it changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from baton.config.document import atomic_write_text

__all__ = ["CustodyStore"]


class CustodyStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "custodian.json"

    def load(self) -> dict[str, Any]:
        """The saved state, or an empty one when there is none or it cannot be read (the custodian then
        observes everything afresh: nothing it decides rests on a file it could not read)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, OSError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, snapshot: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(snapshot, indent=1) + "\n")
