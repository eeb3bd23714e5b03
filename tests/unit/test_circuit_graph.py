"""The circuit graph: dependency order, neighbours, cycles."""

from __future__ import annotations

import random

from baton.circuit import CircuitGraph


def test_dependencies_start_first() -> None:
    graph = CircuitGraph.of(["gateway", "api", "users", "stripe"],
                            [("gateway", "api"), ("api", "users"), ("api", "stripe")])
    assert graph.topological_order() == ("users", "stripe", "api", "gateway")
    assert graph.dependencies("api") == ("users", "stripe")
    assert graph.dependents("api") == ("gateway",)
    assert graph.neighbours("api") == ("gateway", "users", "stripe")
    assert graph.cycles() == []


def test_cycles_are_reported_and_ordered_together() -> None:
    graph = CircuitGraph.of(["front", "a", "b", "c", "db"],
                            [("front", "a"), ("a", "b"), ("b", "c"), ("c", "a"), ("b", "db")])
    assert graph.cycles() == [("a", "b", "c")]
    order = graph.topological_order()
    assert order == ("db", "a", "b", "c", "front")


def test_unconnected_nodes_keep_declaration_order() -> None:
    assert CircuitGraph.of(["z", "y", "x"], []).topological_order() == ("z", "y", "x")


def test_transitive_dependents() -> None:
    graph = CircuitGraph.of(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("d", "c")])
    assert set(graph.transitive_dependents("c")) == {"a", "b", "d"}


def test_order_respects_every_edge_on_random_acyclic_graphs() -> None:
    rng = random.Random(7)
    for _ in range(200):
        names = [f"n{i}" for i in range(rng.randint(1, 30))]
        edges = {(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names)) if rng.random() < 0.15}
        # edges point from later-declared to earlier-declared or the reverse, both acyclic by index
        shuffled = names[:]
        rng.shuffle(shuffled)
        graph = CircuitGraph.of(shuffled, edges)
        order = graph.topological_order()
        assert sorted(order) == sorted(names)
        position = {n: i for i, n in enumerate(order)}
        assert all(position[target] < position[source] for source, target in edges)
        assert graph.cycles() == []


def test_self_contained_cycle_count_on_random_graphs() -> None:
    rng = random.Random(11)
    for _ in range(100):
        names = [f"n{i}" for i in range(rng.randint(2, 25))]
        edges = {(a, b) for a in names for b in names if a != b and rng.random() < 0.08}
        graph = CircuitGraph.of(names, edges)
        order = graph.topological_order()
        assert sorted(order) == sorted(names)
        group = {n: i for i, comp in enumerate(graph.components()) for n in comp}
        position = {n: i for i, n in enumerate(order)}
        for source, target in edges:
            if group[source] != group[target]:
                assert position[target] < position[source]
