"""The cost guard: a worst-case monthly estimate from ``deploy`` settings, checked before anything is deployed.

Worst case means every node's service running ``max_instances`` instances all month with CPU always
allocated: nodes x instances x (vCPU x vCPU-second price + GiB x GiB-second price) x seconds in 30 days.
Requests and egress are not counted; the figure is a ceiling for instance time, not a bill."""

from __future__ import annotations

from dataclasses import dataclass

from baton.config import DeployConfig
from baton.errors import UsageError

__all__ = ["CostEstimate", "estimate", "check_budget", "MONTH_S"]

MONTH_S = 30 * 24 * 3600


@dataclass(frozen=True)
class CostEstimate:
    services: int
    max_instances: int
    cpu: float
    memory_gib: float
    per_instance_second_usd: float
    monthly_usd: float
    budget_usd: float

    @property
    def within_budget(self) -> bool:
        return self.monthly_usd <= self.budget_usd

    def figures(self) -> str:
        return (f"{self.services} services x {self.max_instances} instances x ({self.cpu:g} vCPU + "
                f"{self.memory_gib:g} GiB at ${self.per_instance_second_usd:.7f} a second) x {MONTH_S} s = "
                f"${self.monthly_usd:,.2f} a month")

    def to_json(self) -> dict[str, float | int | bool]:
        return {"services": self.services, "max_instances": self.max_instances, "cpu": self.cpu,
                "memory_gib": self.memory_gib, "monthly_usd": round(self.monthly_usd, 2),
                "budget_usd": self.budget_usd, "within_budget": self.within_budget}


def estimate(deploy: DeployConfig, services: int) -> CostEstimate:
    memory_gib = deploy.memory_mib / 1024
    per_second = deploy.cpu * deploy.prices.vcpu_second_usd + memory_gib * deploy.prices.gib_second_usd
    monthly = services * deploy.max_instances * per_second * MONTH_S
    return CostEstimate(services=services, max_instances=deploy.max_instances, cpu=deploy.cpu,
                        memory_gib=memory_gib, per_instance_second_usd=per_second, monthly_usd=monthly,
                        budget_usd=deploy.monthly_budget_usd)


def check_budget(deploy: DeployConfig, services: int) -> CostEstimate:
    """The estimate, or a refusal with its figures when it exceeds ``deploy.monthly_budget_usd``."""
    cost = estimate(deploy, services)
    if not cost.within_budget:
        raise UsageError(f"the worst-case cost is over budget: {cost.figures()}, above deploy.monthly_budget_usd "
                         f"${cost.budget_usd:,.2f}; lower deploy.max_instances, cpu or memory_mib, or raise the "
                         "budget.")
    return cost
