"""A blueprint compiled for scheduling: edges and their kinds, loops, cut cycles, instance keys.

Which cycles are loops and which are cut: docs/design.md, section 2, "Loops and cycles".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..blueprint import NodeDefinition, WorkflowBlueprint
from ..builtins.names import LOOP_NAMES
from ..context import cycle_entry_points
from ..errors import FlowcraftError
from ..expressions import CompiledExpression, compile_expression
from ..graph_algorithms import cyclic_components


class EdgeKind(IntEnum):
    """What an edge does in the graph's structure (set once, when the graph is compiled)."""

    #: An ordinary edge.
    NORMAL = 0
    #: Closes a loop: it starts the loop's next pass.
    BACK = 1
    #: Leaves a loop.
    EXIT = 2
    #: Closes a cycle that is not a loop: decided, but it starts nothing.
    CUT = 3


class GraphError(FlowcraftError, ValueError):
    """The blueprint's shape cannot be run (e.g. nested cycles); the message names the nodes."""


class ExecutionLimitError(FlowcraftError, RuntimeError):
    """A run tried to execute more nodes than its bound allows (a cycle that keeps going)."""


class LoopLimitError(FlowcraftError, RuntimeError):
    """A loop tried to start more iterations than its bound allows."""

    def __init__(self, node_id: str, limit: int) -> None:
        super().__init__(f"node {node_id!r}: loop exceeded maxIterations={limit}")
        self.node_id = node_id
        self.limit = limit


def instance_key(node_id: str, iteration: int) -> str:
    """Key of one execution of a node: the id, suffixed ``#k`` from the second iteration on."""
    return node_id if iteration == 0 else f"{node_id}#{iteration}"


def target_iteration(edge: CompiledEdge, iteration: int) -> int:
    """The pass of its target that a decision of ``edge``, made in pass ``iteration`` of its
    source, counts for: a back edge starts the next pass, an edge out of a loop (or outside
    loops) reaches the first, an edge inside a loop stays in its pass."""
    if edge.kind == EdgeKind.BACK:
        return iteration + 1
    if edge.kind == EdgeKind.EXIT or edge.loop is None:
        return 0
    return iteration


def decision_key(edge_index: int, iteration: int) -> str:
    """How a decision is named: its edge's index, suffixed ``@k`` from the second pass on."""
    return str(edge_index) if iteration == 0 else f"{edge_index}@{iteration}"


def split_decision_key(key: str) -> tuple[int, int]:
    """A decision key's edge index and pass (``decision_key`` read back)."""
    index, _, iteration = key.partition("@")
    return int(index), int(iteration) if iteration else 0


def split_key(key: str) -> tuple[str, int]:
    if "#" not in key:
        return key, 0
    node_id, _, it = key.rpartition("#")
    return node_id, int(it)


@dataclass(slots=True)
class CompiledEdge:
    index: int
    source: str
    target: str
    action: str | None
    condition: CompiledExpression | None
    transform: CompiledExpression | None
    kind: EdgeKind = EdgeKind.NORMAL
    loop: int | None = None
    #: Precomputed for the hot path (an edge outside loops, decided on the first pass): its
    #: decision key, whether its target is an ``any`` join, how many inputs the target expects,
    #: and the arrival it brings (the edge and its source instance).
    first_pass_decision_key: str = ""
    any_join: bool = False
    first_pass_inputs: int = 0
    outside_loops: bool = True
    first_pass_arrival: tuple[Any, str] | None = None
    #: Edges from one source to one target form a group counted as one predecessor: ``group``
    #: is the index of the group's first edge, ``group_size`` its number of edges.
    group: int = -1
    group_size: int = 1


@dataclass(slots=True)
class Loop:
    index: int
    members: frozenset[str]
    header: str
    back_edges: list[CompiledEdge]
    exit_edges: list[CompiledEdge]
    max_iterations: int | None


class CompiledGraph:
    """A blueprint prepared for scheduling: adjacency, compiled expressions, loop structure."""

    def __init__(self, blueprint: WorkflowBlueprint) -> None:
        self.blueprint = blueprint
        self.id = blueprint.id
        self.nodes: dict[str, NodeDefinition] = {n.id: n for n in blueprint.nodes}
        self.order = [n.id for n in blueprint.nodes]
        self.out_edges: dict[str, list[CompiledEdge]] = {n: [] for n in self.order}
        self.in_edges: dict[str, list[CompiledEdge]] = {n: [] for n in self.order}
        self.edges: list[CompiledEdge] = []
        self._compile_edges()
        self.loops: list[Loop] = []
        self.loop_of: dict[str, int] = {}
        #: Nodes whose conditional out-edges are decided before action matching (loop
        #: controllers, so a condition can end the loop early).
        self.conditions_first: frozenset[str] = frozenset(
            n.id for n in blueprint.nodes if n.uses in LOOP_NAMES
        )
        self.entry_points: list[str] = cycle_entry_points(blueprint.metadata)
        self._find_loops()
        self._group_twins()
        # Expected incoming edges of iteration 0 and of later iterations, per node.
        self.first_inputs: dict[str, list[CompiledEdge]] = {}
        self.later_inputs: dict[str, list[CompiledEdge]] = {}
        self._expect_inputs()
        self._precompute_hot_path()
        self.start_nodes = [n for n in self.order if not self.first_inputs[n]]
        if self.order and not self.start_nodes:
            raise GraphError(f"blueprint {self.id!r} has no start node (every node has an input)")

    def _compile_edges(self) -> None:
        """The blueprint's edges with their expressions compiled, indexed both ways."""
        # One string object per node id everywhere (edge ends included): dict lookups of run
        # state then match by identity, without comparing the characters.
        canonical = {node_id: node_id for node_id in self.order}
        for index, e in enumerate(self.blueprint.edges):
            edge = CompiledEdge(
                index=index,
                source=canonical[e.source],
                target=canonical[e.target],
                action=e.action,
                condition=compile_expression(e.condition) if e.condition else None,
                transform=compile_expression(e.transform) if e.transform else None,
            )
            self.edges.append(edge)
            self.out_edges[e.source].append(edge)
            self.in_edges[e.target].append(edge)

    def _expect_inputs(self) -> None:
        """Each node's expected incoming edges on its first pass and on later loop passes (an
        edge group counts once; cut edges never count)."""
        for node_id in self.order:
            incoming = [
                e
                for e in self.in_edges[node_id]
                if e.kind != EdgeKind.CUT and e.group in (-1, e.index)
            ]
            self.first_inputs[node_id] = [e for e in incoming if e.kind != EdgeKind.BACK]
            loop_index = self.loop_of.get(node_id)
            if loop_index is None:
                self.later_inputs[node_id] = []
            elif self.loops[loop_index].header == node_id:
                self.later_inputs[node_id] = [e for e in incoming if e.kind == EdgeKind.BACK]
            else:
                self.later_inputs[node_id] = [
                    e for e in incoming if e.kind == EdgeKind.NORMAL and e.loop == loop_index
                ]

    def _precompute_hot_path(self) -> None:
        """What ``Scheduler.complete`` would otherwise work out per edge on every settle."""
        for edge in self.edges:
            edge.first_pass_decision_key = str(edge.index)
            edge.any_join = self.nodes[edge.target].config.join_strategy == "any"
            edge.first_pass_inputs = len(self.first_inputs[edge.target])
            edge.outside_loops = edge.kind == EdgeKind.NORMAL and edge.loop is None
            edge.first_pass_arrival = (edge, edge.source)
        #: Nodes all of whose out-edges are plain, unlabelled and unconditioned (every one is
        #: taken, whatever the result), with those edges: the hot path of ``complete``.
        self.take_all: dict[str, list[CompiledEdge]] = {
            n: self.out_edges[n]
            for n in self.order
            if all(
                e.outside_loops and e.action is None and e.condition is None and e.group_size == 1
                for e in self.out_edges[n]
            )
        }

    def _group_twins(self) -> None:
        """Edges from one source to one target are one predecessor (a loop's exits aside:
        their not-taken decisions wait for the loop's end)."""
        first: dict[tuple[str, str], CompiledEdge] = {}
        for edge in self.edges:
            if edge.kind not in (EdgeKind.NORMAL, EdgeKind.BACK):
                continue
            primary = first.setdefault((edge.source, edge.target), edge)
            if primary is not edge:
                primary.group = primary.index
                edge.group = primary.index
        sizes: dict[int, int] = {}
        for edge in self.edges:
            if edge.group >= 0:
                sizes[edge.group] = sizes.get(edge.group, 0) + 1
        for edge in self.edges:
            if edge.group >= 0:
                edge.group_size = sizes[edge.group]

    def cycle_through(self, node_id: str) -> list[str]:
        """The members of the loop or cycle holding ``node_id``, in blueprint order."""
        loop_index = self.loop_of.get(node_id)
        if loop_index is not None:
            members = self.loops[loop_index].members
        else:
            members = frozenset(self._cycle_members.get(node_id, (node_id,)))
        return [n for n in self.order if n in members]

    def _repeats(self, members: frozenset[str]) -> bool:
        """A cycle is a loop when something decides to go round again: a loop node, a
        ``maxIterations`` bound, or a condition on an edge that closes it (into its entry)."""
        if any(
            self.nodes[n].uses in LOOP_NAMES or self.nodes[n].config.max_iterations is not None
            for n in members
        ):
            return True
        header = self._pick_header(members, lambda e: True)
        return any(e.condition is not None for e in self.in_edges[header] if e.source in members)

    def _pick_header(self, members: frozenset[str], inside: Any) -> str:
        """The entry of a cycle: a member fed from outside it (a listed cycle entry point
        first), else a listed entry point, else its first member in blueprint order."""
        position = self._position
        preferred = [n for n in self.entry_points if n in members]
        entries = [
            n
            for n in sorted(members, key=position.__getitem__)
            if any(e.source not in members for e in self.in_edges[n] if inside(e))
        ]
        if entries:
            return next((n for n in preferred if n in entries), entries[0])
        if preferred:
            return preferred[0]
        return min(members, key=position.__getitem__)

    def _find_loops(self) -> None:
        self._position = {n: i for i, n in enumerate(self.order)}
        self._cycle_members: dict[str, tuple[str, ...]] = {}
        successors = {n: [e.target for e in self.out_edges[n]] for n in self.order}
        position = self._position
        for component in cyclic_components(self.order, successors):
            members = frozenset(component)
            if not self._repeats(members):
                self._cut_cycle(members)
                continue
            loop_index = len(self.loops)
            header = self._pick_header(members, lambda e: True)
            back: list[CompiledEdge] = []
            exits: list[CompiledEdge] = []
            for node_id in members:
                self.loop_of[node_id] = loop_index
                for edge in self.out_edges[node_id]:
                    if edge.target == header:
                        edge.kind = EdgeKind.BACK
                        back.append(edge)
                    elif edge.target not in members:
                        edge.kind = EdgeKind.EXIT
                        exits.append(edge)
                    edge.loop = loop_index
            limits: list[int] = []
            for n in members:
                bound = self.nodes[n].config.max_iterations
                if bound is not None:
                    limits.append(bound)
            for node_id in members:
                node = self.nodes[node_id]
                if node.uses in LOOP_NAMES and "maxIterations" in node.params:
                    limits.append(int(node.params["maxIterations"]) + 1)
            self.loops.append(
                Loop(
                    index=loop_index,
                    members=members,
                    header=header,
                    back_edges=sorted(back, key=lambda e: e.index),
                    exit_edges=sorted(exits, key=lambda e: e.index),
                    max_iterations=min(limits) if limits else None,
                )
            )
            # Inside a loop, the edges other than back edges must not form another cycle.
            forward = {
                n: [
                    e.target
                    for e in self.out_edges[n]
                    if e.target in members and e.kind != EdgeKind.BACK
                ]
                for n in members
            }
            nested = cyclic_components(sorted(members, key=position.__getitem__), forward)
            if nested:
                names = ", ".join(repr(n) for n in nested[0])
                raise GraphError(
                    f"blueprint {self.id!r}: nested cycle through {names} inside the loop "
                    f"headed by {header!r}; nested loops must be expressed as subflows"
                )

    def _cut_cycle(self, members: frozenset[str]) -> None:
        """Cut the edges into the entry of a cycle that is not a loop, until none is left."""
        ordered = tuple(sorted(members, key=self._position.__getitem__))
        for node_id in ordered:
            self._cycle_members[node_id] = ordered
        pending = [members]
        while pending:
            group = pending.pop()
            header = self._pick_header(group, lambda e: e.kind != EdgeKind.CUT)
            for node_id in group:
                for edge in self.out_edges[node_id]:
                    if edge.target == header and edge.kind != EdgeKind.CUT:
                        edge.kind = EdgeKind.CUT
            rest = {
                n: [
                    e.target
                    for e in self.out_edges[n]
                    if e.target in group and e.kind != EdgeKind.CUT
                ]
                for n in group
            }
            ordered_group = sorted(group, key=self._position.__getitem__)
            pending.extend(frozenset(c) for c in cyclic_components(ordered_group, rest))

    def inputs_of(self, node_id: str, iteration: int) -> list[CompiledEdge]:
        return self.first_inputs[node_id] if iteration == 0 else self.later_inputs[node_id]
