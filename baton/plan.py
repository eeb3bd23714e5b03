"""``baton apply``: the one plan engine that converges a running circuit on
``baton.yaml``. Pure: it compares what is declared with what runs and returns
ordered steps; flows carry them out and ``--dry-run`` prints them.

Step kinds, in the order they run:
  boot            nothing runs: start every node (as ``up``)
  remove-node     stop the node's services; its host restarts without it
  reboot-host     restart an adapter host with new node settings (services keep running)
  add-node        start a new adapter host for nodes that have none
  respawn-service restart a live service whose BATON_<DEP>_URL variables changed (a swap)
  set-routing     install the routing baton.yaml declares for a node
  clear-routing   back to a single backend where baton.yaml declares no routing
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Step", "Plan", "make_plan", "ADAPTER_FIELDS"]

# What a running adapter must agree with baton.yaml on (backend and routing are runtime state).
ADAPTER_FIELDS = ("host", "port", "management_port", "mode", "role", "contract", "policy", "token_env")


@dataclass(frozen=True)
class Step:
    kind: str
    target: str
    reason: str
    nodes: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["nodes"] = list(self.nodes)
        out["data"] = dict(self.data)
        return out

    def describe(self) -> str:
        return f"{self.kind:<16} {self.target:<20} {self.reason}"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    @property
    def empty(self) -> bool:
        return not self.steps

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]


def _adapter_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in ADAPTER_FIELDS if entry.get(k) not in (None, "")}


def _changed_fields(running: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    a, b = _adapter_view(running), _adapter_view(wanted)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _normal_routing(routing: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Routing as compared: None for a plain single backend; defaults filled in."""
    if not routing or routing.get("strategy", "single") == "single" and not routing.get("locked"):
        return None
    targets = [{"name": t.get("name"), "host": t.get("host", "127.0.0.1"), "port": t.get("port"),
                "weight": t.get("weight", 100)} for t in routing.get("targets") or []]
    rules = [{"header": r.get("header"), "value": r.get("value"), "target": r.get("target")}
             for r in routing.get("rules") or []]
    return {"strategy": routing.get("strategy", "single"), "targets": targets, "rules": rules,
            "default_target": routing.get("default_target") or "", "locked": bool(routing.get("locked"))}


def make_plan(
    *,
    declared_nodes: list[str],
    wanted_entries: Mapping[str, Mapping[str, Any]],
    running: bool,
    hosts: Mapping[str, list[str]],
    running_entries: Mapping[str, Mapping[str, Any]],
    wanted_routing: Mapping[str, Mapping[str, Any]],
    running_routing: Mapping[str, Mapping[str, Any] | None],
    live_services: Mapping[str, Mapping[str, str]],
    wanted_env: Mapping[str, Mapping[str, str]],
) -> Plan:
    """Steps that make the running circuit match the declared one.

    ``wanted_entries``/``running_entries``: adapter config entries per node (declared / as started);
    ``hosts``: host id -> hosted nodes; ``live_services``: node -> the BATON_* env its service got;
    ``wanted_env``: node -> the dependency env it should have now.
    """
    if not running:
        return Plan((Step("boot", "circuit", "nothing is running", tuple(declared_nodes)),))
    steps: list[Step] = []
    declared = set(declared_nodes)
    hosted = {n for nodes in hosts.values() for n in nodes}
    for host_id, nodes in hosts.items():
        removed = [n for n in nodes if n not in declared]
        for node in removed:
            steps.append(Step("remove-node", node, "no longer in baton.yaml", (node,)))
        changed = {n: _changed_fields(running_entries.get(n, {}), wanted_entries[n])
                   for n in nodes if n in declared}
        changed = {n: f for n, f in changed.items() if f}
        keep = tuple(n for n in nodes if n in declared)
        if removed or changed:
            why = "; ".join([f"{n}: {', '.join(f)} changed" for n, f in changed.items()]
                            + ([f"without {', '.join(removed)}"] if removed else []))
            if keep:
                steps.append(Step("reboot-host", host_id, why, keep))
            else:
                steps.append(Step("stop-host", host_id, why, ()))
    added = tuple(n for n in declared_nodes if n not in hosted)
    if added:
        steps.append(Step("add-node", ", ".join(added), "declared but not running", added))
    for node, env in live_services.items():
        if node in declared:
            old = {k: v for k, v in env.items() if k.endswith("_URL")}
            new = dict(wanted_env.get(node, {}))
            if old != new:
                diff = sorted(set(old.items()) ^ set(new.items()))
                steps.append(Step("respawn-service", node, f"dependencies changed ({', '.join(k for k, _ in diff)})",
                                  (node,)))
    for node in declared_nodes:
        wanted = _normal_routing(wanted_routing.get(node))
        current = _normal_routing(running_routing.get(node))
        if wanted == current:
            continue
        if wanted is None:
            steps.append(Step("clear-routing", node, f"baton.yaml declares no routing (running: {current['strategy']})",
                              (node,)))
        else:
            steps.append(Step("set-routing", node, f"{wanted['strategy']} routing declared", (node,),
                              dict(wanted_routing[node])))
    return Plan(tuple(steps))
