"""Docker layer: the real adapter image on a real engine.

Without an engine these tests skip with the reason; CI sets BATON_REQUIRE_DOCKER=1 (after .ci/run
started dockerd) so that a missing engine fails instead of skipping.
"""

from __future__ import annotations


import pytest


@pytest.fixture(scope="session")
def adapter_image(docker_client):
    """The adapter image built on the offline path (the base comes from debootstrap once, then from cache)."""
    from baton.images.adapter import build_adapter_image

    return build_adapter_image(docker_client, offline=True)
