"""The custodian on the Docker provider: a service container killed with `docker kill` is replaced by a new
container, the node answers again, and the repair is in history."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_cli import get_json, ok, run_baton, wait_for, wire_quickstart

pytestmark = pytest.mark.docker

SERVICE = Path(__file__).resolve().parent / "services" / "pyservice"
FAST = {"BATON_NO_CUSTODIAN": "0", "BATON_PROBE_INTERVAL_S": "1"}


def _custodian(project: Path) -> dict:
    nodes = {n["name"]: n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"]}
    return nodes["api"]


def test_a_killed_service_container_is_replaced(docker_client, adapter_image, prefect_api, tmp_path: Path) -> None:
    project = tmp_path / "healdock"
    ok(run_baton("init", str(project)))
    try:
        wire_quickstart(project)
        ok(run_baton("deploy", "--provider", "docker", cwd=project, timeout=300, env=FAST))
        ok(run_baton("watch", "--once", cwd=project, env=FAST))  # the conductor, where the custodian lives
        built = ok(run_baton("image", "build", "--node", "api", "--path", str(SERVICE), "--offline", "--json",
                             cwd=project, timeout=600, env=FAST)).json()["images"][0]
        ok(run_baton("slot", "api", built["tag"], cwd=project, timeout=120, env=FAST))
        port = _custodian(project)["port"]
        wait_for(lambda: (_custodian(project)["custodian"] or {}).get("status") == "healthy", 60, "a healthy verdict")
        first = docker_client.containers.list(filters={"label": ["baton.circuit=healdock", "baton.role=service"]})
        assert len(first) == 1
        first[0].kill()

        def replaced():
            running = docker_client.containers.list(filters={"label": ["baton.circuit=healdock",
                                                                        "baton.role=service"]})
            return running if running and running[0].id != first[0].id else None

        wait_for(replaced, 90, "a new service container")
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/x"), 60, "the node to answer again")
        assert get_json(f"http://127.0.0.1:{port}/x")["version"] == "img-v1"
        # the node answers once the routing is switched; the heal run records its end a moment later
        heal = wait_for(lambda: [r for r in ok(run_baton("history", "--node", "api", "--json", cwd=project)).json()[
            "runs"] if r["name"] == "heal-restart-api" and r["state"] not in ("Running", "Pending")], 60,
            "the heal run to end")
        assert heal[0]["state"] == "Completed" and heal[0]["actor"] == "custodian", heal
    finally:
        run_baton("teardown", cwd=project, timeout=300)
        run_baton("down", "--all", cwd=project, timeout=120)
    assert docker_client.containers.list(all=True, filters={"label": "baton.circuit=healdock"}) == []


def _answers(url: str) -> bool:
    try:
        return get_json(url, timeout=2).get("version") == "img-v1"
    except OSError:
        return False
