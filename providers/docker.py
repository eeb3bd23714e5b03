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
from baton.images.adapter import adapter_image_name
from baton.state import AdapterHost, ServiceSlot, now_iso

__all__ = ["DockerProvider", "ADAPTER_IMAGE", "TOKEN_ENV", "project_label"]

ADAPTER_IMAGE = adapter_image_name()  # as at import; start_host reads the environment again
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
            from baton.images.engine import engine_client

            self._client = engine_client("start dockerd or use --provider local")
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
        try:
            container.remove(force=True, v=True)  # with its anonymous volumes
        except docker.errors.NotFound:
            pass
        return True

    def _running(self, name: str) -> bool:
        import docker.errors

        try:
            return self.client.containers.get(name).status == "running"
        except docker.errors.NotFound:
            return False

    def inventory(self, root: Path) -> dict[str, list[str]]:
        """What of this project exists on the engine: containers, networks and volumes (labelled ones, and those
        its containers mount)."""
        label = f"baton.project={project_label(root)}"
        containers = self.client.containers.list(all=True, filters={"label": label})
        volumes = {m["Name"] for c in containers for m in c.attrs.get("Mounts", []) if m.get("Type") == "volume"}
        volumes |= {v.name for v in self.client.volumes.list(filters={"label": label})}
        return {"containers": sorted(c.name for c in containers),
                "networks": sorted(n.name for n in self.client.networks.list(filters={"label": label})),
                "volumes": sorted(volumes)}

    def sweep(self, root: Path) -> None:
        """Remove whatever of this project is left on the engine (a command cut short, a host state forgot)."""
        import docker.errors

        label = f"baton.project={project_label(root)}"
        for container in self.client.containers.list(all=True, filters={"label": label}):
            self._remove(container.name)
        for network in self.client.networks.list(filters={"label": label}):
            self._prune_network(network.name)
        for volume in self.client.volumes.list(filters={"label": label}):
            try:
                volume.remove(force=True)
            except docker.errors.APIError:
                pass

    # -- adapters -----------------------------------------------------------------------------------------

    def start_host(self, root: Path, state_dir: Path, host_id: str, adapter_config: Mapping[str, Any]) -> AdapterHost:
        import docker.errors

        image = adapter_image_name()
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise UsageError(f"the adapter image {image} is not built here; deploy with `--build`, or run "
                             "`baton image adapter` (`--offline` on a machine that cannot pull).") from None
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
                image,
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
        environment = {**env, "BATON_SERVICE_PORT": str(SERVICE_PORT), "PORT": str(SERVICE_PORT),
                       "BATON_SERVICE_HOST": "0.0.0.0"}  # reachable from the adapter's container
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

    def service_listen_problem(self, slot: ServiceSlot) -> str | None:
        """Why a running service cannot be reached although it listens: bound to loopback inside its container
        (read from the container's ``/proc/net/tcp*``); None when that is not the case or cannot be told."""
        import docker.errors

        from providers.listening import listeners, loopback_only

        if not slot.container:
            return None
        try:
            container = self.client.containers.get(slot.container)
            pid = int(container.attrs.get("State", {}).get("Pid") or 0)
            tables = _proc_tables(pid) if pid else None
            if tables is None:  # not on the engine's host: ask inside the container
                result = container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], demux=False)
                tables = [result.output.decode(errors="replace")] if result.exit_code in (0, 1) else []
        except (docker.errors.APIError, ValueError):
            return None
        bound = loopback_only(listeners(tables), slot.port)
        if bound is None:
            return None
        return (f"the service listens on {bound}:{slot.port} inside its container, which nothing outside the "
                "container can reach; bind $BATON_SERVICE_HOST (0.0.0.0 in containers) instead of loopback.")

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


def _proc_tables(pid: int) -> list[str] | None:
    """The container's TCP tables through its main process, when the engine runs on this host (as root)."""
    tables = []
    for name in ("tcp", "tcp6"):
        try:
            tables.append(Path(f"/proc/{pid}/net/{name}").read_text())
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return tables or None


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
