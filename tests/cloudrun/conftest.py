"""Cloud Run layer: the real ``google-cloud-run`` client (REST) against the Admin API v2 stand-in under
``tests/cloudrun_standin``, whose revisions run as containers on the local engine from images pushed to a
local registry (Docker Distribution, Debian's ``docker-registry``) on a loopback port.

Without an engine these tests skip with the reason (BATON_REQUIRE_DOCKER=1 makes that a failure)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
pytestmark = pytest.mark.cloudrun


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout_s} s") from None
            time.sleep(0.1)  # readiness poll of a process we started


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable engine here
        if os.environ.get("BATON_REQUIRE_DOCKER"):
            pytest.fail(f"BATON_REQUIRE_DOCKER is set but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine answers ({exc}); .ci/run installs and starts one")
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, docker_client) -> str:
    """A Docker Distribution registry on a loopback port (filesystem storage, no auth); HOST:PORT."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        pytest.skip("no docker-registry binary; apt-get install docker-registry")
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(textwrap.dedent(f"""\
        version: 0.1
        log: {{level: error}}
        storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}
        http: {{addr: 127.0.0.1:{port}}}
        """))
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(root / "registry.log", "wb"), start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/v2/", 20, proc)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


class Standin:
    def __init__(self, port: int, instance: str) -> None:
        self.port, self.instance = port, instance
        self.endpoint = f"http://127.0.0.1:{port}"

    def fault(self, code: int, message: str, method: str = "*", times: int = 1) -> None:
        import urllib.request

        body = json.dumps({"code": code, "message": message, "method": method, "times": times}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/standin/faults", data=body,
                                                      headers={"Content-Type": "application/json"})).close()

    def clear_faults(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/standin/faults", method="DELETE")).close()

    def calls(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/standin/calls") as resp:
            return json.load(resp)


@pytest.fixture(scope="session")
def standin(docker_client, tmp_path_factory: pytest.TempPathFactory):
    """The Admin API stand-in as a process of its own; at the end, no container or network of it is left."""
    log = tmp_path_factory.mktemp("standin") / "standin.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "cloudrun_standin", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=open(log, "wb"), env=env, cwd=str(TESTS), start_new_session=True)
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        pytest.fail(f"the stand-in did not start: {log.read_text()[-2000:]}")
    ready = json.loads(line)
    try:
        yield Standin(ready["port"], ready["instance"])
    finally:
        _stop(proc)
        left = docker_client.containers.list(all=True, filters={"label": f"cloudrun-standin={ready['instance']}"})
        assert not left, f"the stand-in left containers behind: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def adapter_image(docker_client) -> str:
    from baton.images.adapter import build_adapter_image

    return build_adapter_image(docker_client, offline=True).digest_tag


def _service_image(client, tag: str, version: str) -> str:
    """The shop's users service on the offline base (listening where BATON_SERVICE_PORT says)."""
    from baton.images.engine import build_image
    from baton.images.offline import ensure_offline_base

    base = ensure_offline_base(client)
    with tempfile.TemporaryDirectory(prefix="baton-crtest-") as tmp:
        context = Path(tmp)
        shutil.copy2(REPO / "examples" / "shop" / "services" / "users.py", context / "users.py")
        (context / "Dockerfile").write_text(f"FROM {base}\nCOPY users.py /app/users.py\n"
                                            f"ENV USERS_VERSION={version}\nCMD [\"python3\", \"/app/users.py\"]\n")
        build_image(client, context, tag, what=f"the test image {tag}")
    return tag


@pytest.fixture(scope="session")
def users_images(docker_client) -> list[str]:
    """Three versions of the users service (v1 deployed, v2 the canary, v3 the swap)."""
    return [_service_image(docker_client, f"baton-crtest-users:v{v}", str(v)) for v in (1, 2, 3)]


@pytest.fixture
def cloud_env(standin, monkeypatch):
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("BATON_CLOUDRUN_ENDPOINT", standin.endpoint)
    monkeypatch.setenv("BATON_CLOUDRUN_ANONYMOUS", "1")
    monkeypatch.setenv("BATON_CLOUDRUN_POLL_S", "0.1")
    yield standin
    standin.clear_faults()


@pytest.fixture
def shop(tmp_path, registry):
    """Make a copy of examples/shop with a deploy section for the stand-in (extra ``deploy`` fields given)."""
    return lambda **deploy: shop_project(tmp_path, registry, **deploy)


def shop_project(tmp: Path, registry: str, **deploy: object) -> Path:
    import yaml

    root = tmp / "shop"
    shutil.copytree(REPO / "examples" / "shop", root)
    document = yaml.safe_load((root / "baton.yaml").read_text())
    document["deploy"] = {"provider": "cloudrun", "project": "baton-test", "region": "europe-west1",
                          "registry": registry, "max_instances": 2, **deploy}
    (root / "baton.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return root
