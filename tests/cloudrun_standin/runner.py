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
    probes: list[tuple[str, int, str]] = field(default_factory=list)  # (sidecar id, its port, http path or "")


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
        probe_ports: dict[int, tuple[int, str]] = {}  # by container index
        for index, c in enumerate(containers):
            probe = c.get("startupProbe") or {}
            if c is ingress:
                continue
            if "tcpSocket" in probe:  # in the namespace: a sidecar may listen on localhost only
                probe_ports[index] = (int(probe["tcpSocket"].get("port", 8080)), "")
            elif "httpGet" in probe:
                probe_ports[index] = (int(probe["httpGet"].get("port", 8080)), probe["httpGet"].get("path", "/"))
        labels = {LABEL: self.instance, f"{LABEL}.revision": revision}
        made = RevisionContainers()
        try:
            order = [ingress] + [c for c in containers if c is not ingress]
            for c in order:
                index = containers.index(c)
                env = {e["name"]: _rewrite(e.get("value", ""), env_rewrite) for e in c.get("env", [])}
                kwargs: dict[str, Any] = {}
                if c is ingress:
                    env["PORT"] = str(port)
                    kwargs = {"network": self.network.name, "ports": {f"{port}/tcp": ("127.0.0.1", None)}}
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
                    made.ingress_port = int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])
                elif index in probe_ports:
                    made.probes.append((container.id, *probe_ports[index]))
        except docker.errors.APIError as exc:
            self.remove(made.ids)
            raise RunnerError(f"revision {revision} did not start: {exc.explanation}.") from exc
        return made

    def answers_inside(self, cid: str, port: int, path: str) -> bool:
        """Whether ``port`` answers on the namespace's localhost (TCP, or HTTP below 500 at ``path``), probed
        from inside the container (its image needs python3)."""
        import docker.errors

        check = (f"import urllib.request;urllib.request.urlopen('http://127.0.0.1:{port}{path}',timeout=1)" if path
                 else f"import socket;socket.create_connection(('127.0.0.1',{port}),timeout=1).close()")
        try:
            return self.client.containers.get(cid).exec_run(["python3", "-c", check]).exit_code == 0
        except docker.errors.APIError:
            return False

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
