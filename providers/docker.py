"""The Docker provider: a network per circuit, one adapter container per node
(published on 127.0.0.1), services as containers reachable by name.

Every container and network carries ``baton.project`` (a digest of the project
path), ``baton.circuit`` and ``baton.node`` labels, so stopping removes exactly
what this circuit created. Adapters require a management token, as on every
provider (see :func:`baton.control.control_token`): the container gets it in the
variable its config names, and nothing else of Baton's environment. Services get
Baton's variables only (the image supplies the rest).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from baton.config import NodeConfig
from baton.config.document import atomic_write_text
from baton.control import GENERATED_TOKEN_ENV, control_token, token_env
from baton.errors import BatonError, UsageError
from baton.state import AdapterHost, ServiceSlot, now_iso

__all__ = ["DockerProvider", "ADAPTER_IMAGE", "TOKEN_ENV", "project_label"]

ADAPTER_IMAGE = os.environ.get("BATON_ADAPTER_IMAGE", "baton-adapter:latest")
TOKEN_ENV = GENERATED_TOKEN_ENV
SERVICE_PORT = 8080  # what service images listen on inside their container (see dockerfiles/)
CONTAINER_PROJECT = "/project"
CONTAINER_TLS = "/etc/baton/tls"


def project_label(root: Path) -> str:
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")


class DockerProvider:
    name = "docker"

    def __init__(self) -> None:
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import docker

                self._client = docker.from_env()
                self._client.ping()
            except Exception as exc:  # noqa: BLE001 - every way of not reaching the engine reads the same
                raise BatonError(f"no Docker engine answers ({exc}); start dockerd or use --provider local.") from exc
        return self._client

    # -- shared -------------------------------------------------------------------------------------------

    def _labels(self, root: Path, circuit: str, node: str, role: str) -> dict[str, str]:
        return {"baton.project": project_label(root), "baton.circuit": circuit, "baton.node": node, "baton.role": role}

    def _network(self, root: Path, circuit: str) -> str:
        import docker.errors

        name = f"baton-{_slug(circuit)}-{project_label(root)}"
        try:
            self.client.networks.get(name)
        except docker.errors.NotFound:
            self.client.networks.create(name, driver="bridge",
                                        labels={"baton.project": project_label(root), "baton.circuit": circuit})
        return name

    def _remove(self, name: str) -> bool:
        import docker.errors

        try:
            container = self.client.containers.get(name)
        except docker.errors.NotFound:
            return False
        try:
            container.stop(timeout=10)
        except docker.errors.APIError:
            pass
        container.remove(force=True)
        return True

    def _running(self, name: str) -> bool:
        import docker.errors

        try:
            return self.client.containers.get(name).status == "running"
        except docker.errors.NotFound:
            return False

    # -- adapters -----------------------------------------------------------------------------------------

    def start_host(self, root: Path, state_dir: Path, host_id: str, adapter_config: Mapping[str, Any]) -> AdapterHost:
        import docker.errors

        try:
            self.client.images.get(ADAPTER_IMAGE)
        except docker.errors.ImageNotFound:
            raise UsageError(f"the adapter image {ADAPTER_IMAGE} is not built here; run `baton image adapter` "
                             "(or `baton image adapter --offline` on a machine that cannot pull).") from None
        config = self._config(root)
        circuit = config.name
        token_env_name = token_env(config)
        token = control_token(config, state_dir, create=True)
        network = self._network(root, circuit)
        adapters = Path(state_dir) / "adapters"
        adapters.mkdir(parents=True, exist_ok=True)
        names = []
        for entry in adapter_config["nodes"]:
            node = dict(entry)
            node["host"] = "0.0.0.0"
            node["token_env"] = token_env_name
            if node.get("contract"):
                node["contract"] = self._in_container(root, node["contract"])
            backend = node.get("backend") or {}
            if backend.get("host") in ("127.0.0.1", "localhost"):
                node["backend"] = {"mock": True}  # a host-local service cannot be reached from a container
            volumes = {}
            if node.get("tls"):
                volumes, node["tls"] = _tls_mounts(state_dir, node["name"], node["tls"])
            config_file = adapters / f"{node['name']}.json"
            atomic_write_text(config_file, json.dumps({"node": node, "shutdown_grace_s":
                                                       adapter_config.get("shutdown_grace_s", 10)}, indent=2))
            os.chmod(config_file, 0o644)
            name = self._adapter_name(root, circuit, node["name"])
            self._remove(name)
            env = {token_env_name: token}
            container = self.client.containers.create(
                ADAPTER_IMAGE,
                name=name,
                network=network,
                labels=self._labels(root, circuit, node["name"], "adapter"),
                environment=env,
                volumes={str(config_file): {"bind": "/etc/baton/adapter.json", "mode": "ro"},
                         str(Path(root).resolve()): {"bind": CONTAINER_PROJECT, "mode": "ro"}, **volumes},
                ports={f"{node['port']}/tcp": ("127.0.0.1", node["port"]),
                       f"{node['management_port']}/tcp": ("127.0.0.1", node["management_port"])},
            )
            self._alias(network, container, node["name"])  # consumers reach the adapter by node name
            container.start()
            names.append(name)
        return AdapterHost(host_id=host_id, nodes=[n["name"] for n in adapter_config["nodes"]],
                           containers=names, network=network, started_at=now_iso())

    def _adapter_name(self, root: Path, circuit: str, node: str) -> str:
        return f"baton-{_slug(circuit)}-{node}-adapter-{project_label(root)[:6]}"

    def tls_names(self, root: Path, config: Any) -> dict[str, tuple[str, ...]]:
        return {n.name: (self._adapter_name(root, config.name, n.name),) for n in config.nodes}

    def trust_files(self, state_dir: Path) -> dict[str, str]:
        return {"ca_file": f"{CONTAINER_TLS}/ca-bundle.pem", "trust_file": f"{CONTAINER_TLS}/trust.pem"}

    def _trust_mounts(self, state_dir: Path) -> dict[str, dict[str, str]]:
        """The circuit's CA files, read-only, where :meth:`trust_files` says a service finds them."""
        tls = Path(state_dir) / "tls"
        return {str(tls / name): {"bind": f"{CONTAINER_TLS}/{name}", "mode": "ro"}
                for name in ("ca-bundle.pem", "trust.pem") if (tls / name).is_file()}

    def _config(self, root: Path) -> Any:
        from baton.project import Project

        return Project.at(root).load()

    def _circuit(self, root: Path) -> str:
        return self._config(root).name

    def _alias(self, network: str, container: Any, alias: str) -> None:
        net = self.client.networks.get(network)
        net.disconnect(container)
        net.connect(container, aliases=[alias])

    def _in_container(self, root: Path, path: str) -> str:
        resolved = Path(path).resolve()
        try:
            return f"{CONTAINER_PROJECT}/{resolved.relative_to(Path(root).resolve())}"
        except ValueError:
            raise UsageError(f"contract {path} lies outside the project; the docker provider mounts only the "
                             "project directory, so move the contract inside it.") from None

    def stop_host(self, host: AdapterHost) -> bool:
        removed = [self._remove(name) for name in host.containers]
        self._prune_network(host.network)
        return any(removed)

    def _prune_network(self, network: str) -> None:
        import docker.errors

        if not network:
            return
        try:
            net = self.client.networks.get(network)
            net.reload()
            if not net.attrs.get("Containers"):
                net.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            pass  # still in use by the circuit's other containers: removed with the last of them

    def host_alive(self, host: AdapterHost) -> bool:
        return bool(host.containers) and all(self._running(name) for name in host.containers)

    def host_log_tail(self, host: AdapterHost, lines: int = 5) -> str:
        import docker.errors

        tails = []
        for name in host.containers:
            try:
                text = self.client.containers.get(name).logs(tail=lines).decode(errors="replace").strip()
            except docker.errors.NotFound:
                text = "container gone"
            if text:
                tails.append(f"{name}: {' | '.join(text.splitlines()[-lines:])}")
        return " / ".join(tails)

    # -- services -----------------------------------------------------------------------------------------

    def start_service(self, root: Path, state_dir: Path, node: NodeConfig, argv: Sequence[str],
                      env: Mapping[str, str], port: int) -> ServiceSlot:
        """``argv[0]`` is an image (or the node's built image runs ``argv`` as its command)."""
        import docker.errors

        image, command = self._image_and_command(state_dir, node, argv)
        circuit = self._circuit(root)
        network = self._network(root, circuit)
        name = f"baton-{_slug(circuit)}-{node.name}-svc-{port}"
        environment = {**env, "BATON_SERVICE_PORT": str(SERVICE_PORT), "PORT": str(SERVICE_PORT)}
        self._remove(name)
        try:
            self.client.containers.run(
                image, command=command or None, name=name, detach=True, network=network, init=True,
                labels=self._labels(root, circuit, node.name, "service"), environment=environment,
                ports={f"{SERVICE_PORT}/tcp": ("127.0.0.1", port)},
                volumes=self._trust_mounts(state_dir) if "BATON_CA_FILE" in environment else {},
            )
        except docker.errors.APIError as exc:
            raise BatonError(f"the service container for {node.name} did not start ({exc.explanation}).") from exc
        return ServiceSlot(command=" ".join(argv), argv=list(argv), env=dict(environment), is_mock=False,
                           host=name, port=SERVICE_PORT, probe_host="127.0.0.1", probe_port=port,
                           container=name, started_at=now_iso())

    def _image_and_command(self, state_dir: Path, node: NodeConfig, argv: Sequence[str]) -> tuple[str, list[str]]:
        import docker.errors

        try:
            self.client.images.get(argv[0])
            return argv[0], list(argv[1:])
        except (docker.errors.ImageNotFound, docker.errors.APIError):
            pass
        from baton.images.service import read_images

        built = [i for i in read_images(state_dir) if i.get("node_name") == node.name]
        if not built:
            raise UsageError(f"{argv[0]!r} is not a local image and no image is built for {node.name}; "
                             f"`baton image build --node {node.name} --path DIR` or slot an image name.")
        return built[-1]["tag"], list(argv)

    def stop_service(self, slot: ServiceSlot) -> bool:
        return bool(slot.container) and self._remove(slot.container)

    def service_alive(self, slot: ServiceSlot) -> bool:
        return bool(slot.container) and self._running(slot.container)

    def service_log_tail(self, state_dir: Path, node: str, slot: ServiceSlot, lines: int = 3) -> str:
        """The container's own last lines (a container is one instance)."""
        import docker.errors

        if not slot.container:
            return ""
        try:
            text = self.client.containers.get(slot.container).logs(tail=lines).decode(errors="replace").strip()
        except docker.errors.NotFound:
            return ""
        return " | ".join(text.splitlines()[-lines:])

    def free_port(self) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def dependency_host(self, node: NodeConfig) -> str:
        return node.name  # the adapter container's hostname on the circuit's network


def _tls_mounts(state_dir: Path, node: str, tls: Mapping[str, str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Copies of a node's certificate and key the adapter container can read (it runs as uid 10001; the key
    stays private on the host: its copy lies in ``.baton/tls``, mode 0700), mounted read-only; and the ``tls``
    section naming them as the container sees them. Copied at every start, so a restart serves the files."""
    copies = Path(state_dir) / "tls" / "docker"
    copies.mkdir(mode=0o700, parents=True, exist_ok=True)
    volumes, inside = {}, dict(tls)
    for field, target in (("cert_file", f"{CONTAINER_TLS}/cert.pem"), ("key_file", f"{CONTAINER_TLS}/key.pem")):
        copy = copies / f"{node}-{Path(target).name}"
        atomic_write_text(copy, Path(tls[field]).read_text(encoding="utf-8"), mode=0o644)
        volumes[str(copy)] = {"bind": target, "mode": "ro"}
        inside[field] = target
    return volumes, inside
