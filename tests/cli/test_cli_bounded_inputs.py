"""Bounded inputs as a user meets them: hostile baton.yaml, manifests and contracts are refused quickly,
in bounded memory, with one sentence; contract ``$ref``s stay inside the project."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from baton_cli import BATON, run_baton

AS_LIMIT = 2 * 1024**3  # the old code needed far more than this for one 494-byte file


def _laughs(prefix: str = "") -> str:
    """A "billion laughs": nine levels of nine aliases, 10^9 strings once expanded, under 500 bytes."""
    lines = [prefix + 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"{prefix}l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@dataclass
class Bounded:
    code: int
    stderr: str
    seconds: float
    cpu_seconds: float
    max_rss_mb: float


def run_bounded(*args: str, cwd: Path) -> Bounded:
    """``baton ARGS`` under an address-space limit, with this one child's CPU time and peak RSS."""
    env = {**os.environ, "NO_COLOR": "1", "BATON_NO_SCHEDULES": "1", "BATON_NO_CUSTODIAN": "1"}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))

    err = cwd / ".stderr"
    started = time.monotonic()
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([str(BATON), *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                preexec_fn=limit)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    return Bounded(proc.returncode, err.read_text(), seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def assert_refused(result: Bounded, *needles: str) -> None:
    assert result.code in (1, 2), result
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    # The refusal itself is milliseconds; the rest is the interpreter starting and importing Baton.
    assert result.cpu_seconds < 3, result
    assert result.max_rss_mb < 300, result


def test_a_billion_laughs_baton_yaml_is_refused_quickly(project_dir: Path) -> None:
    config = project_dir / "baton.yaml"
    config.write_text(_laughs() + "name: *l8\n")
    assert len(config.read_bytes()) < 500
    result = run_bounded("status", cwd=project_dir)
    assert_refused(result, "baton.yaml line 9", "expected YAML aliases to repeat at most", "&l8")


def test_an_oversized_baton_yaml_is_refused_without_reading_it(project_dir: Path) -> None:
    config = project_dir / "baton.yaml"
    config.write_text("name: big\n" + "# padding\n" * 120_000)
    assert_refused(run_bounded("status", cwd=project_dir), "baton.yaml: expected at most 1 MiB",
                   "BATON_MAX_CONFIG_BYTES")


def test_a_billion_laughs_manifest_is_refused(project_dir: Path, tmp_path: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    (service / "baton-service.yaml").write_text(_laughs("") + "name: svc\nmetadata: {a: *l8}\n")
    result = run_bounded("service", "register", str(service), cwd=project_dir)
    assert_refused(result, "baton-service.yaml line 9", "expected YAML aliases")


def test_a_billion_laughs_contract_is_refused(project_dir: Path) -> None:
    assert run_baton("node", "add", "api", cwd=project_dir).code == 0
    spec = project_dir / "laughs.yaml"
    spec.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\nx-laughs:\n"
                    + _laughs("  ") + "x-all: *l8\n")
    result = run_bounded("contract", "set", "api", str(spec), cwd=project_dir)
    assert_refused(result, "laughs.yaml line 13", "expected YAML aliases")


def test_contract_refs_stay_inside_the_project(project_dir: Path, tmp_path: Path) -> None:
    assert run_baton("node", "add", "api", cwd=project_dir).code == 0
    spec = project_dir / "contracts" / "api.yaml"
    spec.parent.mkdir()
    for ref, needle in [("/etc/passwd#/x", "'/etc/passwd#/x', which points outside it"),
                        ("../../outside.yaml", "which points outside it"),
                        ("https://example.com/schema.yaml", "found the remote 'https://example.com/schema.yaml'")]:
        (tmp_path / "outside.yaml").write_text("type: object\n")
        spec.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n"
                        "      responses:\n        '200':\n          description: ok\n          content:\n"
                        f"            application/json:\n              schema: {{$ref: '{ref}'}}\n")
        result = run_baton("contract", "set", "api", str(spec), cwd=project_dir)
        assert result.code == 1, result
        line = result.stderr.strip()
        assert line.startswith("error: ") and "line 11" in line and needle in line, line
        assert str(project_dir) in line, line
    # a shared schema elsewhere in the project is fine
    (project_dir / "schemas").mkdir()
    (project_dir / "schemas" / "thing.yaml").write_text("type: object\n")
    spec.write_text(spec.read_text().replace("https://example.com/schema.yaml", "../schemas/thing.yaml"))
    assert run_baton("contract", "set", "api", str(spec), cwd=project_dir).code == 0


def test_a_plain_text_contract_is_told_what_a_contract_is(project_dir: Path) -> None:
    assert run_baton("node", "add", "api", cwd=project_dir).code == 0
    spec = project_dir / "notes.txt"
    spec.write_text("this is just some notes about the API\n")
    result = run_baton("contract", "set", "api", str(spec), cwd=project_dir)
    assert result.code == 1
    line = result.stderr.strip()
    assert line.startswith("error: expected an OpenAPI 3.x or JSON Schema document in ")
    assert "notes.txt, found plain text;" in line and "sections" not in line, line
