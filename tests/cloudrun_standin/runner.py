"""Revisions as local Docker containers: the ingress container owns the network namespace, sidecars join it.

Every container and the network carry the stand-in's label, so the stand-in removes exactly what it made.
Ports the stand-in must reach (the ingress port and every sidecar's startup-probe port) are published on
127.0.0.1. Blocking Docker calls: callers run them in a thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RevisionContainers", "Runner", "RunnerError"]

LABEL = "cloudrun-standin"


class RunnerError(Exception):
    """A revision's containers could not be started (the message says why)."""


@dataclass
class RevisionContainers:
    ids: list[str] = field(default_factory=list)
    ingress_port: int = 0
    probes: list[tuple[int, str]] = field(default_factory=list)  # (host port, http path or "" for tcp)


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text)[-60:].strip("-")


class Runner:
    def __init__(self, instance: str) -> None:
        import docker

        self.instance = instance
        self.client = docker.from_env()
        self.network = self.client.networks.create(f"cloudrun-standin-{instance}", driver="bridge",
                                                   labels={LABEL: instance})
        self.network.reload()
        self.gateway = self.network.attrs["IPAM"]["Config"][0]["Gateway"]

    def _image(self, image: str) -> str:
        import docker.errors

        try:
            self.client.images.get(image)
            return image
        except docker.errors.ImageNotFound:
            pass
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        try:
            self.client.images.pull(repository, tag=tag)
        except docker.errors.APIError as exc:
            raise RunnerError(f"Image '{image}' not found: {exc.explanation}.") from exc
        return image

    def start(self, revision: str, containers: list[dict[str, Any]], env_rewrite: dict[str, str]) -> RevisionContainers:
        """Start one revision: ``containers`` as the proto3 JSON of RevisionTemplate.containers."""
        import docker.errors

        ingress = next((c for c in containers if c.get("ports")), containers[0])
        port = int((ingress.get("ports") or [{}])[0].get("containerPort", 8080))
        probe_ports = [(port, "")]
        for c in containers:
            if c is ingress:
                continue
            probe = c.get("startupProbe") or {}
            if "tcpSocket" in probe:
                probe_ports.append((int(probe["tcpSocket"].get("port", 8080)), ""))
            elif "httpGet" in probe:
                probe_ports.append((int(probe["httpGet"].get("port", 8080)), probe["httpGet"].get("path", "/")))
        labels = {LABEL: self.instance, f"{LABEL}.revision": revision}
        made = RevisionContainers()
        try:
            order = [ingress] + [c for c in containers if c is not ingress]
            for c in order:
                env = {e["name"]: _rewrite(e.get("value", ""), env_rewrite) for e in c.get("env", [])}
                kwargs: dict[str, Any] = {}
                if c is ingress:
                    env["PORT"] = str(port)
                    kwargs = {"network": self.network.name,
                              "ports": {f"{p}/tcp": ("127.0.0.1", None) for p, _ in probe_ports}}
                else:
                    kwargs = {"network_mode": f"container:{made.ids[0]}"}
                container = self.client.containers.create(
                    self._image(c["image"]), command=c.get("args") or None, entrypoint=c.get("command") or None,
                    name=f"crs-{self.instance}-{_slug(revision)}-{_slug(c.get('name') or 'c')}", labels=labels,
                    environment=env, detach=True, **kwargs)
                made.ids.append(container.id)
                container.start()
                if c is ingress:
                    container.reload()
                    bound = container.attrs["NetworkSettings"]["Ports"]
                    host_port = {p: int(bound[f"{p}/tcp"][0]["HostPort"]) for p, _ in probe_ports}
                    made.ingress_port = host_port[port]
                    made.probes = [(host_port[p], path) for p, path in probe_ports]
        except docker.errors.APIError as exc:
            self.remove(made.ids)
            raise RunnerError(f"revision {revision} did not start: {exc.explanation}.") from exc
        return made

    def exited(self, ids: list[str]) -> str:
        """'' while every container runs, else the first exited one's last log line."""
        import docker.errors

        for cid in ids:
            try:
                container = self.client.containers.get(cid)
            except docker.errors.NotFound:
                return f"container {cid[:12]} is gone"
            if container.status in ("exited", "dead"):
                tail = container.logs(tail=1).decode(errors="replace").strip()
                return f"container {container.name} exited: {tail or 'no output'}"
        return ""

    def remove(self, ids: list[str]) -> None:
        import docker.errors

        for cid in reversed(ids):  # sidecars before the namespace's owner
            try:
                self.client.containers.get(cid).remove(force=True)
            except docker.errors.NotFound:
                pass

    def close(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.instance}"}):
            container.remove(force=True)
        self.network.remove()
        self.client.close()


def _rewrite(value: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        value = value.replace(old, new)
    return value
