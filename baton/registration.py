"""Registering Baton's deployments (``flows/prefect.yaml``) on a Prefect server, for a worker of a process pool.

``prefect deploy`` does the registering; this module finds the file, makes sure the work pool exists, points
the deployments at the pool asked for and at the project (``BATON_PROJECT``), and turns a refusal into one
sentence. Prefect is imported here: import this module lazily.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from baton.errors import BatonError, UsageError

__all__ = ["deployments_file", "register_deployments", "DEFAULT_POOL"]

DEFAULT_POOL = "baton"


def deployments_file() -> Path:
    """``flows/prefect.yaml`` of the installed control plane (a source checkout or the wheel)."""
    spec = importlib.util.find_spec("flows")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "prefect.yaml"
        if path.is_file():
            return path
    raise BatonError("flows/prefect.yaml is not installed beside the flows package; reinstall Baton.")


def _prefect_executable() -> str:
    beside = Path(sys.executable).with_name("prefect")
    found = str(beside) if beside.exists() else shutil.which("prefect")
    if not found:
        raise BatonError("the `prefect` command is not installed beside this Python; reinstall Baton.")
    return found


async def _ensure_pool(name: str) -> bool:
    """Create process work pool ``name`` unless it exists; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            return True
    if pool.type != "process":
        raise UsageError(f"work pool {name!r} is of type {pool.type!r}; Baton's deployments need a process pool "
                         "(a worker beside the project directory), so name another with --pool.")
    return False


def _spec_for(pool: str, source: Path, directory: Path) -> Path:
    """``source`` with every deployment on ``pool`` (the file itself when it already says so)."""
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    if all((d.get("work_pool") or {}).get("name") == pool for d in spec.get("deployments") or []):
        return source
    for deployment in spec.get("deployments") or []:
        deployment.setdefault("work_pool", {})["name"] = pool
    path = directory / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def register_deployments(project: Path, *, pool: str = DEFAULT_POOL, names: tuple[str, ...] = (),
                         timeout_s: float = 300.0) -> dict[str, object]:
    """``prefect deploy`` Baton's deployments (all, or ``names``) for ``project`` onto work pool ``pool``."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise UsageError("PREFECT_API_URL is not set; point it at the Prefect server the deployments go to.")
    if not (project / "baton.yaml").is_file():
        raise UsageError(f"{project} holds no baton.yaml; --project names the directory the worker runs the "
                         "project from.")
    source = deployments_file()
    known = [d["name"] for d in yaml.safe_load(source.read_text(encoding="utf-8"))["deployments"]]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"{source} declares no deployment {', '.join(map(repr, unknown))}; it declares "
                         f"{', '.join(known)}.")
    created_pool = asyncio.run(_ensure_pool(pool))
    selection = [arg for n in names for arg in ("--name", n)] or ["--all"]
    with tempfile.TemporaryDirectory(prefix="baton-deploy-") as scratch:
        spec = _spec_for(pool, source, Path(scratch))
        env = {**os.environ, "BATON_PROJECT": str(project.resolve()), "NO_COLOR": "1", "COLUMNS": "200"}
        try:
            done = subprocess.run([_prefect_executable(), "--no-prompt", "deploy", *selection, "--prefect-file",
                                   str(spec)], cwd=source.parent.parent, env=env, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise BatonError(f"`prefect deploy` did not finish within {timeout_s:g} s; is the server up?") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        lines = [line.strip(" │") for line in output.splitlines() if line.strip(" │")]
        raise BatonError(f"`prefect deploy` failed: {lines[-1] if lines else f'exit {done.returncode}'}.")
    registered = re.findall(r"Deployment '([^']+)' successfully created", output.replace("│", "").replace("\n", " "))
    return {"pool": pool, "pool_created": created_pool, "project": str(project.resolve()), "file": str(source),
            "deployments": registered or [f"?/{n}" for n in (names or known)]}
