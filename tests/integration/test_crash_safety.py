"""Crash drills: the conductor is killed (``kill -9``, its whole process group) right after each step of
``slot``, ``swap`` and a canary promotion. Whatever it had started or was retiring stays recorded by its
lease; the next commands adopt what the adapter serves, stop the rest and record the run as Crashed; nothing
of the project outlives ``baton down --all``.

The conductor pauses at the chosen boundary through the ``BATON_FAULT_PAUSE_AFTER`` test seam (see
``tasks.context.step``) and writes ``.baton/fault-paused-<step>``; the drill then kills it there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from baton_cli import BATON, get_json, ok, processes_under, run_baton, wait_for, wire_quickstart
from load import Load

pytestmark = pytest.mark.integration

SERVICE = f"{sys.executable} {Path(__file__).resolve().parent / 'services' / 'versioned.py'}"

ACTIONS = {
    "slot": (["slot", "api", f"{SERVICE} v2"], "slot-api"),
    "swap": (["swap", "api", f"{SERVICE} v2"], "swap-api"),
    "canary": (["route", "canary", "api", f"{SERVICE} v2", "--pct", "50", "--steps", "50,100", "--promote",
                "--eval-interval", "1", "--min-requests", "1"], "route-canary-promote-api"),
}
BOUNDARIES = {
    "slot": ["plan-service", "start-service", "wait-service-ready", "switch-backend", "record-service",
             "stop-service"],
    "swap": ["plan-service", "start-service", "wait-service-ready", "switch-backend", "record-service",
             "drain-backend", "stop-service"],
    "canary": ["start-service", "switch-routing", "record-routing", "conclude-canary", "stop-service"],
}
CASES = [(action, step) for action, steps in BOUNDARIES.items() for step in steps]


def leased_processes(project: Path) -> dict[int, str]:
    """pid -> lease id of every live process started with one of this project's leases (read from /proc,
    independently of the code under test)."""
    marker = f"BATON_LEASE={project / '.baton' / 'leases'}{os.sep}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rfind(")") + 2:].startswith("Z"):
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(marker):
                found[int(entry.name)] = Path(item.decode().split("=", 1)[1]).stem
    return found


def named_leases(project: Path) -> set[str]:
    """The lease ids state.json names: node services, routing targets, warm versions, adapter hosts."""
    state = json.loads((project / ".baton" / "state.json").read_text())
    slots = []
    for node in state["adapters"].values():
        slots += [node["service"], *node["targets"].values(), *([node["warm"]] if node.get("warm") else [])]
    paths = [s.get("lease") for s in slots] + [h.get("lease") for h in state["hosts"].values()]
    return {Path(p).stem for p in paths if p}


def routed(project: Path) -> dict[str, int]:
    """Where api's adapter sends traffic: target name ("" for a single backend) -> port."""
    from baton.control import ControlClient
    from baton.project import Project

    config = Project.at(project).load()
    status = ControlClient.for_node(config, "api", state_dir=project / ".baton").request_sync("GET", "/status")
    backend = status["backend"]
    if "targets" in backend:
        return {t["name"]: t["port"] for t in backend["targets"] if "port" in t}
    return {"": backend["port"]} if "port" in backend else {}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat[stat.rfind(")") + 2:].startswith("Z")


@pytest.mark.slow  # about 12 s a boundary, 18 boundaries
@pytest.mark.parametrize(("action", "step"), CASES, ids=[f"{a}-after-{s}" for a, s in CASES])
def test_a_conductor_killed_after_a_step_leaves_nothing_unaccounted_for(tmp_path: Path, action: str,
                                                                        step: str) -> None:
    project = tmp_path / "shop"
    ok(run_baton("init", str(project)))
    seen: set[int] = set()
    try:
        wire_quickstart(project)
        # The conductor pauses after `step`; the first version is slotted without it (no conductor).
        ok(run_baton("up", "--mock", cwd=project, timeout=180, env={"BATON_FAULT_PAUSE_AFTER": step}))
        ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=project, env={"BATON_NO_CONDUCTOR": "1"}))
        api = next(n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"] if n["name"] == "api")
        url = f"http://127.0.0.1:{api['port']}/"

        argv, run_name = ACTIONS[action]
        marker = project / ".baton" / f"fault-paused-{step}"
        env = {**os.environ, "BATON_NO_SCHEDULES": "1", "BATON_NO_CUSTODIAN": "1"}
        with Load(url, workers=2):  # a canary decides on traffic; the others do not mind it
            cut = subprocess.Popen([str(BATON), *argv], cwd=project, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            wait_for(marker.exists, 120, f"the conductor to pause after {step}")
        conductor = json.loads((project / ".baton" / "conductor.json").read_text())["process"]
        wait_for(lambda: marker.read_text().strip(), 5, "the paused pid")
        assert int(marker.read_text()) == conductor["pid"]
        os.killpg(conductor["pgid"], signal.SIGKILL)
        _, stderr = cut.communicate(timeout=60)
        assert cut.returncode != 0, stderr
        serving = routed(project)  # what the adapter serves at the moment of the kill
        left = leased_processes(project)
        seen |= set(left)
        assert left, "the drill killed the conductor before anything ran"

        ok(run_baton("up", cwd=project, timeout=180))  # a new conductor: it records the cut run as Crashed
        ok(run_baton("status", "--json", cwd=project))
        swapped = ok(run_baton("swap", "api", f"{SERVICE} v3", "--json", cwd=project, timeout=120)).json()
        # State named what the adapter served when the conductor died (adopted if it had not been recorded).
        assert swapped["old_port"] == serving.get("", serving.get("stable")), (serving, swapped)
        assert get_json(url)["version"] == "v3"

        live = leased_processes(project)
        seen |= set(live)
        named = named_leases(project)
        assert set(live.values()) <= named, f"unaccounted for: {set(live.values()) - named}"
        gone = [pid for pid, lease in left.items() if lease not in named]
        assert not [pid for pid in gone if alive(pid)], "leftovers of the cut run still run"

        runs = ok(run_baton("history", "--json", cwd=project)).json()["runs"]
        cut_runs = [r["state"] for r in runs if r["name"] == run_name]
        assert "Crashed" in cut_runs and "Running" not in cut_runs, runs
    finally:  # even when the drill failed: nothing of this test may outlive it
        run_baton("down", "--all", cwd=project, timeout=120)
    wait_for(lambda: not processes_under(project), 15, "every process of the project to stop")
    assert not [pid for pid in seen if alive(pid)]
    assert not list((project / ".baton" / "leases").glob("*.json"))
