"""Taint analysis in the control plane: the registry of seeded canaries (:mod:`.registry`), the judging of
sightings (:mod:`.judge`, pure), the violations file (:mod:`.violations`) and the collector that ties them to
the adapters and the log pumps (:mod:`.collector`). The canary values themselves live in the data plane's
``baton_adapter.taint.values``, which the log pump shares."""

from __future__ import annotations

from baton.taint.judge import edge_of, judge
from baton.taint.registry import (
    CANARIES_FILE,
    MAX_CANARIES,
    Canary,
    Registry,
    append_canaries,
    clear_registry,
    generation,
    load_canaries,
    plan_seed,
    require_taint,
    save_canaries,
    taint_body,
)
from baton.taint.sighting import SIGHTINGS_FILE, Sighting
from baton.taint.violations import (
    VIOLATIONS_FILE,
    Violation,
    append_violations,
    clear_violations,
    group_violations,
    load_violations,
    violation_summary,
)

__all__ = [
    "CANARIES_FILE",
    "MAX_CANARIES",
    "SIGHTINGS_FILE",
    "VIOLATIONS_FILE",
    "Canary",
    "Registry",
    "Sighting",
    "Violation",
    "append_canaries",
    "append_violations",
    "clear_registry",
    "clear_violations",
    "edge_of",
    "generation",
    "group_violations",
    "judge",
    "load_canaries",
    "load_violations",
    "plan_seed",
    "require_taint",
    "save_canaries",
    "taint_body",
    "violation_summary",
]
