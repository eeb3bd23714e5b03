"""The service-first workflow: register manifests, derive the circuit, check compatibility."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baton_cli import FIXTURES, run_baton


@pytest.fixture
def services_project(project_dir: Path) -> Path:
    shutil.copytree(FIXTURES / "services", project_dir / "services")
    return project_dir


def test_register_list_and_derive(services_project: Path) -> None:
    p = services_project
    assert run_baton("service", "register", "services/users", cwd=p).code == 0
    registered = run_baton("service", "register", "services/web", "--json", cwd=p).json()
    assert registered == {"service": "web", "directory": "services/web", "added": True}
    assert run_baton("service", "register", "services/web", "--json", cwd=p).json()["added"] is False
    listed = run_baton("service", "list", "--json", cwd=p).json()["services"]
    assert [s["name"] for s in listed] == ["users", "web"]
    assert listed[1]["dependencies"][1] == {"name": "recommendations", "required": False, "expected_api": ""}

    derived = run_baton("service", "derive", "--json", cwd=p).json()
    assert [n["name"] for n in derived["nodes"]] == ["users", "web"]
    assert derived["nodes"][0]["port"] == 8102 and derived["nodes"][0]["contract"] == "services/users/openapi.yaml"
    assert derived["edges"] == [{"source": "web", "target": "users", "label": "depends-on"}]
    assert derived["skipped_optional"] == ["web -> recommendations"]
    assert run_baton("status", "--json", cwd=p).json()["nodes"] == []  # without --save nothing is written

    saved = run_baton("service", "derive", "--save", "--json", cwd=p).json()
    assert saved["added_nodes"] == ["users", "web"] and saved["added_edges"] == ["web -> users"]
    status = run_baton("status", "--json", cwd=p).json()
    assert {n["name"]: n["role"] for n in status["nodes"]} == {"users": "service", "web": "ingress"}
    assert status["edges"] == [{"source": "web", "target": "users", "label": "depends-on"}]
    again = run_baton("service", "derive", "--save", "--json", cwd=p).json()
    assert again["added_nodes"] == [] and again["added_edges"] == []


def test_a_missing_required_dependency_is_an_error(services_project: Path) -> None:
    run_baton("service", "register", "services/audit", cwd=services_project)
    result = run_baton("service", "derive", cwd=services_project)
    assert result.code == 1 and "requires 'ledger'" in result.stderr and "Traceback" not in result.stderr


def test_register_needs_a_manifest(services_project: Path) -> None:
    result = run_baton("service", "register", "services", cwd=services_project)
    assert result.code == 1 and "no baton-service.yaml" in result.stderr


def test_check_reports_incompatibilities(services_project: Path) -> None:
    p = services_project
    run_baton("service", "register", "services/users", cwd=p)
    run_baton("service", "register", "services/web", cwd=p)
    result = run_baton("check", "--json", cwd=p)
    assert result.code == 1
    report = result.json()
    assert report["ok"] is False and report["checked"] == ["web -> users"]
    assert [(f["operation"], f["location"]) for f in report["findings"]] == [
        ("GET /users/{id}", "response 200.display_name")
    ]
    fixed = p / "services" / "web" / "expects-users.yaml"
    fixed.write_text(fixed.read_text().replace("required: [id, email, display_name]", "required: [id, email]"))
    ok = run_baton("check", "--service", "web", cwd=p)
    assert ok.code == 0 and "compatible" in ok.stdout
