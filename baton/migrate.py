"""``baton.yaml`` v1 -> v2. Version 2 only adds optional fields, so migrating
marks the file as v2 and leaves everything else, comments included, as it was."""

from __future__ import annotations

from dataclasses import dataclass, field

from ruamel.yaml.comments import CommentedMap

__all__ = ["CURRENT_VERSION", "Migration", "migrate"]

CURRENT_VERSION = 2


@dataclass
class Migration:
    from_version: int
    to_version: int
    changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def migrate(data: CommentedMap) -> Migration:
    """Migrate a round-trip tree in place to the current version."""
    found = int(data.get("version", 1) or 1)
    migration = Migration(found, max(found, CURRENT_VERSION))
    if found >= CURRENT_VERSION:
        return migration
    if "version" in data:
        data["version"] = CURRENT_VERSION
    else:
        position = list(data.keys()).index("name") + 1 if "name" in data else 0
        data.insert(position, "version", CURRENT_VERSION)
    migration.changes.append(f"version: {found} -> {CURRENT_VERSION}")
    return migration
