"""The ``baton`` command: one root group, errors mapped to exit codes in one place.

Exit codes: 0 success, 1 failure, 2 usage error (bad arguments or input),
130 interrupted. No traceback reaches a user unless ``BATON_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from baton.cli.certs_cmd import certs
from baton.cli.ci_cmd import ci
from baton.cli.dashboard_cmd import dashboard
from baton.cli.deploy_cmd import deploy, deploy_status, teardown
from baton.cli.dora_cmd import dora
from baton.cli.export_cmd import export
from baton.cli.heal_cmd import heal, watch
from baton.cli.history_cmd import history
from baton.cli.image_cmd import image
from baton.cli.logs_cmd import logs
from baton.cli.migrate_cmd import migrate_config
from baton.cli.route_cmd import route
from baton.cli.runtime_cmd import apply, collapse, down, serve, slot, swap, up
from baton.cli.server_cmd import server, ui
from baton.cli.services_cmd import check, service
from baton.cli.status_cmd import status
from baton.cli.taint_cmd import taint
from baton.cli.telemetry_cmd import events, metrics, signals
from baton.cli.test_cmd import test
from baton.cli.topology_cmd import contract, edge, init, node

__all__ = ["cli", "main"]


class Context:
    """What every command gets: where the project is (found lazily)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def project(self):  # noqa: ANN201
        from baton.project import Project

        if self.directory is not None:
            return Project.at(self.directory)
        return Project.find()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-C",
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: the nearest one holding baton.yaml).",
)
@click.version_option(package_name="baton", prog_name="baton")
@click.pass_context
def cli(ctx: click.Context, directory: Path | None) -> None:
    """Baton: declare a service topology once, then boot, slot, swap and canary it."""
    ctx.obj = Context(directory)


cli.add_command(init)
cli.add_command(node)
cli.add_command(edge)
cli.add_command(contract)
cli.add_command(status)
cli.add_command(migrate_config)
cli.add_command(service)
cli.add_command(check)
for _command in (up, down, slot, swap, collapse, route, apply, serve, history, logs, export, image, deploy, teardown,
                 deploy_status, watch, heal, server, ui, certs, ci, taint, test, dashboard):
    cli.add_command(_command)
for _command in (metrics, signals, events, dora):
    cli.add_command(_command)


def _fail(message: str, code: int) -> int:
    click.echo(f"error: {message}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    from baton.errors import BatonError

    try:
        result = cli.main(args=argv, prog_name="baton", standalone_mode=False)
    except BatonError as exc:
        sys.exit(_fail(exc.message, exc.exit_code))
    except click.exceptions.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        sys.exit(_fail(f"{exc.format_message()}{hint}", 2))
    except click.exceptions.ClickException as exc:
        sys.exit(_fail(exc.format_message(), exc.exit_code or 1))
    except click.exceptions.Abort:
        sys.exit(_fail("interrupted.", 130))
    except KeyboardInterrupt:
        sys.exit(_fail("interrupted.", 130))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # the last line of defence: one sentence, never a traceback
        if os.environ.get("BATON_DEBUG"):
            raise
        sys.exit(_fail(f"unexpected {type(exc).__name__}: {exc}; rerun with BATON_DEBUG=1 and report it.", 1))
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
