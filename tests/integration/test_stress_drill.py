"""The contention drill of issue 13: 10 swaps, 3 canary promotions, 3 heals after kill -9, an A/B split and
back, a collapse and back, and an `up` of the running circuit, under steady load with two CPU-burning
processes beside it: not one request fails. Asserted on counts (from bench/stress.py --json), never on times."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from baton_cli import processes_under

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STRESS = Path(__file__).resolve().parents[2] / "bench" / "stress.py"


def test_no_request_fails_under_contention() -> None:
    proc = subprocess.run([sys.executable, str(STRESS), "--swaps", "10", "--canaries", "3", "--heals", "3",
                           "--burners", "2", "--json"], capture_output=True, text=True, timeout=1200)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    rows = {row["action"]: row for row in result["rows"]}
    assert {a: rows[a]["runs"] for a in ("swap", "canary", "heal", "ab", "collapse", "up")} == {
        "swap": 10, "canary": 3, "heal": 3, "ab": 1, "collapse": 1, "up": 1}
    assert all(row["sent"] > 0 for row in rows.values()), rows  # the load ran through every action
    assert {a: (row["failed"], row["failures"]) for a, row in rows.items()} == {a: (0, {}) for a in rows}
    assert result["failed"] == 0 and proc.returncode == 0
    assert not processes_under(Path(result["project"])), "the drill left processes behind"
