"""``baton migrate-config``: v1 -> v2 in place, to another file, or as a dry run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from baton.cli.output import emit, json_option

__all__ = ["migrate_config"]


@click.command("migrate-config")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="File to migrate (default: the project's baton.yaml).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of in place.")
@click.option("--dry-run", is_flag=True, help="Print the migrated file; write nothing.")
@json_option
@click.pass_obj
def migrate_config(obj: Any, config_path: Path | None, output: Path | None, dry_run: bool, as_json: bool) -> None:
    """Migrate baton.yaml from v1 to v2, keeping comments and every section."""
    import contextlib

    from baton.config import CircuitConfig, YamlDocument, validate_document
    from baton.migrate import migrate

    if config_path is not None:
        path, lock = config_path, contextlib.nullcontext()
    else:
        project = obj.project()
        path, lock = project.config_path, project.lock()
    with lock:
        doc = YamlDocument.load(path, label=str(path))
        validate_document(doc, CircuitConfig, label=str(path))
        migration = migrate(doc.data)
        validate_document(doc, CircuitConfig, label=str(path))
        target = output or path
        text = doc.render()
        if not dry_run and (migration.changed or output is not None):
            doc.save(target)
    payload = {
        "config": str(path),
        "output": None if dry_run else str(target),
        "from_version": migration.from_version,
        "to_version": migration.to_version,
        "changed": migration.changed,
        "changes": migration.changes,
        "dry_run": dry_run,
    }
    if dry_run:
        payload["text"] = text

    def human(c: Any) -> None:
        if dry_run:
            c.out(text, end="")
        elif migration.changed:
            c.print(f"Migrated {path} from v{migration.from_version} to v{migration.to_version}"
                    + (f", written to {target}" if output else ""))
        else:
            c.print(f"{path} is already v{migration.from_version}; nothing to migrate"
                    + (f" (copied to {target})" if output else ""))

    emit(as_json, payload, human)
