"""Where the topology's boxes go: nodes in columns layered by edge direction (a caller left of what it calls),
rows ordered to keep edges short. Pure; the page draws the SVG from these coordinates.

Layers are longest paths from the callers no one calls. Cycles are cut at their back edges (found by a
depth-first walk in declared order), which are kept and drawn, flagged ``back``. Within a layer, nodes follow
the mean row of their callers (one barycentre pass), ties in declared order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Placed", "Layout", "layout", "BOX_W", "BOX_H"]

BOX_W, BOX_H = 168, 60
COLUMN_GAP, ROW_GAP, MARGIN = 84, 30, 24


@dataclass(frozen=True)
class Placed:
    name: str
    layer: int
    row: int
    x: float
    y: float


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    box: tuple[int, int]
    nodes: tuple[Placed, ...]
    edges: tuple[dict[str, Any], ...]  # {source, target, label, back}

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "box": {"w": self.box[0], "h": self.box[1]},
                "nodes": {p.name: asdict(p) for p in self.nodes}, "edges": list(self.edges)}


def _back_edges(names: Sequence[str], out: dict[str, list[str]]) -> set[tuple[str, str]]:
    """Edges that close a cycle in a depth-first walk taken in declared order (iterative: no recursion limit)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    back: set[tuple[str, str]] = set()
    for root in names:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(out[child])))
    return back


def layout(names: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> Layout:
    """Boxes for ``names`` (declared order) and the ``(source, target, label)`` edges between them; edges naming
    an unknown node are left out."""
    known = set(names)
    kept = [(s, t, label) for s, t, label in edges if s in known and t in known and s != t]
    out: dict[str, list[str]] = {n: [] for n in names}
    for s, t, _ in kept:
        if t not in out[s]:
            out[s].append(t)
    back = _back_edges(names, out)
    forward = [(s, t) for s, t, _ in kept if (s, t) not in back]
    callers: dict[str, list[str]] = {n: [] for n in names}
    for s, t in forward:
        callers[t].append(s)

    layer: dict[str, int] = {}
    pending = list(names)
    while pending:  # a DAG once back edges are cut: every pass places at least one node
        rest = []
        for n in pending:
            if all(c in layer for c in callers[n]):
                layer[n] = max((layer[c] + 1 for c in callers[n]), default=0)
            else:
                rest.append(n)
        pending = rest

    columns: dict[int, list[str]] = {}
    for n in names:
        columns.setdefault(layer[n], []).append(n)
    row: dict[str, int] = {}
    for index in sorted(columns):
        members = columns[index]
        order = {n: i for i, n in enumerate(members)}

        def centre(n: str, order: dict[str, int] = order) -> tuple[float, int]:
            placed = [row[c] for c in callers[n] if c in row]
            return (sum(placed) / len(placed) if placed else float(order[n]), order[n])

        members.sort(key=centre)
        for i, n in enumerate(members):
            row[n] = i

    tallest = max((len(m) for m in columns.values()), default=0)
    height = 2 * MARGIN + tallest * BOX_H + max(0, tallest - 1) * ROW_GAP
    width = 2 * MARGIN + len(columns) * BOX_W + max(0, len(columns) - 1) * COLUMN_GAP
    placed = []
    for n in names:
        size = len(columns[layer[n]])
        offset = (tallest - size) * (BOX_H + ROW_GAP) / 2  # shorter columns are centred
        placed.append(Placed(n, layer[n], row[n], x=MARGIN + layer[n] * (BOX_W + COLUMN_GAP),
                             y=MARGIN + offset + row[n] * (BOX_H + ROW_GAP)))
    drawn = tuple({"source": s, "target": t, "label": label, "back": (s, t) in back} for s, t, label in kept)
    return Layout(width=float(width), height=float(height), box=(BOX_W, BOX_H), nodes=tuple(placed), edges=drawn)
