"""Slot-time interface validation: probe a real service and check it honours the contract.

Only safe probes are sent by default (GET and HEAD); other methods only with ``unsafe_methods=True``.
Path parameters are filled from examples or generated from their schemas (never a literal ``{id}``),
required query and header parameters likewise. A probe passes when the service answers a documented
status with a documented media type and, for JSON, a body that validates against the response schema.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ._contract import Operation, Response
from ._engine import MockEngine
from ._examples import example_request
from ._request import base_media_type, is_json

__all__ = ["Mismatch", "ProbeResult", "ValidationReport", "validate_service"]

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"get", "head"})
_CONCURRENCY = 8
_SLOT_SEED = 0x5107


@dataclass(frozen=True)
class Mismatch:
    """One way the service does not honour the contract."""

    method: str
    template: str
    path: str
    kind: str
    detail: str
    status: int | None = None
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The mismatch as a JSON object."""
        return {
            "method": self.method,
            "template": self.template,
            "path": self.path,
            "kind": self.kind,
            "status": self.status,
            "detail": self.detail,
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class ProbeResult:
    """One probe: what was sent, what came back, and the verdict (``ok``, ``mismatch`` or ``skipped``)."""

    method: str
    template: str
    path: str
    status: int | None
    verdict: str
    detail: str = ""


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating a service against its contract."""

    base_url: str
    contract: str
    probes: list[ProbeResult] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    COLUMNS = ("method", "path", "status", "verdict", "detail")

    @property
    def ok(self) -> bool:
        """True when every probe passed."""
        return not self.mismatches

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """One row per probe, in :attr:`COLUMNS` order, for a table."""
        return [
            (p.method, p.path, "-" if p.status is None else str(p.status), p.verdict, p.detail) for p in self.probes
        ]

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON document."""
        return {
            "base_url": self.base_url,
            "contract": self.contract,
            "ok": self.ok,
            "probed": sum(1 for p in self.probes if p.verdict != "skipped"),
            "skipped": sum(1 for p in self.probes if p.verdict == "skipped"),
            "mismatches": [m.to_json() for m in self.mismatches],
            "probes": [
                {"method": p.method, "template": p.template, "path": p.path, "status": p.status,
                 "verdict": p.verdict, "detail": p.detail}
                for p in self.probes
            ],
        }


async def validate_service(
    base_url: str, contract: str, *, unsafe_methods: bool = False, timeout: float = 5.0
) -> ValidationReport:
    """Probe the service at ``base_url`` with every documented operation and report the mismatches.

    Raises ContractError when the contract itself cannot be loaded.
    """
    engine = await asyncio.to_thread(
        MockEngine.from_contract, contract, "slot-validation", _SLOT_SEED, validate_requests=False
    )
    base = base_url.rstrip("/")
    semaphore = asyncio.Semaphore(_CONCURRENCY)
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async with aiohttp.ClientSession(timeout=client_timeout) as session:

        async def run(op: Operation) -> tuple[ProbeResult, list[Mismatch]]:
            if op.method not in SAFE_METHODS and not unsafe_methods:
                skipped = "unsafe method; not probed (opt in with unsafe_methods)"
                return ProbeResult(op.method.upper(), op.path, op.path, None, "skipped", skipped), []
            async with semaphore:
                return await _probe(session, engine, base, op)

        results = await asyncio.gather(*(run(op) for op in engine.operations))
    report = ValidationReport(base_url, contract)
    for probe, mismatches in results:
        report.probes.append(probe)
        report.mismatches.extend(mismatches)
    logger.info(
        "validated %s against %s: %d probes, %d mismatches", base_url, contract, len(report.probes),
        len(report.mismatches),
    )
    return report


def _build(engine: MockEngine, op: Operation) -> tuple[str, list[tuple[str, str]], dict[str, str], bytes | None]:
    request = example_request(engine, op, _SLOT_SEED)
    return request.path, request.query, request.headers, request.body_bytes()


@dataclass(frozen=True)
class _Finding:
    kind: str
    detail: str
    problems: tuple[str, ...] = ()


async def _probe(
    session: aiohttp.ClientSession, engine: MockEngine, base: str, op: Operation
) -> tuple[ProbeResult, list[Mismatch]]:
    """Send one probe (I/O), then judge the answer (pure)."""
    method = op.method.upper()
    path, query, headers, body = _build(engine, op)
    status: int | None = None
    try:
        async with session.request(
            method, base + path, params=query, headers=headers, data=body, allow_redirects=False
        ) as resp:
            status = resp.status
            answer_headers = {k.lower(): v for k, v in resp.headers.items()}
            payload = await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        findings = [_Finding("unreachable", f"{type(exc).__name__}: {exc}".rstrip(": "))]
    else:
        findings = _judge(engine, op, method, status, answer_headers, payload)
    if not findings:
        return ProbeResult(method, op.path, path, status, "ok"), []
    detail = "; ".join(f"{f.kind}: {f.detail}" for f in findings)
    mismatches = [Mismatch(method, op.path, path, f.kind, f.detail, status, f.problems) for f in findings]
    return ProbeResult(method, op.path, path, status, "mismatch", detail), mismatches


def _judge(
    engine: MockEngine, op: Operation, method: str, status: int, headers: dict[str, str], payload: bytes
) -> list[_Finding]:
    """Every way one answer breaks the contract: status, required headers, media type, body."""
    response = _documented(op, status)
    if response is None:
        documented = ", ".join(op.responses) or "none"
        return [_Finding("undocumented_status", f"answered {status}; documented: {documented}")]
    findings = []
    missing = [h.name for h in response.headers if h.required and h.name.lower() not in headers]
    if missing:
        findings.append(_Finding("missing_header", f"required header(s) absent: {', '.join(missing)}"))
    if method == "HEAD" or not response.content:
        return findings
    found = base_media_type(headers.get("content-type", ""))
    media = next((m for m in response.content.values() if base_media_type(m.media_type) == found), None)
    if media is None:
        wildcards = ("*/*", found.split("/", 1)[0] + "/*")
        media = next((m for m in response.content.values() if base_media_type(m.media_type) in wildcards), None)
    if media is None:
        documented = ", ".join(response.content)
        answered = found or "no content type"
        return [*findings, _Finding("undocumented_content_type", f"answered {answered}; documented: {documented}")]
    if not is_json(found) or media.schema is None:
        return findings
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [*findings, _Finding("invalid_json", f"the body is not JSON ({exc})")]
    problems = [f"{p.where}: {p.message}" for p in engine.problems(media.schema, value)]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        findings.append(_Finding("invalid_body", "; ".join(problems[:3]) + more, tuple(problems)))
    return findings


def _documented(op: Operation, status: int) -> Response | None:
    code = str(status)
    return op.responses.get(code) or op.responses.get(f"{code[0]}XX") or op.responses.get("default")
