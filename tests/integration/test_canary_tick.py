"""The canary tick: a canary started with --detach is carried to its end by ``canary-tick`` runs that the
conductor starts in-process when an evaluation is due (and never while nothing is due)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from baton_cli import get_json, ok, run_baton, run_details, wait_for
from load import Load

pytestmark = pytest.mark.integration

SERVICE = f"{sys.executable} {Path(__file__).resolve().parent / 'services' / 'versioned.py'}"
SCHEDULED = {"BATON_NO_SCHEDULES": "0"}


def _deployments(api_url: str, tag: str) -> list[dict]:
    request = urllib.request.Request(f"{api_url}/deployments/filter", method="POST",
                                     data=json.dumps({"deployments": {"tags": {"all_": [tag]}}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())




def test_the_scheduled_tick_carries_a_detached_canary_to_promotion(tmp_path: Path, prefect_api: str) -> None:
    project = tmp_path / "tick"
    ok(run_baton("init", str(project)))
    try:
        ok(run_baton("node", "add", "api", cwd=project))
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env=SCHEDULED))
        ok(run_baton("slot", "api", f"{SERVICE} stable", cwd=project, env=SCHEDULED))
        port = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]["port"]
        url = f"http://127.0.0.1:{port}/"
        with Load(url, workers=4) as load:
            load.flowing()
            started = ok(run_baton("route", "canary", "api", f"{SERVICE} canary", "--promote", "--detach",
                                   "--eval-interval", "1", "--min-requests", "10", "--steps", "20,50,100",
                                   "--json", cwd=project, env=SCHEDULED)).json()
            assert started["detached"] and started["outcome"] == "Progressing"

            def finished():
                node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
                return node if node["canary"] and not node["canary"]["in_flight"] else None

            try:
                node = wait_for(finished, 90, "the tick to conclude the canary")
            except AssertionError:
                shown = run_baton("history", "--idle", "--limit", "8", cwd=project).stdout
                log = (project / ".baton" / "conductor.log").read_text()[-3000:]
                raise AssertionError(f"the canary never concluded; history:\n{shown}\nconductor log:\n{log}") from None
        assert node["canary"]["phase"] == "Succeeded", node["canary"]
        assert dict(load.statuses) == {"200": load.total}
        assert get_json(url)["version"] == "canary"

        # it ran in the conductor, not as a deployment, and only when an evaluation was due: no idle ticks
        assert not [d for d in _deployments(prefect_api, "action:canary-tick") if d["parameters"] == {"root": str(project)}]
        runs = ok(run_baton("history", "--action", "canary-tick", "--node", "api", "--json", cwd=project)).json()["runs"]
        assert runs and all(r["name"] == "canary-tick-api" and r["actor"] == "schedule" for r in runs)
        every = ok(run_baton("history", "--action", "canary-tick", "--idle", "--json", cwd=project)).json()["runs"]
        assert not [r for r in every if r["name"].endswith("-idle")], every
        details = run_details("canary-tick-api", project, lambda d: d["steps"])
        assert any(s["name"].startswith("evaluate-canary") for s in details["steps"]) or \
            any(s["name"].startswith("conclude-canary") for s in details["steps"])
        logs = []
        for run in runs:
            shown = ok(run_baton("history", "show", run["id"], "--json", cwd=project)).json()
            logs += [line["message"] for line in shown["logs"]]
        assert any("Advance canary weight 20% -> 50%" in m for m in logs) or any("Promoting" in m for m in logs), logs
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def test_a_detached_canary_without_traffic_is_ticked_once_per_interval_and_ends_inconclusive(tmp_path: Path) -> None:
    project = tmp_path / "quiet"
    ok(run_baton("init", str(project)))
    try:
        ok(run_baton("node", "add", "api", cwd=project))
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env=SCHEDULED))
        ok(run_baton("slot", "api", f"{SERVICE} stable", cwd=project, env=SCHEDULED))
        started = ok(run_baton("route", "canary", "api", f"{SERVICE} canary", "--promote", "--detach",
                               "--eval-interval", "1", "--max-no-data", "3", "--json", cwd=project,
                               env=SCHEDULED)).json()
        assert started["detached"] and started["next_evaluation_at"] > 0

        def record():
            return json.loads((project / ".baton" / "state.json").read_text())["adapters"]["api"]["canary"]

        assert record()["policy"]["interval_s"] == 1.0 and record()["policy"]["max_no_data_windows"] == 3
        ended = wait_for(lambda: (r := record())["concluded"] and r, 60, "the tick to end the quiet canary")
        assert ended["phase"] == "Failed" and ended["decisions"][-1]["reason"].startswith("Rollback: inconclusive")
        assert len([d for d in ended["decisions"] if d.get("no_data")]) == 3, ended["decisions"]
        runs = ok(run_baton("history", "--action", "canary-tick", "--node", "api", "--json", cwd=project)).json()["runs"]
        assert 1 <= len(runs) <= 3, [r["name"] for r in runs]  # one tick per due evaluation, never more
        assert ok(run_baton("route", "show", "api", "--json", cwd=project)).json()["strategy"] == "single"
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
