"""Service images on a real engine: detected, rendered, built offline, run, listed, pushed to a
real registry (Debian's docker-registry, started by the test on loopback), and failures reported."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from baton_cli import run_baton

pytestmark = pytest.mark.docker

SERVICE = Path(__file__).resolve().parent / "services" / "pyservice"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def answer_of(docker_client, tag: str, path: str) -> tuple[dict, object]:
    """Run ``tag`` published on loopback and return its first JSON answer to ``path`` (and the container)."""
    container = docker_client.containers.run(tag, detach=True, name=f"baton-test-{uuid.uuid4().hex[:8]}",
                                             ports={"8080/tcp": ("127.0.0.1", None)}, labels={"baton.test": "svc"})
    deadline = time.monotonic() + 30
    while True:
        container.reload()
        ports = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp")
        try:
            return _get(f"http://127.0.0.1:{ports[0]['HostPort']}{path}"), container
        except (OSError, TypeError):
            if time.monotonic() > deadline:
                container.remove(force=True)
                raise AssertionError(container.logs().decode()[-500:]) from None
            time.sleep(0.2)


@pytest.fixture
def registry(tmp_path: Path):
    binary = shutil.which("docker-registry")
    if binary is None:
        import os

        if os.environ.get("BATON_REQUIRE_DOCKER"):
            pytest.fail("docker-registry is not installed; .ci/run installs it")
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the registry did not answer"
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def service_project(project_dir: Path, prefect_api: str):
    assert run_baton("node", "add", "api", cwd=project_dir).code == 0
    yield project_dir
    run_baton("down", "--all", cwd=project_dir)


def test_build_run_list_and_push_a_python_service(docker_client, adapter_image, service_project: Path,
                                                   registry: str) -> None:
    built = run_baton("image", "build", "--node", "api", "--path", str(SERVICE), "--offline", "--json",
                      cwd=service_project, timeout=600)
    assert built.code == 0, built.stderr
    image = built.json()["images"][0]
    assert image["runtime"] == "python" and image["reason"] == "app.py" and image["tag"].startswith("baton-proj-api:")

    answer, container = answer_of(docker_client, image["tag"], "/x")
    try:
        assert answer["version"] == "img-v1" and answer["six"]
        assert container.exec_run("id -u").output.decode().strip() == "10001"
    finally:
        container.remove(force=True)

    listed = run_baton("image", "list", "--json", cwd=service_project).json()["images"]
    assert [i["tag"] for i in listed] == [image["tag"]]

    pushed = run_baton("image", "push", "--node", "api", "--registry", registry, "--tag", "v1", "--json",
                       cwd=service_project, timeout=300)
    assert pushed.code == 0, pushed.stderr
    assert pushed.json()["pushed"][0]["pushed"] == f"{registry}/baton-proj-api:v1"
    tags = _get(f"http://{registry}/v2/baton-proj-api/tags/list")
    assert "v1" in tags["tags"]


def test_a_failing_build_fails_loudly_with_the_log_tail(docker_client, adapter_image, service_project: Path,
                                                         tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Dockerfile").write_text("FROM baton/debian-python:bookworm\nRUN echo about-to-fail && false\n")
    result = run_baton("image", "build", "--node", "api", "--path", str(broken), cwd=service_project, timeout=300)
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "the image build of api failed" in result.stderr and "about-to-fail" in result.stderr


def test_nothing_to_build_is_a_usage_error(service_project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_baton("image", "build", "--node", "api", "--path", str(empty), cwd=service_project)
    assert result.code == 2 and "cannot tell how to start the service" in result.stderr


def test_a_node_service_builds_and_answers(docker_client, service_project: Path) -> None:
    source = Path(__file__).resolve().parent / "services" / "nodeservice"
    built = run_baton("image", "build", "--node", "api", "--path", str(source), "--offline", "--json",
                      cwd=service_project, timeout=900)
    assert built.code == 0, built.stderr
    image = built.json()["images"][0]
    assert image["runtime"] == "node" and image["reason"] == "server.js"
    answer, container = answer_of(docker_client, image["tag"], "/n")
    try:
        assert answer["version"] == "node-v1" and answer["runtime"].startswith("v")
    finally:
        container.remove(force=True)
