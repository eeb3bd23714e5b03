"""Docker layer: the real adapter image on a real engine.

Without an engine these tests skip with the reason; CI sets BATON_REQUIRE_DOCKER=1 (after .ci/run
started dockerd) so that a missing engine fails instead of skipping.
"""

from __future__ import annotations

import os

import pytest


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
def adapter_image(docker_client):
    """The adapter image built on the offline path (the base comes from debootstrap once, then from cache)."""
    from baton.images.adapter import build_adapter_image

    return build_adapter_image(docker_client, offline=True)
