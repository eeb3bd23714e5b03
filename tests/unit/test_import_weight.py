"""Commands that only read state must not import Prefect (about 0.6 s): `baton status` stays under 0.5 s."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["baton.cli.main", "baton.cli.status_cmd", "tasks.observe", "baton.custodian",
                                    "baton.cli.custody"])
def test_reading_commands_do_not_import_prefect(module: str) -> None:
    code = f"import sys, {module}; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False", f"importing {module} imports Prefect"
