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


def _compose() -> bool:
    """Whether pytest-docker and docker-compose are here (else the fixtures run the two as processes)."""
    try:
        import pytest_docker  # noqa: F401
    except ImportError:
        return False
    return shutil.which("docker-compose") is not None and not os.environ.get("BATON_CLOUDRUN_NO_COMPOSE")


def _fixture_images(client) -> tuple[str, str]:
    """The registry (Debian's docker-registry binary) and the stand-in (its package and host-built wheels of
    aiohttp, docker and google-cloud-run) on the offline base; cached by content."""
    import hashlib

    from baton.images.engine import build_image
    from baton.images.offline import cache_dir, ensure_offline_base

    base = ensure_offline_base(client)
    binary = Path(shutil.which("docker-registry") or "/usr/bin/docker-registry")
    wheels = cache_dir() / "wheels" / "cloudrun-standin"
    if not (wheels / ".complete").exists():
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "-w",
                        str(wheels), "aiohttp", "docker", "google-cloud-run"], check=True, capture_output=True)
        (wheels / ".complete").write_text("ok\n")
    source = TESTS / "cloudrun_standin"
    digest = hashlib.sha256(base.encode())
    for path in sorted(source.glob("*.py")):
        digest.update(path.read_bytes())
    registry_tag = f"baton-crtest-registry:{hashlib.sha256(binary.read_bytes()).hexdigest()[:12]}"
    standin_tag = f"baton-crtest-standin:{digest.hexdigest()[:12]}"
    import docker.errors

    for tag, fill, dockerfile in (
        (registry_tag, lambda ctx: (shutil.copy2(binary, ctx / "registry"),
                                    shutil.copy2(HERE / "compose" / "registry.yml", ctx / "registry.yml")),
         f"FROM {base}\nCOPY registry /usr/local/bin/registry\nCOPY registry.yml /etc/registry.yml\n"
         "ENTRYPOINT [\"/usr/local/bin/registry\", \"serve\", \"/etc/registry.yml\"]\n"),
        (standin_tag, lambda ctx: (shutil.copytree(wheels, ctx / "wheels"),
                                   shutil.copytree(source, ctx / "cloudrun_standin",
                                                   ignore=shutil.ignore_patterns("__pycache__"))),
         f"FROM {base}\nCOPY wheels /wheels\nRUN python3 -m venv /opt/standin && /opt/standin/bin/pip install "
         "--no-index --find-links /wheels aiohttp docker google-cloud-run && rm -rf /wheels\n"
         "COPY cloudrun_standin /app/cloudrun_standin\nWORKDIR /app\nENV NO_GCE_CHECK=true\n"
         "ENTRYPOINT [\"/opt/standin/bin/python\", \"-m\", \"cloudrun_standin\"]\n"),
    ):
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            with tempfile.TemporaryDirectory(prefix="baton-crtest-") as tmp:
                fill(Path(tmp))
                (Path(tmp) / "Dockerfile").write_text(dockerfile)
                build_image(client, Path(tmp), tag, what=tag)
    return registry_tag, standin_tag


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return "docker-compose"  # Debian's v1; there is no `docker compose` plugin here (see ENVIRONMENT.md)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"batoncrtest{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up -d"]


@pytest.fixture(scope="session")
def docker_compose_file(docker_client) -> str:
    """The compose file, with the ports, images and label it substitutes set in the environment."""
    import secrets

    registry_image, standin_image = _fixture_images(docker_client)
    os.environ.update(CRTEST_REGISTRY_IMAGE=registry_image, CRTEST_STANDIN_IMAGE=standin_image,
                      CRTEST_REGISTRY_PORT=str(_free_port()), CRTEST_STANDIN_PORT=str(_free_port()),
                      CRTEST_STANDIN_INSTANCE=secrets.token_hex(4))
    return str(HERE / "compose" / "docker-compose.yml")


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=1).close()
        return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def fixture_services(request, docker_client):
    """(registry HOST:PORT, stand-in port, stand-in instance): by pytest-docker when it can, else processes."""
    if _compose():
        services = request.getfixturevalue("docker_services")
        registry = f"127.0.0.1:{os.environ['CRTEST_REGISTRY_PORT']}"
        port, instance = int(os.environ["CRTEST_STANDIN_PORT"]), os.environ["CRTEST_STANDIN_INSTANCE"]
        services.wait_until_responsive(lambda: _answers(f"http://{registry}/v2/"), timeout=30, pause=0.1)
        services.wait_until_responsive(lambda: _answers(f"http://127.0.0.1:{port}/standin/calls"), timeout=60,
                                       pause=0.1)
        yield registry, port, instance
        return  # pytest-docker's `down` stops the stand-in, which removes its containers
    registry = request.getfixturevalue("registry_process")
    port, instance = request.getfixturevalue("standin_process")
    yield registry, port, instance


@pytest.fixture(scope="session")
def registry(fixture_services, docker_client) -> str:
    """The session's registry, HOST:PORT; the tags pushed there are untagged locally at the end."""
    yield fixture_services[0]
    for image in docker_client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{fixture_services[0]}/"):
                docker_client.images.remove(tag, noprune=True)


@pytest.fixture(scope="session")
def registry_process(tmp_path_factory: pytest.TempPathFactory, docker_client) -> str:
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
def standin(fixture_services, docker_client):
    """The Admin API stand-in; at the end of the session no container or network of it is left."""
    _, port, instance = fixture_services
    yield Standin(port, instance)
    left = docker_client.containers.list(all=True, filters={"label": f"cloudrun-standin={instance}"})
    assert not left, f"deleted services left containers behind: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def standin_process(docker_client, tmp_path_factory: pytest.TempPathFactory):
    """The stand-in as a process of its own (when pytest-docker or docker-compose is missing)."""
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
        yield ready["port"], ready["instance"]
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
        shutil.copy2(REPO / "examples" / "shop" / "services" / "users" / "app.py", context / "users.py")
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
