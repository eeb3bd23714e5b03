"""``prefect deploy`` from the repository registers Baton's deployments on a real server, and a real process
worker runs the canary tick for a project (found again by ``baton history``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from baton_cli import ROOT, ok, run_baton

pytestmark = pytest.mark.integration

PREFECT = str(Path(sys.executable).with_name("prefect"))


def prefect(*args: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([PREFECT, "--no-prompt", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"prefect {' '.join(args)}: {result.stdout[-2000:]} {result.stderr[-2000:]}"
    return result


def test_prefect_deploy_from_the_repository_and_a_worker_runs_the_tick(tmp_path: Path, prefect_api: str) -> None:
    project = tmp_path / "deployed"
    ok(run_baton("init", str(project)))
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "BATON_PROJECT": str(project), "NO_COLOR": "1",
           "PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "200"}
    prefect("work-pool", "create", "baton-test-pool", "--type", "process", env=env)
    # the file names the pool `baton`; a test keeps to the one it created
    spec = (ROOT / "flows" / "prefect.yaml").read_text().replace("work_pool:\n      name: baton\n",
                                                               "work_pool:\n      name: baton-test-pool\n")
    spec_file = tmp_path / "prefect.yaml"
    spec_file.write_text(spec)
    deployed = prefect("deploy", "--all", "--prefect-file", str(spec_file), env=env)
    for name in ("canary-tick/canary-tick", "apply/apply", "deploy/deploy"):
        assert f"Deployment '{name}' successfully created" in deployed.stdout.replace("\n", " ").replace("│", ""), \
            deployed.stdout
    shown = prefect("deployment", "inspect", "canary-tick/canary-tick", env=env).stdout
    assert f"'root': '{project}'" in shown and "'interval': 30.0" in shown

    prefect("deployment", "run", "canary-tick/canary-tick", env=env)
    prefect("worker", "start", "--pool", "baton-test-pool", "--run-once", env=env, cwd=tmp_path, timeout=180)
    runs = ok(run_baton("history", "--idle", "--action", "canary-tick", "--json", cwd=project)).json()["runs"]
    assert [(r["name"], r["state"], r["actor"]) for r in runs] == [("canary-tick-idle", "Completed", "schedule")]
