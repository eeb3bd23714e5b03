"""The circuit as a directed graph: who calls whom, in which order to start
things, and which dependency cycles exist.

An edge ``source -> target`` means *source calls target*, so targets are
dependencies and start first. Cycles are allowed; their members start
together, in declaration order, after everything they depend on.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["CircuitGraph"]


@dataclass(frozen=True)
class CircuitGraph:
    """A read-only view of nodes (in declaration order) and edges."""

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    _out: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _in: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        out: dict[str, list[str]] = {n: [] for n in self.nodes}
        inc: dict[str, list[str]] = {n: [] for n in self.nodes}
        for source, target in self.edges:
            if source not in out or target not in out:
                raise ValueError(f"edge {source} -> {target} names a node outside the graph")
            out[source].append(target)
            inc[target].append(source)
        object.__setattr__(self, "_out", {k: tuple(v) for k, v in out.items()})
        object.__setattr__(self, "_in", {k: tuple(v) for k, v in inc.items()})

    @classmethod
    def from_config(cls, config: object) -> CircuitGraph:
        """Build from anything with ``nodes[].name`` and ``edges[].source/target``."""
        return cls(
            nodes=tuple(n.name for n in config.nodes),  # type: ignore[attr-defined]
            edges=tuple((e.source, e.target) for e in config.edges),  # type: ignore[attr-defined]
        )

    @classmethod
    def of(cls, nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> CircuitGraph:
        return cls(tuple(nodes), tuple(edges))

    # -- neighbourhoods --------------------------------------------------------

    def dependencies(self, name: str) -> tuple[str, ...]:
        """Nodes that ``name`` calls."""
        return self._out[name]

    def dependents(self, name: str) -> tuple[str, ...]:
        """Nodes that call ``name``."""
        return self._in[name]

    def neighbours(self, name: str) -> tuple[str, ...]:
        """Nodes directly connected to ``name`` either way, in declaration order."""
        linked = set(self._out[name]) | set(self._in[name])
        return tuple(n for n in self.nodes if n in linked)

    def transitive_dependents(self, name: str) -> tuple[str, ...]:
        """Every node whose calls reach ``name``, nearest first."""
        seen: list[str] = []
        frontier = list(self._in[name])
        while frontier:
            current = frontier.pop(0)
            if current == name or current in seen:
                continue
            seen.append(current)
            frontier.extend(self._in[current])
        return tuple(seen)

    # -- structure ---------------------------------------------------------------

    def components(self) -> list[tuple[str, ...]]:
        """Strongly connected components (Tarjan, iterative), members in declaration order."""
        index_of: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        result: list[tuple[str, ...]] = []
        counter = 0
        for root in self.nodes:
            if root in index_of:
                continue
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, child = work.pop()
                if child == 0:
                    index_of[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                targets = self._out[node]
                if child < len(targets):
                    work.append((node, child + 1))
                    nxt = targets[child]
                    if nxt not in index_of:
                        work.append((nxt, 0))
                    elif nxt in on_stack:
                        low[node] = min(low[node], index_of[nxt])
                    continue
                if low[node] == index_of[node]:
                    members: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.add(member)
                        if member == node:
                            break
                    result.append(tuple(n for n in self.nodes if n in members))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        return result

    def cycles(self) -> list[tuple[str, ...]]:
        """Groups of nodes that (transitively) call each other."""
        return [c for c in self.components() if len(c) > 1]

    def topological_order(self) -> tuple[str, ...]:
        """Dependencies first; ties and cycle members in declaration order."""
        position = {n: i for i, n in enumerate(self.nodes)}
        groups = self.components()
        group_of = {member: g for g, members in enumerate(groups) for member in members}
        waiting = [0] * len(groups)  # number of distinct dependency groups not yet placed
        dependents_of: list[set[int]] = [set() for _ in groups]
        for g, members in enumerate(groups):
            deps = {group_of[t] for m in members for t in self._out[m]} - {g}
            waiting[g] = len(deps)
            for d in deps:
                dependents_of[d].add(g)
        ready = [(position[groups[g][0]], g) for g in range(len(groups)) if waiting[g] == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, g = heapq.heappop(ready)
            order.extend(groups[g])
            for d in dependents_of[g]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    heapq.heappush(ready, (position[groups[d][0]], d))
        return tuple(order)
