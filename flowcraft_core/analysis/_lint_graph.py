"""Lint's graph rules: start nodes, reachability, orphans, joins and cycle bounds."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from ..blueprint import NodeDefinition
from ..builtins.names import LOOP_CONTROLLER, LOOP_NAMES
from ..context import cycle_entry_points
from ._shape import _Topology, _topology
from ._types import LintIssue, _Parsed


def _graph_issues(
    parsed: _Parsed,
    graph_ids: Mapping[str, NodeDefinition | None],
    nodes: Mapping[str, NodeDefinition],
    graph_edges: list[tuple[str, str]],
    fed_invalidly: set[str] | frozenset[str] = frozenset(),
) -> list[LintIssue]:
    """Every graph finding, in report order: the start, then each node, then each cycle."""
    entry_points = cycle_entry_points(parsed.metadata)
    topology = _topology(list(graph_ids), graph_edges, entry_points)
    issues: list[LintIssue] = []
    if not topology.has_natural_start:
        issues.append(_no_start_issue(parsed.blueprint_id))
    issues.extend(_node_issues(graph_ids, nodes, topology, fed_invalidly))
    conditional = {
        (edge.source, edge.target) for _, edge in parsed.edges if edge.condition is not None
    }
    issues.extend(_cycle_issues(topology.cycles, nodes, graph_edges, conditional, entry_points))
    return issues


def _no_start_issue(blueprint_id: str) -> LintIssue:
    return LintIssue(
        "NO_START_NODE",
        "warning",
        f"blueprint {blueprint_id!r} has no start node: every node has an "
        "incoming edge, so each closed cycle is entered at a node listed in "
        "metadata.cycleEntryPoints, else at its first node",
    )


def _reachable(topology: _Topology) -> set[str]:
    """The nodes a run can reach from its start nodes (breadth-first, iterative)."""
    reached = set(topology.start_node_ids)
    queue = deque(topology.start_node_ids)
    while queue:
        for target in topology.successors[queue.popleft()]:
            if target not in reached:
                reached.add(target)
                queue.append(target)
    return reached


def _node_issues(
    graph_ids: Iterable[str],
    nodes: Mapping[str, NodeDefinition],
    topology: _Topology,
    fed_invalidly: set[str] | frozenset[str],
) -> list[LintIssue]:
    """Per node, in blueprint order: unreachable, orphaned, or a join with nothing to join."""
    reached = _reachable(topology)
    many = len(topology.node_ids) > 1
    issues: list[LintIssue] = []
    for node_id in graph_ids:
        incoming = topology.incoming[node_id]
        found = (
            None if node_id in reached else _unreachable_issue(node_id),
            _orphan_issue(
                node_id,
                incoming,
                topology.outgoing[node_id],
                fed_invalidly=node_id in fed_invalidly,
                many=many,
            ),
            _join_issue(node_id, nodes.get(node_id), incoming),
        )
        issues.extend(issue for issue in found if issue is not None)
    return issues


def _unreachable_issue(node_id: str) -> LintIssue:
    return LintIssue(
        "UNREACHABLE_NODE",
        "error",
        f"node {node_id!r} cannot be reached from any start node",
        node_id=node_id,
    )


def _orphan_issue(
    node_id: str, incoming: int, outgoing: int, *, fed_invalidly: bool, many: bool
) -> LintIssue | None:
    """An error when only invalid edges feed the node; a warning for a node with no edges at
    all among others (it runs on its own)."""
    if incoming == 0 and fed_invalidly:
        return LintIssue(
            "ORPHAN_NODE",
            "error",
            f"node {node_id!r} is reached only through invalid edges, so it is not "
            "reachable from any start node",
            node_id=node_id,
        )
    if many and incoming == 0 and outgoing == 0:
        return LintIssue(
            "ORPHAN_NODE",
            "warning",
            f"node {node_id!r} has no edges: it runs on its own as a separate start",
            node_id=node_id,
        )
    return None


def _join_issue(node_id: str, node: NodeDefinition | None, incoming: int) -> LintIssue | None:
    """A node that asks for an ``any`` join but has fewer than two inputs to join."""
    if (
        node is None
        or "join_strategy" not in node.config.model_fields_set
        or node.config.join_strategy != "any"
        or incoming >= 2
    ):
        return None
    return LintIssue(
        "JOIN_ON_SINGLE_INPUT",
        "warning",
        f"node {node_id!r} sets joinStrategy 'any' but has {incoming} incoming "
        "edge(s), so there is nothing to join",
        node_id=node_id,
    )


def _cycle_issues(
    cycles: Iterable[list[str]],
    nodes: Mapping[str, NodeDefinition],
    graph_edges: Iterable[tuple[str, str]],
    conditional: set[tuple[str, str]],
    entry_points: list[str],
) -> list[LintIssue]:
    """Each cycle without a loop node or ``maxIterations``: unbounded when a condition guards
    the edge back into its entry, else it runs once."""
    sources_of: dict[str, list[str]] = {}
    for source, target in graph_edges:
        sources_of.setdefault(target, []).append(source)
    issues: list[LintIssue] = []
    for cycle in cycles:
        if _is_controlled(cycle, nodes):
            continue
        members = set(cycle)
        entry = _cycle_entry(cycle, sources_of, entry_points)
        if any(s in members and t == entry for s, t in conditional):
            issues.append(_unbounded_cycle_issue(cycle))
        else:
            issues.append(_cycle_runs_once_issue(cycle))
    return issues


def _is_controlled(cycle: list[str], nodes: Mapping[str, NodeDefinition]) -> bool:
    """True when a member bounds the cycle (a loop node or ``maxIterations``)."""
    # A member that failed validation might carry the bound: do not guess there.
    return any(
        node_id not in nodes
        or nodes[node_id].uses in LOOP_NAMES
        or nodes[node_id].config.max_iterations is not None
        for node_id in cycle
    )


def _cycle_entry(
    cycle: list[str], sources_of: Mapping[str, list[str]], entry_points: list[str]
) -> str:
    """Where the scheduler enters the cycle: a member fed from outside (a listed entry point
    first), else a listed entry point, else its first member."""
    members = set(cycle)
    fed = [n for n in cycle if any(s not in members for s in sources_of.get(n, ()))]
    preferred = [n for n in entry_points if n in members]
    entry = next((n for n in preferred if n in fed), fed[0] if fed else None)
    if entry is None:
        entry = preferred[0] if preferred else cycle[0]
    return entry


def _cycle_path(cycle: list[str]) -> str:
    return " -> ".join(repr(node_id) for node_id in [*cycle, cycle[0]])


def _unbounded_cycle_issue(cycle: list[str]) -> LintIssue:
    return LintIssue(
        "UNBOUNDED_CYCLE",
        "warning",
        f"cycle {_cycle_path(cycle)} repeats while its conditions hold, with no bound but the "
        f"run's bound on node executions: add a {LOOP_CONTROLLER!r} node or set "
        "config.maxIterations on one of its nodes",
        node_id=cycle[0],
    )


def _cycle_runs_once_issue(cycle: list[str]) -> LintIssue:
    return LintIssue(
        "CYCLE_RUNS_ONCE",
        "warning",
        f"cycle {_cycle_path(cycle)} has no loop node: as in flowcraft, each of its nodes runs "
        f"once; add a {LOOP_CONTROLLER!r} node to repeat it",
        node_id=cycle[0],
    )
