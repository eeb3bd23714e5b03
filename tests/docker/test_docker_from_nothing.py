"""The Docker path as a new user meets it (issue 15): from no images at all, `deploy --provider docker --build`
of the shop example builds the base, the adapter image and the users service's image, serves through its
ingress, and `teardown` leaves no container, network or volume. The images it builds carry this test's own
names (``BATON_ADAPTER_IMAGE``, ``BATON_BASE_PREFIX``, its own circuit name), so removing them touches nothing
another test relies on. Also: a service bound to loopback inside its container is told so at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from baton_cli import get_json, ok, run_baton
from shop import copy_shop
from test_service_images import registry  # noqa: F401 - the loopback registry fixture

pytestmark = pytest.mark.docker

FRESH = "batoni15fresh"
ENV = {"BATON_ADAPTER_IMAGE": f"{FRESH}-adapter:latest", "BATON_BASE_PREFIX": FRESH,
       "BATON_ADAPTER_REGISTRY": "127.0.0.1:9"}  # a registry that does not answer: nothing can be pulled


def _fresh_images(client) -> list:
    return [i for i in client.images.list() if any(FRESH in t for t in i.tags)]


def _remove_images(client, marker: str) -> None:
    """Remove the images tagged with ``marker`` and the untagged ones built on them (a multi-stage build's
    first stage), children first; an image tagged otherwise is never touched."""
    images = client.images.list(all=True)
    ours = {i.id for i in images if any(marker in t for t in i.tags)}
    children: dict[str, list] = {}
    for image in images:
        children.setdefault(image.attrs.get("Parent") or "", []).append(image)

    def remove(image_id: str) -> None:
        for child in children.get(image_id, []):
            if not child.tags or any(marker in t for t in child.tags):
                remove(child.id)
        try:
            client.images.remove(image_id, force=True)
        except Exception:  # noqa: BLE001 - gone already, or still used by something not ours: leave it
            pass

    for image_id in ours:
        remove(image_id)


def _remove_fresh_images(client) -> None:
    _remove_images(client, FRESH)


def test_deploy_build_from_no_images_serves_and_teardown_leaves_nothing(docker_client, prefect_api,
                                                                         tmp_path: Path) -> None:
    from providers.docker import project_label

    _remove_fresh_images(docker_client)
    assert _fresh_images(docker_client) == []
    project = tmp_path / "shop"
    ports = copy_shop(project, name=FRESH)
    label = f"baton.project={project_label(project)}"
    try:
        ok(run_baton("service", "register", "services/users", cwd=project, env=ENV))
        started = time.monotonic()
        deployed = run_baton("deploy", "--provider", "docker", "--build", cwd=project, env=ENV, timeout=1200)
        seconds = time.monotonic() - started
        assert deployed.code == 0, deployed.stderr[-3000:]
        print(f"deploy --build from no images: {seconds:.1f} s")
        assert f"built the adapter image {FRESH}-adapter:latest" in deployed.stdout
        assert f"built baton-{FRESH}-users:" in deployed.stdout and "slotted" in deployed.stdout
        # the long steps said where they were, with their elapsed time
        assert "ensure-adapter-image: [" in deployed.stderr and "debootstrap" in deployed.stderr
        assert get_json(f"http://127.0.0.1:{ports[8001]}/") is not None  # through the ingress
        assert get_json(f"http://127.0.0.1:{ports[8003]}/users/42")["name"] == "Ada Lovelace"

        again = ok(run_baton("deploy", "--provider", "docker", "--build", "--json", cwd=project, env=ENV,
                             timeout=600)).json()
        assert again["adapter_image"]["action"] == "present"

        started = time.monotonic()
        torn = ok(run_baton("teardown", "--json", cwd=project, env=ENV, timeout=300)).json()
        print(f"teardown: {time.monotonic() - started:.1f} s")
        assert len(torn["removed"]["containers"]) == 5 and len(torn["removed"]["networks"]) == 1
        assert torn["left"] == {}
        assert docker_client.containers.list(all=True, filters={"label": label}) == []
        assert docker_client.networks.list(filters={"label": label}) == []
        assert docker_client.volumes.list(filters={"label": label}) == []
    finally:
        run_baton("teardown", cwd=project, env=ENV, timeout=300)
        run_baton("down", "--all", cwd=project, env=ENV, timeout=120)
        _remove_fresh_images(docker_client)


def test_nothing_to_build_is_said(docker_client, adapter_image, prefect_api, tmp_path: Path) -> None:
    project = tmp_path / "shop"
    copy_shop(project, name="i15nothing")
    try:
        result = ok(run_baton("deploy", "--provider", "docker", "--build", cwd=project, timeout=300))
        assert "nothing to build: the adapter image is present and no service is registered" in result.stdout
    finally:
        run_baton("teardown", cwd=project, timeout=300)
        run_baton("down", "--all", cwd=project, timeout=120)


def test_a_service_bound_to_loopback_in_its_container_is_told_so(docker_client, adapter_image, prefect_api,
                                                                  tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "shop"
    copy_shop(project, name="i15loop")
    shutil.copytree(Path(__file__).parent / "services" / "loopservice", project / "services" / "loop")
    try:
        ok(run_baton("deploy", "--provider", "docker", cwd=project, timeout=300))
        built = ok(run_baton("image", "build", "--node", "users", "--path", "services/loop", "--offline", "--json",
                             cwd=project, timeout=600)).json()["images"][0]
        # the reason, not "did not answer on port 8080" at the readiness deadline
        result = run_baton("slot", "users", built["tag"], cwd=project, timeout=300)
        assert result.code == 1
        assert "listens on 127.0.0.1:8080 inside its container" in result.stderr, result.stderr
        assert "BATON_SERVICE_HOST" in result.stderr and "Traceback" not in result.stderr
    finally:
        run_baton("teardown", cwd=project, timeout=300)
        run_baton("down", "--all", cwd=project, timeout=120)
        _remove_images(docker_client, "baton-i15loop-users")


def test_a_published_adapter_image_is_pulled_when_its_registry_answers(docker_client, adapter_image, registry,
                                                                       monkeypatch) -> None:
    import baton_adapter

    from baton.images.adapter import ensure_adapter_image

    repository, version = f"{registry}/baton-adapter", baton_adapter.__version__
    published = f"{repository}:{version}"
    docker_client.images.get(adapter_image.digest_tag).tag(repository, version)
    try:
        for line in docker_client.images.push(repository, tag=version, stream=True, decode=True):
            assert "error" not in line, line
        docker_client.images.remove(published)  # only the tag: the registry must now serve it
        monkeypatch.setenv("BATON_ADAPTER_REGISTRY", registry)
        monkeypatch.setenv("BATON_ADAPTER_IMAGE", "batoni15pulled-adapter:latest")
        lines: list[str] = []
        result = ensure_adapter_image(docker_client, progress=lines.append)
        assert result["action"] == "pulled" and result["source"] == published, (result, lines)
        assert docker_client.images.get("batoni15pulled-adapter:latest").id == adapter_image.image_id
        assert ensure_adapter_image(docker_client)["action"] == "present"
    finally:
        for tag in ("batoni15pulled-adapter:latest", published):  # tags only: the image stays for other tests
            try:
                docker_client.images.remove(tag)
            except Exception:  # noqa: BLE001 - never made
                pass
