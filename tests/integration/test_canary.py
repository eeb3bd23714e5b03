"""Canary auto-promotion end to end: real services, a steady load, decisions recorded in history."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from baton_cli import ok, run_baton, run_details
from load import Load

pytestmark = pytest.mark.integration

SERVICE = f"{sys.executable} {Path(__file__).resolve().parent / 'services' / 'versioned.py'}"
FAST = ["--eval-interval", "1", "--min-requests", "10", "--steps", "20,50,100"]




@pytest.fixture
def canary_circuit(tmp_path: Path):
    project = tmp_path / "can"
    ok(run_baton("init", str(project)))
    try:
        ok(run_baton("node", "add", "api", cwd=project))
        ok(run_baton("up", "--mock", cwd=project, timeout=180))
        ok(run_baton("slot", "api", f"{SERVICE} stable", cwd=project))
        port = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]["port"]
        yield project, f"http://127.0.0.1:{port}/"
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)


def canary(project: Path, url: str, command: str, *extra: str):
    with Load(url, workers=4) as load:
        load.flowing()
        result = run_baton("route", "canary", "api", command, "--promote", *FAST, *extra, "--json", cwd=project,
                           timeout=180)
        load.flowing()
    return result, load


def test_a_healthy_canary_promotes_and_the_old_version_stops(canary_circuit) -> None:
    project, url = canary_circuit
    result, load = canary(project, url, f"{SERVICE} canary")
    report = ok(result).json()
    assert report["outcome"] == "Succeeded", report
    assert any("Advance canary weight 20% -> 50%" in d for d in report["decisions"])
    assert any(d.startswith("Promoting") for d in report["decisions"])
    assert dict(load.statuses) == {"200": load.total}
    status = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
    assert status["state"] == "live" and status["service"]["port"] == report["serving"]
    routing = ok(run_baton("route", "show", "api", "--json", cwd=project)).json()
    assert routing["strategy"] == "single" and routing["targets"][0]["port"] == report["serving"]
    shown = run_details("route-canary-promote-api", project, lambda d: any("Promoting" in l["message"] for l in d["logs"]))
    evaluations = [s for s in shown["steps"] if s["name"].startswith("evaluate-canary")]
    assert len(evaluations) >= 3


@pytest.mark.parametrize(("mode", "reason", "extra"), [
    ("fail", "canary error rate 100.0% > 5%", ()),
    ("slow", "canary p99 latency", ("--min-requests", "2", "--eval-interval", "2")),  # 0.6 s answers: fewer of them
])
def test_a_bad_canary_rolls_back_within_one_interval(canary_circuit, mode: str, reason: str, extra) -> None:
    project, url = canary_circuit
    result, load = canary(project, url, f"{SERVICE} canary {mode}", *extra)
    assert result.code == 1, result.stderr
    report = result.json()
    assert report["outcome"] == "Failed" and reason in report["reason"]
    assert report["decisions"][0].startswith("Starting canary at 20%")
    assert len(report["decisions"]) == 2  # the first evaluation already rolled back
    errors = load.total - load.statuses["200"]
    assert errors <= 0.35 * load.total, load.statuses  # failures stay within the canary's 20% share
    assert ok(run_baton("route", "show", "api", "--json", cwd=project)).json()["strategy"] == "single"
    from urllib.request import urlopen
    import json

    with urlopen(url, timeout=5) as response:
        assert json.loads(response.read())["version"] == "stable"


def test_a_canary_that_refuses_connections_rolls_back(canary_circuit) -> None:
    project, url = canary_circuit
    # ready, then gone after 4 s: evaluations 3 s apart cannot promote it before it refuses connections
    result, load = canary(project, url, f"{SERVICE} canary die", "--eval-interval", "3")
    assert result.code == 1, result.stderr
    report = result.json()
    assert report["outcome"] == "Failed" and "canary error rate" in report["reason"]
    assert load.total - load.statuses["200"] <= 0.35 * load.total, load.statuses


def _get_version(url: str) -> str:
    from baton_cli import get_json

    return get_json(url)["version"]


def test_a_promotion_kept_warm_is_reverted_at_once(canary_circuit) -> None:
    project, url = canary_circuit
    result, _ = canary(project, url, f"{SERVICE} canary", "--keep-warm", "120")
    report = ok(result).json()
    assert report["outcome"] == "Succeeded" and report["warm"], report
    node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
    assert node["warm"]["port"] == report["warm"] and node["canary"]["phase"] == "Succeeded"
    assert _get_version(url) == "canary"
    with Load(url, workers=4) as load:
        load.flowing()
        reverted = ok(run_baton("route", "revert", "api", "--json", cwd=project)).json()
        load.flowing()
    assert reverted == {"node": "api", "serving": report["warm"], "stopped": report["serving"],
                        "reverted": "promotion"}
    assert dict(load.statuses) == {"200": load.total}  # the revert loses nothing
    assert _get_version(url) == "stable"
    node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
    assert node["warm"] is None and node["service"]["port"] == report["warm"]
    again = run_baton("route", "revert", "api", cwd=project)
    assert again.code == 2 and "no previous version kept warm" in again.stderr, again.stderr


def test_revert_during_a_canary_rolls_it_back(canary_circuit) -> None:
    project, url = canary_circuit
    started = ok(run_baton("route", "canary", "api", f"{SERVICE} canary", "--promote", "--detach",
                           "--eval-interval", "600", "--json", cwd=project)).json()
    assert started["outcome"] == "Progressing" and started["detached"] is True
    node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
    assert node["canary"]["in_flight"] and node["canary"]["weight"] == 10
    reverted = ok(run_baton("route", "revert", "api", "--json", cwd=project)).json()
    assert reverted["reverted"] == "canary" and reverted["outcome"] == "Failed"
    node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
    assert not node["canary"]["in_flight"] and node["canary"]["reason"].startswith("Rollback: reverted by ")
    routing = ok(run_baton("route", "show", "api", "--json", cwd=project)).json()
    assert routing["strategy"] == "single" and routing["targets"][0]["port"] == node["service"]["port"]
    assert {_get_version(url) for _ in range(20)} == {"stable"}


def _decisions(project: Path) -> list[dict]:
    """The canary record's decision log, as persisted (``.baton/state.json``)."""
    import json

    state = json.loads((project / ".baton" / "state.json").read_text())
    return state["adapters"]["api"]["canary"]["decisions"]


def test_a_canary_without_traffic_is_evaluated_once_per_interval_and_ends_inconclusive(canary_circuit) -> None:
    project, _ = canary_circuit  # nobody calls api
    result = run_baton("route", "canary", "api", f"{SERVICE} canary", "--promote", "--eval-interval", "1",
                       "--max-no-data", "3", "--json", cwd=project, timeout=120)
    assert result.code == 1, result.stderr
    report = result.json()
    assert report["outcome"] == "Failed", report
    assert report["reason"].startswith("Rollback: inconclusive: the canary served 0 of the 20 requests"), report
    assert "in 3 windows of 1 s" in report["reason"]
    evaluated = [d for d in _decisions(project) if d.get("no_data")]
    assert len(evaluated) == 3 and len(report["decisions"]) == 4, report["decisions"]  # start + three windows
    shown = run_details("route-canary-promote-api", project,
                        lambda d: any(l["message"].startswith("Rollback: inconclusive") for l in d["logs"]))
    logged = [l["message"] for l in shown["logs"] if l["message"].startswith(("No data yet", "Rollback: inconclusive"))]
    assert len(logged) == 3, logged  # one evaluation (a task run logging its decision) per window
    assert ok(run_baton("route", "show", "api", "--json", cwd=project)).json()["strategy"] == "single"


def test_commands_that_would_undo_a_canary_refuse_unless_asked_to_end_it(canary_circuit) -> None:
    project, url = canary_circuit
    bad = run_baton("route", "canary", "api", f"{SERVICE} canary", "--promote", "--steps", "50,10", cwd=project)
    assert bad.code == 2 and "--steps expects percentages rising strictly" in bad.stderr, bad.stderr
    assert not ok(run_baton("history", "--action", "route-canary", "--json", cwd=project)).json()["runs"]
    ok(run_baton("route", "canary", "api", f"{SERVICE} canary", "--promote", "--detach", "--eval-interval", "600",
                 cwd=project))
    refusals = {
        "slot api": ("slot", "api", f"{SERVICE} other"),
        "swap api": ("swap", "api", f"{SERVICE} other"),
        "route ab api": ("route", "ab", "api", f"{SERVICE} other"),
        "route canary api": ("route", "canary", "api", f"{SERVICE} other", "--promote"),
        "route set api": ("route", "set", "api", "--strategy", "single", "--target", "a=1"),
        "route clear api": ("route", "clear", "api"),
        "collapse": ("collapse",),
    }
    for action, args in refusals.items():
        refused = run_baton(*args, cwd=project)
        assert refused.code == 2, (action, refused.stdout, refused.stderr)
        assert (f"api has a canary in flight (Progressing at 10%) that {action} would undo; end it with "
                "`baton route revert api`, or add --end-canary") in refused.stderr, (action, refused.stderr)
    node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
    assert node["canary"]["in_flight"] and node["canary"]["weight"] == 10
    routing = ok(run_baton("route", "show", "api", "--json", cwd=project)).json()
    assert routing["strategy"] == "canary" and [t["weight"] for t in routing["targets"]] == [90, 10]

    cleared = ok(run_baton("route", "clear", "api", "--end-canary", "--json", cwd=project)).json()
    assert cleared["routing"]["strategy"] == "single", cleared
    node = ok(run_baton("status", "--json", cwd=project)).json()["nodes"][0]
    assert not node["canary"]["in_flight"] and node["canary"]["phase"] == "Failed"
    assert node["canary"]["reason"] == "Rollback: ended at 10% for route clear api"
    assert {_get_version(url) for _ in range(10)} == {"stable"}
    ok(run_baton("slot", "api", f"{SERVICE} other", cwd=project))  # nothing in flight: no refusal
    assert _get_version(url) == "other"
