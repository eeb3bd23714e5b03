"""A sighting: one active canary seen at one node, in a request or a response its adapter carried (``GET
/taint``), or in a line its service printed (``.baton/taint_sightings.jsonl``, written by the log pump)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Sighting", "SIGHTINGS_FILE", "parse_sightings"]

SIGHTINGS_FILE = "taint_sightings.jsonl"


class Sighting(BaseModel):
    """As the adapter reports it (``direction`` request or response) or the log pump writes it (``log``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    fingerprint: str = Field(pattern=r"^[0-9a-f]{8}$")
    kind: str = ""
    node: str = Field(min_length=1, description="Where it was seen.")
    direction: Literal["request", "response", "log"] = Field(
        description="request: entering the node from its caller; response: leaving it back to its caller; log: "
                    "printed by its service.")
    part: str = Field(default="", description="header or body; stdout or stderr for a log.")
    header: str = ""
    trace_id: str = ""
    method: str = ""
    path: str = ""
    target: str = ""
    status: int | None = None
    time: float = 0.0
    seq: int = 0
    pid: int | None = None


def parse_sightings(items: Any) -> tuple[list[Sighting], int]:
    """The valid sightings of ``items`` and how many were not one."""
    valid, bad = [], 0
    for item in items if isinstance(items, list | tuple) else ():
        try:
            valid.append(Sighting.model_validate(item))
        except ValidationError:
            bad += 1
    return valid, bad
