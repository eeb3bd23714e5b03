"""``baton certs status`` (every certificate of the circuit, its expiry state and what serves it) and
``baton certs rotate [--node N] [--ca]`` (a ``cert-rotate-*`` flow)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from baton.cli.output import emit, json_option, table

__all__ = ["certs", "certificate_problems"]

_STATE_STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "expired": "bold red",
                "not-yet-valid": "red"}


def _served_by(project: Any, config: Any) -> dict[str, list[str]]:
    """Fingerprint -> the running adapters that present it (``GET /tls``); empty when the circuit is down."""
    from baton.control import served_fingerprints
    from baton.state import StateStore

    state = StateStore(project.state_dir).load()
    if not state.running:
        return {}
    names = [n.name for n in config.nodes if n.name in state.adapters]
    served: dict[str, list[str]] = {}
    for name, fp in asyncio.run(served_fingerprints(config, project.state_dir, names)).items():
        served.setdefault(fp, []).append(name)
    return served


def certificate_report(project: Any, *, live: bool = True) -> dict[str, Any]:
    """The circuit's certificates as ``certs status --json`` prints them."""
    config = project.load()
    tls = config.security.tls
    report: dict[str, Any] = {"mode": str(tls.mode), "auto_rotate": tls.auto_rotate,
                              "warning_days": tls.warning_days, "critical_days": tls.critical_days,
                              "rotate_check_interval_s": tls.rotate_check_interval_s, "certificates": [],
                              "problems": []}
    if tls.mode.value == "off":  # before importing cryptography: `status --check` stays fast
        return report
    from baton.certs.circuit import inventory

    served = _served_by(project, config) if live else {}
    report.update(inventory(project.state_dir, config, root=project.root, served_by=served).to_json())
    return report


def certificate_problems(project: Any) -> list[str]:
    """For ``status --check``: certificates critical, expired or not yet valid, one sentence each."""
    report = certificate_report(project, live=False)
    return [f"certificate {c['role']} {c['node'] or c['subject']}: {c['state']} ({c['days_left']:.1f} days left, "
            f"until {c['not_after']}); `baton certs rotate`" for c in report["certificates"]
            if c["state"] in ("critical", "expired", "not-yet-valid")]


@click.group()
def certs() -> None:
    """TLS certificates of the circuit (security.tls in baton.yaml)."""


@certs.command("status")
@json_option
@click.pass_obj
def certs_status(obj: Any, as_json: bool) -> None:
    """Every certificate: the CA, each adapter's, your ingress certificate; expiry state and what serves it."""
    report = certificate_report(obj.project())

    def human(c: Any) -> None:
        if report["mode"] == "off":
            c.print("TLS is off (security.tls.mode: off): adapters serve plain HTTP. Set mode circuit (Baton's own "
                    "CA) or full (your ingress certificate) in baton.yaml and run `baton up`.")
            return
        rows = [(cert["role"], cert["node"] or "-", cert["subject"], ", ".join(cert["sans"]) or "-",
                 f"[{_STATE_STYLE.get(cert['state'], 'white')}]{cert['state']}[/]", f"{cert['days_left']:.1f}",
                 cert["not_after"], cert["fingerprint"][:16], ", ".join(cert["served_by"]) or "-")
                for cert in report["certificates"]]
        c.print(table(f"Certificates (mode {report['mode']}; warning at {report['warning_days']} days, critical at "
                      f"{report['critical_days']}; auto_rotate {'on' if report['auto_rotate'] else 'off'})",
                      ("role", "node", "subject", "names", "state", "days left", "not after", "sha256", "served by"),
                      rows))
        for problem in report["problems"]:
            c.print(f"[yellow]problem:[/] {problem}")

    emit(as_json, report, human)


@certs.command("rotate")
@click.option("--node", help="Only this node's certificate (default: every node's).")
@click.option("--ca", is_flag=True, help="Take the next step of a CA rotation instead (the new CA is trusted beside "
                                         "the old before node certificates switch to it).")
@json_option
@click.pass_obj
def certs_rotate(obj: Any, node: str | None, ca: bool, as_json: bool) -> None:
    """Issue new certificates (or re-read your ingress files), load them into every running adapter at once
    and check by a handshake that each serves its new one."""
    from baton.cli.runtime_cmd import run_flow_command
    from baton.errors import UsageError

    if ca and node:
        raise UsageError("--ca rotates the circuit's CA, which signs every node; drop --node.")
    _, result = run_flow_command(obj, "cert-rotate", {"node": node or "", "ca": ca}, as_json)

    def human(c: Any) -> None:
        for line in result["summary"]:
            c.print(f"  {line}")
        loaded = result["loaded"]
        c.print(f"Rotated: {', '.join(result['issued']) or 'no certificate'} issued; "
                f"{len(loaded)} adapter{'s' if len(loaded) != 1 else ''} serve the new certificate"
                f"{' (checked by a handshake)' if loaded else ''}.")

    emit(as_json, result, human)
