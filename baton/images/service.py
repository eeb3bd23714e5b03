"""Service images: detect the runtime, render the Dockerfile (a user's own wins), build, record."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from baton.errors import BatonError
from baton.images.engine import build_image, image_available
from baton.images.offline import cache_dir, ensure_offline_base, source_digest
from baton.images.runtime import Runtime, detect_runtime

__all__ = ["ServiceImage", "TEMPLATES", "render_dockerfile", "build_service_image", "record_image", "read_images"]

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "dockerfiles"
SERVICE_PORT = 8080
DEFAULT_BASES = {"python": "python:3.11-slim", "node": "node:20-slim"}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceImage:
    node_name: str
    tag: str
    runtime: str
    reason: str
    image_id: str
    size_mb: float
    seconds: float
    built_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def render_dockerfile(name: str, runtime: Runtime, *, base_image: str, offline: bool) -> str:
    """The Dockerfile text for a detected runtime (Jinja2 template from dockerfiles/)."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        template = environment.get_template(f"{runtime.kind}.Dockerfile.j2")
    except jinja2.TemplateNotFound:
        raise BatonError(f"no Dockerfile template for the {runtime.kind} runtime in {TEMPLATES}; "
                         "add one or give the service its own Dockerfile.") from None
    return template.render(name=name, reason=runtime.reason, base_image=base_image, command=list(runtime.command),
                           requirements=runtime.requirements, offline=offline, port=SERVICE_PORT)


def _offline_wheels(source: Path, runtime: Runtime, target: Path, progress: Progress) -> None:
    if runtime.kind != "python" or not runtime.requirements:
        return
    spec = ["-r", str(source / runtime.requirements)] if runtime.requirements != "." else [str(source)]
    cache = cache_dir() / "service-wheels" / source_digest(source)
    if not (cache / ".complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        progress("building the service's wheels on this host")
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                               "-w", str(cache), *spec], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise BatonError(f"building the service's wheels failed ({tail}); check its requirements.")
        (cache / ".complete").write_text("ok\n")
    shutil.copytree(cache, target, ignore=shutil.ignore_patterns(".complete"))


def build_service_image(client: Any, path: Path, *, name: str, repository: str, offline: bool,
                        base_image: str | None = None, progress: Progress = lambda _: None) -> ServiceImage:
    """Build the image of the service in ``path``; a failed build raises with the build log's tail."""
    started = time.monotonic()
    path = Path(path).resolve()
    runtime = detect_runtime(path)
    progress(f"{name}: {runtime.kind} ({runtime.reason})")
    default = DEFAULT_BASES.get(runtime.kind)
    if not offline and not base_image and default and not image_available(client, default, progress):
        progress(f"{default} cannot be pulled: building on the offline base")
        offline = True
    if offline and runtime.kind != "dockerfile":
        base = base_image or ensure_offline_base(client, progress, runtime.kind)
    else:
        base = base_image or DEFAULT_BASES.get(runtime.kind, "")
    with tempfile.TemporaryDirectory(prefix="baton-service-ctx-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(path, context, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git", "node_modules",
                                                                     ".venv", ".baton"))
        if runtime.kind != "dockerfile":
            (context / "Dockerfile").write_text(render_dockerfile(name, runtime, base_image=base, offline=offline))
            if offline:
                _offline_wheels(path, runtime, context / ".baton-wheels", progress)
        digest = hashlib.sha256(f"{source_digest(context)}:{base}".encode()).hexdigest()[:12]
        tag = f"{repository}:{digest}"
        image = build_image(client, context, tag, what=name, build_args={"BASE_IMAGE": base} if base else {},
                            progress=progress)
        image.tag(repository, "latest")
    from baton.state import now_iso

    return ServiceImage(name, tag, runtime.kind, runtime.reason, image.id, round(image.attrs["Size"] / 1e6, 1),
                        round(time.monotonic() - started, 2), now_iso())


def repository_for(circuit: str, node: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", f"baton-{circuit}-{node}".lower())


def read_images(state_dir: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((state_dir / "images.json").read_text())
    except (FileNotFoundError, ValueError):
        return []


def record_image(state_dir: Path, image: ServiceImage) -> None:
    """Append to ``.baton/images.json`` (the original's file), newest last."""
    from baton.config.document import atomic_write_text

    images = [i for i in read_images(state_dir) if i.get("tag") != image.tag]
    images.append(image.to_json())
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(state_dir / "images.json", json.dumps(images, indent=2) + "\n")
