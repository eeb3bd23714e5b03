"""The prebuilt adapter image on a real engine: it builds, runs as non-root under tini,
reports healthy, serves a mocked node on a loopback-published port, keeps its management
API behind the token, and stops promptly on SIGTERM."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _wait(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def mocked_node(docker_client, adapter_image, tmp_path: Path):
    config = tmp_path / "adapter.json"
    config.write_text(json.dumps({"node": {
        "name": "api", "host": "0.0.0.0", "port": 8080, "management_port": 18080,
        "backend": {"mock": True}, "token_env": "BATON_TOKEN",
    }}))
    config.chmod(0o644)
    container = docker_client.containers.run(
        adapter_image.digest_tag,
        detach=True,
        name=f"baton-test-{uuid.uuid4().hex[:8]}",
        environment={"BATON_TOKEN": "s3cret"},
        volumes={str(config): {"bind": "/etc/baton/adapter.json", "mode": "ro"}},
        ports={"8080/tcp": ("127.0.0.1", None), "18080/tcp": ("127.0.0.1", None)},
        labels={"baton.test": "adapter-image"},
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def test_the_image_is_tagged_with_version_and_content_digest(adapter_image, docker_client) -> None:
    image = docker_client.images.get(adapter_image.digest_tag)
    assert adapter_image.tag in image.tags and adapter_image.digest_tag in image.tags
    config = image.attrs["Config"]
    assert config["User"] == "10001"
    assert config["Entrypoint"][:2] == ["tini", "--"]
    assert "python3" in " ".join(config["Healthcheck"]["Test"])


def test_a_mocked_node_answers_and_is_healthy(mocked_node) -> None:
    _wait(lambda: _health(mocked_node) == "healthy", what="the container's HEALTHCHECK to pass")
    ports = mocked_node.attrs["NetworkSettings"]["Ports"]
    traffic = int(ports["8080/tcp"][0]["HostPort"])
    management = int(ports["18080/tcp"][0]["HostPort"])
    assert ports["8080/tcp"][0]["HostIp"] == "127.0.0.1"
    assert _get(f"http://127.0.0.1:{traffic}/") == (200, {"status": "mock", "node": "api"})
    assert _get(f"http://127.0.0.1:{management}/status")[0] == 401
    code, status = _get(f"http://127.0.0.1:{management}/status", token="s3cret")
    assert code == 200 and status["node"] == "api" and status["listening"] is True
    assert mocked_node.exec_run("id -u").output.decode().strip() == "10001"


def test_sigterm_reaches_the_adapter_through_tini(mocked_node) -> None:
    _wait(lambda: _health(mocked_node) == "healthy", what="the adapter to be up")
    started = time.monotonic()
    mocked_node.stop(timeout=20)
    elapsed = time.monotonic() - started
    mocked_node.reload()
    assert mocked_node.attrs["State"]["ExitCode"] == 0, "the adapter did not exit cleanly on SIGTERM"
    assert elapsed < 20, "docker had to kill the container: SIGTERM never reached the adapter"


def _health(container) -> str:
    container.reload()
    return container.attrs["State"].get("Health", {}).get("Status", "")


def test_baton_image_adapter_is_a_flow_in_history(adapter_image, prefect_api, project_dir: Path) -> None:
    from baton_cli import run_baton

    result = run_baton("image", "adapter", "--offline", "--json", cwd=project_dir, timeout=600)
    assert result.code == 0, result.stderr
    built = result.json()
    assert built["digest_tag"] == adapter_image.digest_tag and built["size_mb"] > 0
    runs = run_baton("history", "--json", cwd=project_dir).json()["runs"]
    assert runs[0]["name"] == "image-adapter-proj" and runs[0]["state"] == "Completed"
    run_baton("down", "--all", cwd=project_dir)
