"""Drills: Baton's own parts fail and come back without a person.

Real processes on 127.0.0.1, two CPU-burning processes beside the load where it matters, counts and states
asserted (zero failed requests, zero orphan processes by pid, a status that tells the truth), never times.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from burners import cpu_burners as burning
from baton_cli import ok, processes_under, run_baton, wait_for
from load import Load

pytestmark = pytest.mark.integration

SERVICE = f"{sys.executable} {Path(__file__).resolve().parent / 'services' / 'versioned.py'}"
WATCHED = {"BATON_NO_CUSTODIAN": "0", "BATON_PROBE_INTERVAL_S": "1"}


@pytest.fixture
def cpu_burners() -> Iterator[None]:
    """Two busy loops beside the drill, on this 2-core machine."""
    with burning():
        yield


@pytest.fixture
def own_home(tmp_path: Path) -> dict[str, str]:
    """A Baton directory of the drill's own (its own shared Prefect server), so killing that server spares the
    session's."""
    env = {"BATON_HOME": str(tmp_path / "home"), "PREFECT_API_URL": "", "BATON_MANAGED_API_URL": ""}
    yield env
    run_baton("server", "stop", env=env, timeout=60)


def _project(tmp_path: Path, name: str, port: int, env: dict[str, str] | None = None) -> Path:
    project = tmp_path / name
    ok(run_baton("init", str(project), "--name", "drill", env=env))
    ok(run_baton("node", "add", "api", "--port", str(port), cwd=project, env=env))
    return project


def _state(project: Path) -> dict:
    return json.loads((project / ".baton" / "state.json").read_text())


def _status(project: Path, env: dict[str, str] | None = None) -> dict:
    return ok(run_baton("status", "--json", cwd=project, env=env)).json()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][0] != "Z"


def _servers_of(home: str) -> list[str]:
    """Prefect server processes started for the Baton directory ``home``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "prefect server start" in cmdline and cwd.startswith(home) and _alive(int(entry.name)):
            found.append(entry.name)
    return found


def test_a_killed_prefect_server_comes_back_and_commands_wait_for_it(tmp_path: Path, own_home: dict[str, str],
                                                                      cpu_burners: None) -> None:
    env = {**own_home, **WATCHED}
    project = _project(tmp_path, "api-server", 8931, env)
    try:
        ok(run_baton("up", "--mock", cwd=project, env=env, timeout=240))
        before = ok(run_baton("server", "status", "--json", env=env)).json()
        assert before["running"] and before["managed_by"] == "baton"
        os.killpg(before["pid"], signal.SIGKILL)
        # a command issued right away waits for the server with a progress line, then runs
        locked = run_baton("route", "lock", "api", cwd=project, env=env, timeout=240)
        assert locked.code == 0, locked.stderr
        after = ok(run_baton("server", "status", "--json", env=env)).json()
        assert after["running"] and after["api_url"] == before["api_url"] and after["pid"] != before["pid"]
        assert len(_servers_of(own_home["BATON_HOME"])) == 1  # one server for the user, no duplicate
        runs = ok(run_baton("history", "--json", cwd=project, env=env)).json()["runs"]
        assert "route-lock-api" in [r["name"] for r in runs]
        wait_for(lambda: run_baton("status", "--check", cwd=project, env=env).code == 0, 60, "a clean status --check")
    finally:
        run_baton("down", "--all", cwd=project, env=env, timeout=120)
    assert not processes_under(project)


def test_a_killed_adapter_host_is_restarted_with_its_backend_and_routing(tmp_path: Path, cpu_burners: None) -> None:
    project = _project(tmp_path, "host-kill", 8932)
    try:
        ok(run_baton("up", "--mock", cwd=project, env=WATCHED, timeout=120))
        ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=project, env=WATCHED))
        ok(run_baton("route", "lock", "api", cwd=project, env=WATCHED))
        service_pid = _state(project)["adapters"]["api"]["service"]["process"]["pid"]
        host = next(iter(_state(project)["hosts"].values()))
        with Load("http://127.0.0.1:8932/") as load:
            load.flowing()
            os.killpg(host["process"]["pgid"], signal.SIGKILL)
            restarted = wait_for(lambda: (lambda h: h if h["process"]["pid"] != host["process"]["pid"] else None)(
                next(iter(_state(project)["hosts"].values()))), 60, "the custodian to restart the adapter host")
            before = load.statuses["200"]
            wait_for(lambda: load.statuses["200"] > before + 50, 60, "the node to answer again, without a person")
        assert _alive(restarted["process"]["pid"]) and not _alive(host["process"]["pid"])
        assert _state(project)["adapters"]["api"]["service"]["process"]["pid"] == service_pid  # same backend
        routing = ok(run_baton("route", "show", "api", "--json", cwd=project)).json()
        assert routing["locked"] is True  # routing restored from state
        runs = ok(run_baton("history", "--json", cwd=project)).json()["runs"]
        heal = [r for r in runs if r["name"] == f"heal-adapter-{host['host_id']}"]
        assert heal and heal[0]["state"] == "Completed" and heal[0]["actor"] == "custodian"
        events = [json.loads(line) for line in (project / ".baton" / "events.jsonl").read_text().splitlines()]
        assert any(e.get("node_name") == f"adapter:{host['host_id']}" and e["status"] == "restarting" for e in events)
        wait_for(lambda: run_baton("status", "--check", cwd=project).code == 0, 60, "a clean status --check")
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
    assert not processes_under(project)


def test_one_conductor_per_project_and_a_dead_one_comes_back(tmp_path: Path) -> None:
    project = _project(tmp_path, "one-conductor", 8933)
    try:
        ok(run_baton("up", "--mock", cwd=project, env=WATCHED))
        first = json.loads((project / ".baton" / "conductor.json").read_text())["process"]["pid"]
        second = run_baton("serve", cwd=project, env=WATCHED, timeout=60)
        assert second.code == 2 and f"pid {first}" in second.stderr
        assert json.loads((project / ".baton" / "conductor.json").read_text())["process"]["pid"] == first
        assert _status(project)["conductor"] == {"running": True, "pid": first, "custodian": "running"}

        os.kill(first, signal.SIGKILL)
        check = run_baton("status", "--check", cwd=project)  # tells the truth, and starts it in the background
        assert check.code == 1 and "the conductor is not running" in check.stderr
        revived = wait_for(lambda: _status(project)["conductor"]["pid"], 60, "status to start the conductor again")
        assert revived != first

        os.kill(revived, signal.SIGKILL)
        ok(run_baton("route", "lock", "api", cwd=project))  # a command that needs it starts it again
        third = _status(project)["conductor"]["pid"]
        assert third not in (first, revived) and _alive(third)

        began = time.monotonic()
        os.kill(third, signal.SIGTERM)
        wait_for(lambda: not _alive(third), 30, "the conductor to stop on SIGTERM")
        print(f"conductor stopped {time.monotonic() - began:.2f} s after SIGTERM")
        assert not (project / ".baton" / "conductor.json").exists()
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
    assert not processes_under(project)


def test_a_deleted_project_stops_everything_it_ran(tmp_path: Path) -> None:
    project = _project(tmp_path, "doomed", 8934)
    ok(run_baton("up", "--mock", cwd=project, env=WATCHED))
    ok(run_baton("slot", "api", f"{SERVICE} v1", cwd=project, env=WATCHED))
    running = processes_under(project)
    assert len(running) >= 3  # conductor, adapter host, log pump (and the service)
    shutil.rmtree(project)
    wait_for(lambda: not processes_under(project), 45, "every process of the deleted project to stop itself")

    # a new project on the same ports boots with adapters of its own
    fresh = _project(tmp_path, "doomed", 8934)
    try:
        up = ok(run_baton("up", "--mock", "--json", cwd=fresh)).json()
        assert up["ready"] == ["api"]
        status = ok(run_baton("status", "--json", cwd=fresh)).json()
        assert status["nodes"][0]["health"] == "healthy"
    finally:
        run_baton("down", "--all", cwd=fresh, timeout=120)
    assert not processes_under(fresh)


def test_up_names_what_holds_a_port_and_never_claims_it_answers(tmp_path: Path) -> None:
    holder = _project(tmp_path, "holder", 8935)
    other = _project(tmp_path, "other", 8935)
    try:
        ok(run_baton("up", "--mock", cwd=holder))
        refused = run_baton("up", "--mock", cwd=other)
        assert refused.code == 1
        assert "port 8935 is held by pid" in refused.stderr and str(holder) in refused.stderr
        assert "is up" not in refused.stdout
    finally:
        run_baton("down", "--all", cwd=holder, timeout=120)
        run_baton("down", "--all", cwd=other, timeout=120)
    assert not processes_under(holder) and not processes_under(other)


def test_three_projects_share_one_server_with_history_kept_apart(tmp_path: Path, own_home: dict[str, str]) -> None:
    env = own_home
    projects = [_project(tmp_path, f"p{i}", 8940 + i, env) for i in range(3)]  # all three named "drill"
    try:
        for project in projects:
            ok(run_baton("up", "--mock", cwd=project, env=env, timeout=240))
        ok(run_baton("route", "lock", "api", cwd=projects[0], env=env))
        assert len(_servers_of(own_home["BATON_HOME"])) == 1
        for project in projects:
            runs = ok(run_baton("history", "--json", cwd=project, env=env)).json()["runs"]
            names = sorted(r["name"] for r in runs)
            assert names == (["route-lock-api", "up-drill"] if project == projects[0] else ["up-drill"]), names
        ui = ok(run_baton("ui", "--json", cwd=projects[1], env=env)).json()
        assert ui["tag"].startswith("project:") and ui["runs_url"].startswith(ui["ui_url"])
    finally:
        for project in projects:
            run_baton("down", "--all", cwd=project, env=env, timeout=120)
    assert all(not processes_under(p) for p in projects)


def test_down_on_a_down_project_starts_nothing(tmp_path: Path, own_home: dict[str, str]) -> None:
    project = _project(tmp_path, "quiet", 8936, own_home)
    result = ok(run_baton("down", "--all", cwd=project, env=own_home))
    assert "already down" in result.stdout and "Error" not in result.stdout + result.stderr
    assert not (Path(own_home["BATON_HOME"]) / "prefect" / "server.json").exists()
    assert not _servers_of(own_home["BATON_HOME"])


def _prefect_loaded(project: Path) -> bool:
    """What the conductor says of itself: whether Prefect is imported in it."""
    import urllib.request

    found = json.loads((project / ".baton" / "conductor.json").read_text())
    request = urllib.request.Request(f"http://{found['host']}:{found['port']}/health",
                                     headers={"Authorization": f"Bearer {found['token']}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["prefect_loaded"]
    except OSError:  # caught mid-exec: ask again
        return True


def _rss_kb(pid: int) -> int:
    return int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS")).split()[1])


def test_an_idle_conductor_sheds_prefect_keeping_pid_lock_socket_and_token(tmp_path: Path) -> None:
    env = {**WATCHED, "BATON_CONDUCTOR_SHED_S": "3"}
    project = _project(tmp_path, "shed", 8937)
    try:
        ok(run_baton("up", "--mock", cwd=project, env=env))
        before = json.loads((project / ".baton" / "conductor.json").read_text())
        pid = before["process"]["pid"]
        assert _prefect_loaded(project)  # it ran `up`
        warm = _rss_kb(pid)
        wait_for(lambda: not _prefect_loaded(project), 60, "the idle conductor to shed Prefect")
        assert _alive(pid) and _rss_kb(pid) < warm
        print(f"conductor RSS {warm // 1024} MB warm, {_rss_kb(pid) // 1024} MB after shedding")
        after = json.loads((project / ".baton" / "conductor.json").read_text())
        assert (after["port"], after["token"], after["process"]["pid"]) == (before["port"], before["token"], pid)
        assert run_baton("serve", cwd=project, env=env).code == 2  # the lock went with it
        ok(run_baton("route", "lock", "api", cwd=project, env=env))  # and it runs flows again
        assert _status(project)["conductor"] == {"running": True, "pid": pid, "custodian": "running"}
        assert ok(run_baton("route", "show", "api", "--json", cwd=project)).json()["locked"] is True
    finally:
        run_baton("down", "--all", cwd=project, timeout=120)
    assert not processes_under(project)
