"""The Docker provider as a user meets it: `baton deploy --provider docker` of a circuit, requests
through the ingress container, a service image slotted and swapped under load, teardown that
leaves no container or network of the circuit behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_cli import get_json, ok, run_baton, wire_quickstart
from load import Load

pytestmark = pytest.mark.docker

SERVICE = Path(__file__).resolve().parent / "services" / "pyservice"


@pytest.fixture
def docker_circuit(docker_client, adapter_image, prefect_api, tmp_path: Path):
    project = tmp_path / "dock"
    ok(run_baton("init", str(project)))
    try:
        wire_quickstart(project)
        ok(run_baton("deploy", "--provider", "docker", cwd=project, timeout=300))
        yield project
    finally:
        run_baton("teardown", cwd=project, timeout=300)
        run_baton("down", "--all", cwd=project, timeout=120)


def nodes(project: Path) -> dict[str, dict]:
    return {n["name"]: n for n in ok(run_baton("status", "--json", cwd=project)).json()["nodes"]}


def test_deploy_slot_swap_and_teardown_on_docker(docker_client, docker_circuit: Path) -> None:
    project = docker_circuit
    status = nodes(project)
    assert {n["state"] for n in status.values()} == {"mock"} and {n["health"] for n in status.values()} == {"healthy"}
    gateway, api = status["gateway"]["port"], status["api"]["port"]
    assert get_json(f"http://127.0.0.1:{gateway}/") == {"status": "mock", "node": "gateway"}
    containers = docker_client.containers.list(filters={"label": "baton.circuit=dock"})
    assert sorted(c.labels["baton.node"] for c in containers) == ["api", "gateway", "stripe"]
    assert all(c.labels["baton.role"] == "adapter" for c in containers)

    built = ok(run_baton("image", "build", "--node", "api", "--path", str(SERVICE), "--offline", "--json",
                         cwd=project, timeout=600)).json()["images"][0]
    ok(run_baton("slot", "api", built["tag"], cwd=project, timeout=120))
    assert get_json(f"http://127.0.0.1:{api}/x")["version"] == "img-v1"
    service = docker_client.containers.list(filters={"label": ["baton.circuit=dock", "baton.role=service"]})
    env = dict(item.split("=", 1) for item in service[0].attrs["Config"]["Env"])
    assert env["BATON_STRIPE_URL"] == f"http://stripe:{status['stripe']['port']}"  # container DNS, not loopback

    with Load(f"http://127.0.0.1:{api}/") as load:
        load.flowing()
        ok(run_baton("swap", "api", built["tag"], cwd=project, timeout=120))
        load.flowing()
    assert load.total / load.elapsed >= 200, f"load too slow to prove anything: {load.total / load.elapsed:.0f} req/s"
    assert dict(load.statuses) == {"200": load.total}, load.statuses

    runs = [r["name"] for r in ok(run_baton("history", "--json", cwd=project)).json()["runs"]]
    assert {"deploy-dock-docker", "image-build-api", "slot-api", "swap-api"} <= set(runs)
    report = ok(run_baton("deploy-status", "--json", cwd=project)).json()
    assert report["provider"] == "docker" and report["nodes"]["api"]["state"] == "live"

    ok(run_baton("teardown", cwd=project, timeout=300))
    assert docker_client.containers.list(all=True, filters={"label": "baton.circuit=dock"}) == []
    assert docker_client.networks.list(filters={"label": "baton.circuit=dock"}) == []


def test_deploy_build_builds_and_slots_registered_services(docker_client, adapter_image, prefect_api,
                                                           tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "built"
    ok(run_baton("init", str(project)))
    service = project / "services" / "api"
    shutil.copytree(SERVICE, service)
    (service / "baton-service.yaml").write_text("name: api\nversion: 1.0.0\n")
    try:
        ok(run_baton("service", "register", "services/api", cwd=project))
        ok(run_baton("service", "derive", "--save", cwd=project))
        result = ok(run_baton("deploy", "--provider", "docker", "--build", "--offline", "--json", cwd=project,
                              timeout=900)).json()
        assert [i["node_name"] for i in result["images"]] == ["api"]
        assert [s["node"] for s in result["slotted"]] == ["api"]
        port = nodes(project)["api"]["port"]
        assert get_json(f"http://127.0.0.1:{port}/")["version"] == "img-v1"
    finally:
        run_baton("teardown", cwd=project, timeout=300)
        run_baton("down", "--all", cwd=project, timeout=120)
    assert docker_client.containers.list(all=True, filters={"label": "baton.circuit=built"}) == []


def test_a_tls_circuit_on_docker_serves_the_circuit_ca_from_every_container(docker_client, adapter_image,
                                                                            prefect_api, tmp_path: Path) -> None:
    import subprocess

    project = tmp_path / "tlsdock"
    ok(run_baton("init", str(project)))
    try:
        wire_quickstart(project)
        with (project / "baton.yaml").open("a") as handle:
            handle.write("security:\n  tls:\n    mode: circuit\n")
        ok(run_baton("deploy", "--provider", "docker", cwd=project, timeout=300))
        ca = project / ".baton" / "tls" / "ca-bundle.pem"
        report = ok(run_baton("certs", "status", "--json", cwd=project)).json()
        served = {c["node"]: c for c in report["certificates"] if c["role"] == "node"}
        for name, node in nodes(project).items():
            port = node["port"]
            answer = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(ca), "--resolve",
                                     f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/", "-o", "/dev/null",
                                     "-w", "%{http_code}"], capture_output=True, text=True, timeout=30)
            assert answer.returncode == 0 and answer.stdout == "200", (name, answer.stderr)
            assert served[name]["served_by"] == [name]
            container = docker_client.containers.list(filters={"label": [f"baton.circuit=tlsdock",
                                                                         f"baton.node={name}"]})[0]
            assert container.name in served[name]["sans"]  # reachable by its container name too
            mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
            assert mounts["/etc/baton/tls/key.pem"]["RW"] is False and mounts["/etc/baton/tls/cert.pem"]["RW"] is False
        rotated = ok(run_baton("certs", "rotate", "--json", cwd=project, timeout=120)).json()
        assert sorted(rotated["verified"]) == ["api", "gateway", "stripe"]
    finally:
        run_baton("teardown", cwd=project, timeout=300)
        run_baton("down", "--all", cwd=project, timeout=120)
