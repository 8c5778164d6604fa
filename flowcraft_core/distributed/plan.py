"""What the distributed driver derives once per blueprint: where each decided edge arrives.

Everything here is pure and built from ``CompiledGraph`` (the scheduler's view of edges,
iterations and loops), so the distributed driver follows exactly the rules the in-memory one
does: the instance an edge reaches, the incoming edges an instance expects, which of them
make an ``any`` join, and the virtual *end* join every sink, ``any`` join and loop reports to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..expressions import ExpressionError
from ..scheduler import (
    CompiledEdge,
    CompiledGraph,
    EdgeKind,
    LoopLimitError,
    choose_edges,
    edge_failure_message,
    failing_edge,
    instance_key,
    split_key,
    target_iteration,
)
from .errors import EdgeFailed

NORMAL, BACK, EXIT, CUT = EdgeKind.NORMAL, EdgeKind.BACK, EdgeKind.EXIT, EdgeKind.CUT
#: Passes a loop without a declared bound may make before its run fails (no run spins forever).
DEFAULT_MAX_PASSES = 10_000


@dataclass
class Plan:
    graph: CompiledGraph
    #: End-join inputs: ("node", id) for sinks, ("any", id) for ``any`` joins (all their inputs
    #: arrived), ("loop", index) for loops (ended).
    end_inputs: list[tuple[str, Any]] = field(default_factory=list)
    end_position: dict[tuple[str, Any], int] = field(default_factory=dict)
    #: Loop index -> member id -> position (for the iteration-settled sets).
    member_position: dict[int, dict[str, int]] = field(default_factory=dict)
    #: (target, later pass) -> edge index -> (position, expected inputs): a join's thousandth
    #: arrival finds its place as fast as its first.
    _positions: dict[tuple[str, bool], dict[int, tuple[int, int]]] = field(default_factory=dict)
    _groups: dict[int, list[CompiledEdge]] = field(default_factory=dict)

    @classmethod
    def of(cls, graph: CompiledGraph) -> Plan:
        plan = cls(graph)
        for node_id in graph.order:
            if node_id in graph.loop_of:
                continue
            if all(e.kind == CUT for e in graph.out_edges[node_id]):
                # No edge that starts anything leaves it (none, or only a cycle's closing one).
                plan.end_inputs.append(("node", node_id))
            if plan.is_any_join(node_id) and len(graph.first_inputs[node_id]) > 1:
                # Its late inputs may still be running when it fires: the run ends only once
                # every one of them has arrived.
                plan.end_inputs.append(("any", node_id))
        plan.end_inputs.extend(("loop", loop.index) for loop in graph.loops)
        plan.end_position = {entry: i for i, entry in enumerate(plan.end_inputs)}
        for loop in graph.loops:
            ordered = [n for n in graph.order if n in loop.members]
            plan.member_position[loop.index] = {n: i for i, n in enumerate(ordered)}
        return plan

    # ------------------------------------------------------------------ edges
    def is_any_join(self, node_id: str) -> bool:
        return self.graph.nodes[node_id].config.join_strategy == "any"

    def target_iteration(self, edge: CompiledEdge, iteration: int) -> int:
        return target_iteration(edge, iteration)

    def expected(self, node_id: str, iteration: int) -> list[CompiledEdge]:
        return self.graph.inputs_of(node_id, iteration)

    def position(self, edge: CompiledEdge, iteration: int) -> tuple[int, int]:
        """(position of ``edge`` among its target's expected inputs, how many there are)."""
        later = iteration > 0
        positions = self._positions.get((edge.target, later))
        if positions is None:
            expected = self.expected(edge.target, iteration)
            positions = {e.index: (p, len(expected)) for p, e in enumerate(expected)}
            self._positions[edge.target, later] = positions
        found = positions.get(edge.index)
        if found is None:
            raise LookupError(f"edge {edge.index} does not reach {edge.target}#{iteration}")
        return found

    def group_of(self, edge: CompiledEdge) -> list[CompiledEdge]:
        """The edges counted as one predecessor with ``edge`` (one source, one target): the
        group in blueprint order, or ``edge`` alone."""
        if edge.group_size <= 1:
            return [edge]
        members = self._groups.get(edge.group)
        if members is None:
            members = [e for e in self.graph.edges if e.group == edge.group]
            self._groups[edge.group] = members
        return members

    def source_instance(self, edge: CompiledEdge, iteration: int) -> str | None:
        """The instance whose decision this incoming edge of ``<target>#iteration`` carries
        (None for a loop exit: which pass took it is recorded when it is taken)."""
        if edge.kind == EXIT:
            return None
        if edge.kind == BACK:
            return instance_key(edge.source, iteration - 1)
        if edge.loop is None:
            return instance_key(edge.source, 0)
        return instance_key(edge.source, iteration)

    def decide(
        self,
        key: str,
        output: Any,
        action: str | None,
        context: Mapping[str, Any],
        node_input: Any,
    ) -> dict[int, bool]:
        """The edge decisions of a completed instance (the scheduler's rules): a loop exit not
        taken is left undecided (it is decided when the loop ends)."""
        node_id, iteration = split_key(key)
        decided: dict[int, bool] = {}
        edges = self.graph.out_edges[node_id]
        try:
            choices = choose_edges(
                edges,
                action,
                output,
                context,
                node_input,
                conditions_first=node_id in self.graph.conditions_first,
            )
        except ExpressionError as exc:
            failure = self._edge_failure(node_id, edges, action, output, context, node_input, exc)
            raise failure from exc
        for edge, taken in choices:
            if edge.kind == EXIT and not taken:
                continue
            if edge.kind == BACK and taken:
                loop = self.graph.loops[edge.loop]  # type: ignore[index]
                limit = loop.max_iterations or DEFAULT_MAX_PASSES
                if iteration + 1 >= limit:
                    raise LoopLimitError(edge.target, limit)
            decided[edge.index] = taken
        return decided

    @staticmethod
    def _edge_failure(
        node_id: str,
        edges: list[CompiledEdge],
        action: str | None,
        output: Any,
        context: Mapping[str, Any],
        node_input: Any,
        error: ExpressionError,
    ) -> Exception:
        """Name the edge whose condition failed (conditions are evaluated one by one)."""
        found = failing_edge(edges, action, output, context, node_input)
        if found is None:
            return error
        return EdgeFailed(edge_failure_message(node_id, *found))

    def skipped_decisions(self, node_id: str) -> dict[int, bool]:
        """A skipped instance decides its edges as not taken (exits wait for the loop's end)."""
        return {e.index: False for e in self.graph.out_edges[node_id] if e.kind != EXIT}
