"""``baton-service.yaml``: a service describing itself for the service-first workflow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from baton.config.topology import MODE_PATTERN, NODE_NAME_PATTERN, NodeRole

__all__ = ["MANIFEST_FILENAME", "Dependency", "ServiceManifest"]

MANIFEST_FILENAME = "baton-service.yaml"


class Dependency(BaseModel):
    """Another service this one calls."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(pattern=NODE_NAME_PATTERN)
    required: bool = True
    expected_api: str = Field(default="", description="The slice of the provider's API this consumer relies on.")

    @model_validator(mode="before")
    @classmethod
    def _accept_optional(cls, data: object) -> object:
        # The original's schema spelled it ``optional: true``; its README ``required: false``.
        if isinstance(data, dict) and "optional" in data and "required" not in data:
            data = {**data, "required": not bool(data["optional"])}
        return data


class ServiceManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(pattern=NODE_NAME_PATTERN)
    version: str = "0.0.0"
    role: NodeRole = NodeRole.SERVICE
    proxy_mode: str = Field(default="http", pattern=MODE_PATTERN)
    port: int = Field(default=0, ge=0, le=65535, description="0 lets Baton pick a free port.")
    command: str = ""
    api_spec: str = ""
    mock_spec: str = ""
    dependencies: list[Dependency] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_self_dependency(self) -> ServiceManifest:
        names = [d.name for d in self.dependencies]
        if self.name in names:
            raise ValueError(f"service {self.name!r} cannot depend on itself")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dependencies must be unique, found {', '.join(dupes)} twice")
        return self
