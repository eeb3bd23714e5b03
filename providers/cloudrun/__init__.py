"""Google Cloud Run: each node a Cloud Run service (adapter as ingress, service as sidecar), versions as
revisions, routing as native traffic splits, every API call through the provider's gate, a cost guard first."""

from providers.cloudrun.api import CloudRunApi, CloudRunError
from providers.cloudrun.cost import CostEstimate, check_budget, estimate
from providers.cloudrun.gate import ApiGate, GateRefused
from providers.cloudrun.provider import CloudRunProvider

__all__ = ["ApiGate", "CloudRunApi", "CloudRunError", "CloudRunProvider", "CostEstimate", "GateRefused",
           "check_budget", "estimate"]
