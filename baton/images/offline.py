"""The offline path for machines that cannot pull images: a local base image
made from a Debian rootfs (debootstrap), and Python wheels built on the host
for ``pip install --no-index`` inside the build. Both are cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baton.errors import BatonError

__all__ = ["OFFLINE_BASE", "OFFLINE_BASES", "cache_dir", "offline_base", "ensure_offline_base", "build_wheels",
           "source_digest"]

OFFLINE_BASE = "baton/debian-python:bookworm"
# runtime -> (image, Debian packages in its rootfs)
OFFLINE_BASES = {
    "python": (OFFLINE_BASE, "python3,python3-venv,ca-certificates,tini"),
    "node": ("baton/debian-node:bookworm", "nodejs,ca-certificates,tini"),
}
BASE_PREFIX_ENV = "BATON_BASE_PREFIX"  # e.g. a test's own prefix, so that it builds its bases from nothing


def offline_base(runtime: str) -> tuple[str, str]:
    """(image, Debian packages) of the offline base for ``runtime``; ``$BATON_BASE_PREFIX`` replaces ``baton/``."""
    image, packages = OFFLINE_BASES[runtime]
    prefix = os.environ.get(BASE_PREFIX_ENV)
    return (f"{prefix.rstrip('/')}/{image.split('/', 1)[1]}" if prefix else image), packages
Progress = Callable[[str], None]


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "baton"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def ensure_offline_base(client: Any, progress: Progress = lambda _: None, runtime: str = "python") -> str:
    """The local base image for ``runtime`` (Debian 12 + the runtime + tini), built from a rootfs when missing."""
    import docker.errors

    if runtime not in OFFLINE_BASES:
        raise BatonError(f"there is no offline base for the {runtime} runtime (known: {', '.join(OFFLINE_BASES)}); "
                         "build online or give the service its own Dockerfile.")
    image, packages = offline_base(runtime)
    try:
        client.images.get(image)
        return image
    except docker.errors.ImageNotFound:
        pass
    if shutil.which("debootstrap") is None:
        raise BatonError("the offline base image needs debootstrap; `apt-get install debootstrap` (as root) or build "
                         "online with the default python:3.11-slim base.")
    with tempfile.TemporaryDirectory(prefix="baton-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        progress(f"debootstrap bookworm ({packages}) - about 40 s, once")
        proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(rootfs)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BatonError(f"debootstrap failed ({_tail(proc.stdout + proc.stderr)}); it needs root and the Debian "
                             "package mirror.")
        progress("importing the rootfs into Docker")
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        with open(archive, "rb") as data:
            client.api.import_image(src=data, repository=image.split(":")[0], tag=image.split(":")[1],
                                    changes=["ENV LANG=C.UTF-8"])
    client.images.get(image)
    return image


_SKIP_PARTS = {"__pycache__", "build", "dist", "wheels"}


def source_digest(project: Path) -> str:
    """A digest of a source tree's own files (not of what builds leave behind in it)."""
    digest = hashlib.sha256()
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if not path.is_file() or _SKIP_PARTS & set(relative.parts) or path.suffix == ".pyc" \
                or any(part.endswith(".egg-info") for part in relative.parts):
            continue
        digest.update(str(relative).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_wheels(project: Path, extras: str = "fast", progress: Progress = lambda _: None) -> Path:
    """Wheels of ``project`` and its dependencies, built on this host (cached by the project's content)."""
    target = cache_dir() / "wheels" / source_digest(project)
    stamp = target / ".complete"
    if stamp.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    progress(f"building wheels for {project.name} on this host")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                           "-w", str(target), f"{project}[{extras}]"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BatonError(f"building wheels failed ({_tail(proc.stderr)}); check network access to the package index.")
    stamp.write_text("ok\n")
    return target
