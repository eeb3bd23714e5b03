"""Certificate flows. ``cert-rotate-<node|all>`` (``baton certs rotate``) issues new certificates (or re-reads
the user's files), loads them into every running adapter as one transaction and proves by a handshake that
each serves its new one. ``cert-check`` (scheduled at ``security.tls.rotate_check_interval_s``; the conductor
runs it only when something is due) does the same for what is due: renewal at 2/3 of a certificate's lifetime
or inside ``warning_days`` when ``auto_rotate`` is on, the user's changed files always, one step of a CA
rotation per run, and records certificates that reach warning, critical or expiry as events."""

from __future__ import annotations

import os
from typing import Any

from prefect import flow
from prefect.transactions import transaction

from tasks.audit import label_run
from tasks.certs import load_certs, record_cert_warnings, renew_certs, verify_certs
from tasks.context import open_circuit, project_locked

__all__ = ["cert_rotate", "cert_check"]


async def _renew_load_verify(root: str, renew: list[str], force_ca: bool, auto_rotate: bool) -> dict[str, Any]:
    """Issue what is due, load it into the running adapters (a refusal puts every file and adapter back), verify."""
    with transaction():
        renewed = await renew_certs(root, renew, force_ca, auto_rotate)
        loaded = await load_certs(root, renewed["load"]) if renewed["load"] else {}
    verified = await verify_certs(root, loaded) if loaded else {}
    return {**renewed, "loaded": sorted(loaded), "verified": verified}


def _rotate_run_name() -> str:
    from prefect.runtime import flow_run

    parameters = flow_run.parameters or {}
    return "cert-rotate-" + ("ca" if parameters.get("ca") else parameters.get("node") or "all")


@flow(name="cert-rotate", flow_run_name=_rotate_run_name)
async def cert_rotate(root: str, node: str = "", ca: bool = False) -> dict[str, Any]:
    """New certificates for ``node`` (every node when empty), or with ``ca`` the next step of a CA rotation (the
    new CA is trusted beside the old before any node certificate switches to it)."""
    renew = [] if ca else ([node] if node else ["*"])
    return await _renew_load_verify(root, renew, force_ca=ca, auto_rotate=True)


def _project_root(root: str) -> str:
    return root or os.environ.get("BATON_PROJECT") or os.getcwd()


@flow(name="cert-check", flow_run_name="cert-check")
async def cert_check(root: str = "", reason: str = "") -> dict[str, Any]:
    """What is due, done; warnings recorded. Takes the project lock (a scheduled run waits for a command).
    ``reason``: why the conductor found it due (shown in ``baton history``)."""
    root = _project_root(root)
    config = open_circuit(root).config
    await label_run(root, "cert-check", [])
    if config.security.tls.mode.value == "off":
        return {"skipped": "security.tls.mode is off"}
    async with project_locked(root):
        result = await _renew_load_verify(root, [], force_ca=False, auto_rotate=config.security.tls.auto_rotate)
        result["warnings"] = await record_cert_warnings(root)
    return result
