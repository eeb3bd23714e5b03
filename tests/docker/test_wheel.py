"""Packaging (issue 15): the built wheel, installed (not editable) into a fresh venv, builds a service image
outside any checkout: the Dockerfile templates and prefect.yaml travel in it.

The venv gets only the two wheels (baton, baton-adapter); their dependencies come from the test's own
environment through a path file, so nothing beyond the package registries (the build backend) is needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from baton_cli import ROOT

pytestmark = pytest.mark.docker


def _run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    return proc


def test_the_installed_wheel_builds_a_service_image(docker_client, prefect_api, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check", "-w",
         str(wheels), str(ROOT), str(ROOT / "adapter_image"))
    baton_wheel = next(wheels.glob("baton-*.whl"))
    names = zipfile.ZipFile(baton_wheel).namelist()
    assert {"dockerfiles/python.Dockerfile.j2", "dockerfiles/node.Dockerfile.j2", "flows/prefect.yaml"} <= set(names)

    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    _run(base, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({"NO_COLOR": "1", "BATON_NO_SCHEDULES": "1", "BATON_NO_CUSTODIAN": "1"})
    _run(str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--disable-pip-version-check",
         *map(str, wheels.glob("*.whl")), env=env)
    site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     env=env).stdout.strip())
    # then the dependencies, from this environment (its own .pth files, an editable Baton's, are not processed
    # from a path file: the wheel's baton is the one imported)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = _run(str(python), "-c", "import baton, dockerfiles; print(baton.__file__); print(dockerfiles.__file__)",
                 cwd=tmp_path, env=env).stdout.split()
    assert all(path.startswith(str(site)) for path in where), where  # the wheel's files, not the checkout's

    project = tmp_path / "shop"
    shutil.copytree(ROOT / "examples" / "shop", project, ignore=shutil.ignore_patterns("__pycache__", ".baton"))
    (project / "baton.yaml").write_text((project / "baton.yaml").read_text().replace("name: shop", "name: i15wheel", 1))
    built = _run(str(venv / "bin" / "baton"), "image", "build", "--node", "users", "--path", "services/users",
                 "--offline", "--json", cwd=project, env=env, timeout=900)
    image = json.loads(built.stdout)["images"][0]
    assert image["tag"].startswith("baton-i15wheel-users:") and image["runtime"] == "python"
    try:
        assert docker_client.images.get(image["tag"]).id == image["image_id"]
    finally:
        for tag in (image["tag"], "baton-i15wheel-users:latest"):
            docker_client.images.remove(tag, force=True)
