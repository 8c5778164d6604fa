"""Shape analysis: start and terminal nodes, cycles, topological order; linear in nodes + edges."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..blueprint import (
    load_blueprint,
)
from ..context import cycle_entry_points
from ..graph_algorithms import cycle_paths, cyclic_components
from ._types import BlueprintInput


@dataclass(frozen=True)
class BlueprintAnalysis:
    """The shape of a blueprint, in blueprint order so output is stable across runs."""

    start_node_ids: list[str]
    terminal_node_ids: list[str]
    #: flowcraft's form: one closed path per cycle found, e.g. ``['A', 'B', 'A']``.
    cycles: list[list[str]]
    is_dag: bool
    node_count: int
    edge_count: int

    def to_dict(self) -> dict[str, Any]:
        """The camelCase form flowcraft's ``analyzeBlueprint`` returns (for APIs and JSON)."""
        return {
            "startNodeIds": list(self.start_node_ids),
            "terminalNodeIds": list(self.terminal_node_ids),
            "cycles": [list(cycle) for cycle in self.cycles],
            "isDag": self.is_dag,
            "nodeCount": self.node_count,
            "edgeCount": self.edge_count,
        }


@dataclass
class _Topology:
    """Adjacency computed once and shared by analysis and lint (only edges between known nodes)."""

    node_ids: list[str]
    successors: dict[str, list[str]]
    incoming: dict[str, int]
    outgoing: dict[str, int]
    cycles: list[list[str]]
    start_node_ids: list[str]
    has_natural_start: bool
    terminal_node_ids: list[str]


def _topology(
    node_ids: Sequence[str],
    edges: Iterable[tuple[str, str]],
    cycle_entry_points: Iterable[str] = (),
) -> _Topology:
    """Degrees, cycles and start nodes of a graph whose edges all join known nodes.

    Start nodes are the nodes without incoming edges. When there is none (the whole graph is made
    of cycles), every cycle that nothing outside it feeds gets one entry, as flowcraft's traverser
    does: a node listed in ``metadata.cycleEntryPoints`` if there is one, else the cycle's first
    node in blueprint order. A closed cycle next to ordinary start nodes gets no entry: it is
    unreachable, and lint says so.
    """
    order = {node_id: index for index, node_id in enumerate(node_ids)}
    successors: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    incoming = dict.fromkeys(node_ids, 0)
    outgoing = dict.fromkeys(node_ids, 0)
    sources_of: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    for source, target in edges:
        successors[source].append(target)
        sources_of[target].append(source)
        outgoing[source] += 1
        incoming[target] += 1

    cycles = [
        sorted(component, key=order.__getitem__)
        for component in cyclic_components(node_ids, successors)
    ]
    cycles.sort(key=lambda cycle: order[cycle[0]])

    starts = [node_id for node_id in node_ids if incoming[node_id] == 0]
    has_natural_start = bool(starts)
    if not starts and cycles:
        preferred = set(cycle_entry_points)
        for cycle in cycles:
            members = set(cycle)
            fed_from_outside = any(
                source not in members for node_id in cycle for source in sources_of[node_id]
            )
            if fed_from_outside:
                continue
            entry = next((node_id for node_id in cycle if node_id in preferred), cycle[0])
            starts.append(entry)
        starts.sort(key=order.__getitem__)

    terminals = [node_id for node_id in node_ids if outgoing[node_id] == 0]
    return _Topology(
        node_ids=list(node_ids),
        successors=successors,
        incoming=incoming,
        outgoing=outgoing,
        cycles=cycles,
        start_node_ids=starts,
        has_natural_start=has_natural_start,
        terminal_node_ids=terminals,
    )


def analyze_blueprint(blueprint: BlueprintInput) -> BlueprintAnalysis:
    """Start nodes, terminal nodes and cycles of a blueprint (a model, a dict or JSON text).

    A dict is loaded (and validated) first, so a broken blueprint raises ``BlueprintError``;
    use ``lint_blueprint`` to get every problem as a list instead.
    """
    model = load_blueprint(blueprint)
    node_ids = [node.id for node in model.nodes]
    successors: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    for edge in model.edges:
        successors[edge.source].append(edge.target)
    topology = _topology(
        [node.id for node in model.nodes],
        ((edge.source, edge.target) for edge in model.edges),
        cycle_entry_points(model.metadata),
    )
    return BlueprintAnalysis(
        start_node_ids=topology.start_node_ids,
        terminal_node_ids=topology.terminal_node_ids,
        cycles=cycle_paths(node_ids, successors),
        is_dag=not topology.cycles,
        node_count=len(model.nodes),
        edge_count=len(model.edges),
    )
