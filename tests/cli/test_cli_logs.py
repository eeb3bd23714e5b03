"""``baton logs``: the newest lines across the rotated service log, filtered, and never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from baton_cli import run_baton


def _record(node: str, severity: str, message: str) -> str:
    return json.dumps({"node_name": node, "pid": 1, "stream": "stdout", "severity": severity, "message": message,
                       "timestamp": "2026-12-01T12:00:00.000+00:00"})


def test_logs_reads_the_rotated_files_when_the_newest_falls_short(project_dir: Path) -> None:
    state = project_dir / ".baton"
    state.mkdir(exist_ok=True)
    (state / "service_logs.jsonl.2").write_text("\n".join(_record("api", "info", f"old {i}") for i in range(3)) + "\n")
    (state / "service_logs.jsonl.1").write_text("\n".join(_record("api", "error", f"mid {i}") for i in range(3)) + "\n")
    hostile = [b"not json", b"[1, 2]", _record("api", "loud", "odd severity").encode(), b"\xff\xfe{\x00",
               _record("web", "info", "web line").encode()]
    (state / "service_logs.jsonl").write_bytes(b"\n".join([*hostile, _record("api", "info", "new").encode()]) + b"\n")

    logs = run_baton("logs", "--node", "api", "--last", "5", "--json", cwd=project_dir)
    assert logs.code == 0, logs.stderr
    assert [r["message"] for r in logs.json()["logs"]] == ["mid 0", "mid 1", "mid 2", "odd severity", "new"]
    everything = run_baton("logs", "--last", "100", "--json", cwd=project_dir).json()["logs"]
    assert len(everything) == 9 and everything[0]["message"] == "old 0"
    errors = run_baton("logs", "--level", "error", "--json", cwd=project_dir).json()["logs"]
    assert [r["message"] for r in errors] == ["mid 0", "mid 1", "mid 2"]
    human = run_baton("logs", "--node", "web", cwd=project_dir)
    assert human.code == 0 and "web line" in human.stdout and "Traceback" not in human.stderr


def test_logs_without_any_output_yet(project_dir: Path) -> None:
    result = run_baton("logs", cwd=project_dir)
    assert result.code == 0 and "No service logs yet." in result.stdout
