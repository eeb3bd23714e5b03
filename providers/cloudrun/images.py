"""Images Cloud Run pulls: the circuit's adapter image (the prebuilt adapter with every node's config and
contract baked in, since a Cloud Run container gets no files) and the slotted services' images, pushed to
``deploy.registry``. Built on the local Docker engine; tagged by content, so an unchanged circuit pushes
nothing new."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from baton.config import CircuitConfig
from baton.errors import BatonError, UsageError
from baton.images.engine import build_image
from providers.cloudrun.spec import CONTRACTS_DIR, NODES_DIR, label_value, adapter_nodes, contracts

__all__ = ["ImagePusher"]

DOCKERFILE = f"""FROM {{base}}
COPY nodes/ {NODES_DIR}/
COPY contracts/ {CONTRACTS_DIR}/
"""


class ImagePusher:
    def __init__(self, registry: str, adapter_base: str, client: Any = None) -> None:
        if not registry:
            raise UsageError("Cloud Run pulls images from a registry and deploy.registry is empty; set it "
                             "(e.g. REGION-docker.pkg.dev/PROJECT/baton).")
        self.registry = registry.rstrip("/")
        self.adapter_base = adapter_base
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from baton.images.engine import engine_client

            self._client = engine_client("Cloud Run images are built and pushed from this machine: start dockerd")
        return self._client

    def adapter_image(self, config: CircuitConfig, root: Path) -> str:
        """Build (unless present) and push the circuit's adapter image; its registry reference."""
        files = adapter_nodes(config, root)
        specs = contracts(config, root)
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode() + self.adapter_base.encode())
        for name, path in sorted(specs.items()):
            digest.update(name.encode() + path.read_bytes())
        tag = f"{self.registry}/baton-{label_value(config.name)}-adapter:{digest.hexdigest()[:12]}"
        import docker.errors

        try:
            self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            with tempfile.TemporaryDirectory(prefix="baton-cloudrun-") as tmp:
                context = Path(tmp)
                (context / "nodes").mkdir()
                (context / "contracts").mkdir()
                for name, document in files.items():
                    (context / "nodes" / name).write_text(json.dumps(document, indent=2), encoding="utf-8")
                for name, path in specs.items():
                    shutil.copy2(path, context / "contracts" / name)
                (context / "Dockerfile").write_text(DOCKERFILE.format(base=self.adapter_base), encoding="utf-8")
                build_image(self.client, context, tag, what=f"the adapter image of {config.name}")
        self.push(tag)
        return tag

    def service_image(self, image: str) -> str:
        """A local image under the registry (tagged by its id), pushed; a registry reference is kept as is."""
        if image.startswith(self.registry + "/"):
            return image
        import docker.errors

        try:
            local = self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise UsageError(f"the image {image} is neither in {self.registry} nor built here; build it with "
                             "`baton image build` first.") from None
        name = image.rsplit("/", 1)[-1].split(":", 1)[0]
        tag = f"{self.registry}/{name}:{local.id.split(':', 1)[-1][:12]}"
        repository, _, version = tag.rpartition(":")
        local.tag(repository, version)
        self.push(tag)
        return tag

    def push(self, tag: str) -> None:
        repository, _, version = tag.rpartition(":")
        try:
            for chunk in self.client.images.push(repository, tag=version, stream=True, decode=True):
                if "error" in chunk:
                    raise BatonError(f"pushing {tag} failed: {chunk['error'].strip()}.")
        except Exception as exc:  # noqa: BLE001 - the engine's own errors read differently; one message
            if isinstance(exc, BatonError):
                raise
            raise BatonError(f"pushing {tag} failed: {exc}.") from exc
