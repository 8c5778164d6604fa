"""The one place that decides what follows a node: edges, joins, skips, loops, completion.

Both drivers use this module. The in-memory runtime keeps one ``Scheduler`` for a whole run;
the distributed worker decides a node's edges with ``choose_edges`` and builds its input with
``Scheduler.for_input``, and its slow paths (the reconciler, whole-run views) rebuild one from
the node records (``Scheduler.restore``). The rules (docs/design.md):

* a result's ``action`` selects the edges labelled with it; with no action, or an action no edge
  is labelled with, the unlabelled edges are the default route; a ``condition`` must also hold;
* a node whose incoming edges are all decided and none taken is *skipped*, and the skip flows on;
* ``all`` joins fire once every incoming edge is decided and at least one was taken; ``any``
  joins fire on the first taken edge and ignore later arrivals;
* a cycle that holds a loop node (``loop``/``loop-controller``), a node with
  ``config.maxIterations`` or a condition on an edge into its entry is a loop: each pass is
  a new *iteration* of its nodes (instance key ``node#k``), its back edges start the next
  iteration, and the edges that leave it are decided as not taken only once the loop ended;
* any other cycle runs each of its nodes once, as in flowcraft: the edges that close it (into
  its entry node) are *cut*: decided like any edge, but they start nothing and nothing waits for
  them. A cycle that nothing feeds is entered at a node listed in ``metadata.cycleEntryPoints``,
  else at its first node in blueprint order;
* several edges from one source to one target count as one predecessor (taken when any is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from .blueprint import NodeDefinition, WorkflowBlueprint
from .builtins.names import LOOP_NAMES
from .context import INPUTS_PREFIX, OUTPUTS_PREFIX, ExpressionScope, cycle_entry_points
from .errors import FlowcraftError
from .expressions import CompiledExpression, ExpressionError, compile_expression, is_truthy
from .graph_algorithms import cyclic_components
from .status import COMPLETED, FAILED, SKIPPED


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


_NORMAL, _BACK, _EXIT, _CUT = EdgeKind.NORMAL, EdgeKind.BACK, EdgeKind.EXIT, EdgeKind.CUT

#: Join verdicts (``join_verdict``).
WAIT, READY, SKIP = 0, 1, 2


def join_verdict(taken: bool, any_join: bool, undecided: int, arrived: bool) -> int:
    """What one decided incoming edge means for its target (not yet fired or settled).

    ``any`` joins fire on the first taken edge; otherwise a target waits until every incoming
    edge is decided, then fires if one was taken (``arrived``) and is skipped if none was.
    """
    if taken and any_join:
        return READY
    if undecided == 0:
        return READY if arrived else SKIP
    return WAIT


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
    kind: EdgeKind = _NORMAL
    loop: int | None = None
    #: Precomputed for the hot path (an edge outside loops, decided on the first pass): its
    #: decision key, whether its target is an ``any`` join, how many inputs the target expects,
    #: and the arrival it brings (the edge and its source instance).
    decision_key0: str = ""
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
        # One string object per node id everywhere (edge ends included): dict lookups of run
        # state then match by identity, without comparing the characters.
        canonical = {node_id: node_id for node_id in self.order}
        for index, e in enumerate(blueprint.edges):
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
        for node_id in self.order:
            incoming = [
                e for e in self.in_edges[node_id] if e.kind != _CUT and e.group in (-1, e.index)
            ]
            self.first_inputs[node_id] = [e for e in incoming if e.kind != _BACK]
            loop_index = self.loop_of.get(node_id)
            if loop_index is None:
                self.later_inputs[node_id] = []
            elif self.loops[loop_index].header == node_id:
                self.later_inputs[node_id] = [e for e in incoming if e.kind == _BACK]
            else:
                self.later_inputs[node_id] = [
                    e for e in incoming if e.kind == _NORMAL and e.loop == loop_index
                ]
        for edge in self.edges:
            edge.decision_key0 = str(edge.index)
            edge.any_join = self.nodes[edge.target].config.join_strategy == "any"
            edge.first_pass_inputs = len(self.first_inputs[edge.target])
            edge.outside_loops = edge.kind == _NORMAL and edge.loop is None
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
        self.always_taken: frozenset[str] = frozenset(self.take_all)
        self.start_nodes = [n for n in self.order if not self.first_inputs[n]]
        if self.order and not self.start_nodes:
            raise GraphError(f"blueprint {self.id!r} has no start node (every node has an input)")

    def _group_twins(self) -> None:
        """Edges from one source to one target are one predecessor (a loop's exits aside:
        their not-taken decisions wait for the loop's end)."""
        first: dict[tuple[str, str], CompiledEdge] = {}
        for edge in self.edges:
            if edge.kind not in (_NORMAL, _BACK):
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
                        edge.kind = _BACK
                        back.append(edge)
                    elif edge.target not in members:
                        edge.kind = _EXIT
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
                n: [e.target for e in self.out_edges[n] if e.target in members and e.kind != _BACK]
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
            header = self._pick_header(group, lambda e: e.kind != _CUT)
            for node_id in group:
                for edge in self.out_edges[node_id]:
                    if edge.target == header and edge.kind != _CUT:
                        edge.kind = _CUT
            rest = {
                n: [e.target for e in self.out_edges[n] if e.target in group and e.kind != _CUT]
                for n in group
            }
            ordered_group = sorted(group, key=self._position.__getitem__)
            pending.extend(frozenset(c) for c in cyclic_components(ordered_group, rest))

    def inputs_of(self, node_id: str, iteration: int) -> list[CompiledEdge]:
        return self.first_inputs[node_id] if iteration == 0 else self.later_inputs[node_id]


def _result_scope(output: Any, action: str | None) -> dict[str, Any]:
    """``result`` in expressions: ``result.output``/``result.action``, plus the output's keys."""
    scope: dict[str, Any] = dict(output) if isinstance(output, Mapping) else {}
    scope["output"] = output
    scope["action"] = action
    return scope


def failing_edge(
    edges: list[CompiledEdge],
    action: str | None,
    output: Any,
    context: Mapping[str, Any],
    node_input: Any = None,
) -> tuple[CompiledEdge, ExpressionError] | None:
    """The edge whose condition cannot be evaluated on this result, and why (conditions are
    tried one by one); None when every one evaluates. Both drivers report an edge failure with
    it, keeping the node's output."""
    for edge in edges:
        if edge.condition is None:
            continue
        try:
            choose_edges([edge], edge.action or action, output, context, node_input)
        except ExpressionError as exc:
            return edge, exc
    return None


def edge_failure_message(source: str, edge: CompiledEdge, error: Exception) -> str:
    expression = edge.condition.source if edge.condition is not None else ""
    return (
        f"node {source!r}: edge {source} -> {edge.target}: condition {expression!r} "
        f"could not be evaluated: {error}"
    )


def choose_edges(
    edges: list[CompiledEdge],
    action: str | None,
    output: Any,
    context: Mapping[str, Any],
    node_input: Any = None,
    *,
    conditions_first: bool = False,
) -> list[tuple[CompiledEdge, bool]]:
    """Decide each outgoing edge of a completed node: taken or not.

    Conditions see ``result``, ``output``, ``input`` and ``context``; any other name is read
    from the context (and node outputs), as flowcraft evaluates conditions over the context.
    With ``conditions_first`` (loop controllers), the conditional edges are evaluated before
    action matching: if any holds, exactly those are taken.
    """
    if not edges:
        return []
    scope: ExpressionScope | None = None
    if conditions_first and any(e.condition is not None for e in edges):
        scope = _condition_scope(output, action, context, node_input)
        held = {
            e.index
            for e in edges
            if e.condition is not None and is_truthy(e.condition.evaluate(scope))
        }
        if held:
            return [(e, e.index in held) for e in edges]
    route_labelled = action is not None and any(e.action == action for e in edges)
    decisions = []
    for edge in edges:
        taken = edge.action == action if route_labelled else edge.action is None
        if taken and edge.condition is not None:
            if scope is None:
                scope = _condition_scope(output, action, context, node_input)
            taken = is_truthy(edge.condition.evaluate(scope))
        decisions.append((edge, taken))
    return decisions


def _condition_scope(
    output: Any, action: str | None, context: Mapping[str, Any], node_input: Any
) -> ExpressionScope:
    fixed = {
        "context": context,
        "result": _result_scope(output, action),
        "output": output,
        "input": node_input,
    }
    return ExpressionScope(fixed, context)


def apply_transform(
    edge: CompiledEdge, output: Any, context: Mapping[str, Any], action: str | None = None
) -> Any:
    if edge.transform is None:
        return output
    fixed = {
        "input": output,
        "output": output,
        "result": _result_scope(output, action),
        "context": context,
    }
    return edge.transform.evaluate(ExpressionScope(fixed, context))


#: Marks an instance whose arrivals were used to build its input.
_CONSUMED: tuple[()] = ()


@dataclass(slots=True)
class Settlement:
    """What settling one node decided."""

    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: The edge decisions made (None when the caller said it does not need them).
    decisions: dict[str, bool] | None = field(default_factory=dict)


class Scheduler:
    """Run-level bookkeeping over a compiled graph (one per run, or rebuilt per job)."""

    __slots__ = (
        "_arrivals",
        "_exit_taken",
        "_fired",
        "_implied",
        "_loop_done",
        "_loop_settled",
        "_never",
        "_twins",
        "_undecided",
        "actions",
        "decisions",
        "fired_by",
        "graph",
        "latest",
        "outputs",
        "settled",
    )

    def __init__(self, graph: CompiledGraph) -> None:
        self.graph = graph
        self.settled: dict[str, str] = {}
        self.outputs: dict[str, Any] = {}
        #: node id -> output of its latest completed iteration after the first (``output_of``).
        self.latest: dict[str, Any] = {}
        self.actions: dict[str, str | None] = {}
        #: Edge decisions by key (``index`` or ``index@iteration``); see ``all_decisions``.
        self.decisions: dict[str, bool] = {}
        self._undecided: dict[str, int] = {}
        # Taken incoming edges per instance; replaced by _CONSUMED once the input is built,
        # so a long run does not keep them alive (fewer objects for the cyclic GC to walk).
        self._arrivals: dict[str, Any] = {}
        self._fired: set[str] = set()
        self._loop_settled: dict[tuple[int, int], int] = {}
        self._loop_done: set[tuple[int, int]] = set()
        self._never: set[str] = set()  # loop iterations that were never started
        self._exit_taken: set[int] = set()  # loop exits taken in some iteration
        #: ``any`` joins: the decision key of the arrival that fired each one (its owner).
        self.fired_by: dict[str, str] = {}
        #: Edge groups (one source, one target) part-decided: (group, iteration) -> (decided,
        #: first taken edge).
        self._twins: dict[tuple[int, int], tuple[int, CompiledEdge | None]] = {}
        #: Out-edge lists of nodes whose (all taken) decisions were not written out.
        self._implied: list[list[CompiledEdge]] = []

    # ----------------------------------------------------------------- starting and restoring
    def start(self) -> Settlement:
        step = Settlement(ready=list(self.graph.start_nodes))
        self._fired.update(step.ready)
        return step

    @classmethod
    def restore(
        cls,
        graph: CompiledGraph,
        settled: Mapping[str, str],
        outputs: Mapping[str, Any],
        actions: Mapping[str, str | None],
        decisions: Mapping[str, bool],
        fired_by: Mapping[str, str] | None = None,
    ) -> Scheduler:
        """Rebuild from stored records (decisions replayed, nothing new decided).

        ``fired_by`` names which arrival fired each ``any`` join; stored maps have no order, so
        without it the replay could credit a later arrival.
        """
        sched = cls(graph)
        sched.start()
        sched.outputs.update(outputs)
        sched.latest.update(latest_by_node(outputs))
        sched.actions.update(actions)
        for key, status in settled.items():
            sched.settled[key] = status
            sched._count_loop_member(key)
        edges = graph.edges
        for dkey, taken in decisions.items():
            index, _, it = dkey.partition("@")
            edge = edges[int(index)]
            sched.decisions[dkey] = taken
            if edge.kind == _EXIT and taken:
                sched._exit_taken.add(edge.index)
            sched._arrive(edge, int(it) if it else 0, taken, None)
        for target, owner in (fired_by or {}).items():
            sched.fired_by[target] = owner
            arrivals = sched._arrivals.get(target)
            if arrivals:
                index, _, it = owner.partition("@")
                source = instance_key(edges[int(index)].source, int(it) if it else 0)
                arrivals.sort(key=lambda arrival: arrival[1] != source)
        return sched

    def settle_derived(self) -> Settlement:
        """Decide what the stored decisions imply but a concurrent or interrupted step left
        undone: skips, and the end of loops whose last iteration has settled."""
        step = Settlement()
        while True:
            before = len(step.decisions or {})
            step.skipped.extend(k for k in self.pending_skips() if k not in step.skipped)
            self._cascade(step)
            for (loop_index, iteration), count in list(self._loop_settled.items()):
                loop = self.graph.loops[loop_index]
                if count >= len(loop.members):
                    self._maybe_end_loop(loop, iteration, step)
            self._cascade(step)
            if len(step.decisions or {}) == before and not self.pending_skips():
                return step

    def pending_loop_ends(self) -> list[tuple[int, int]]:
        """Loop iterations that settled without a next one, whose exits are still undecided."""
        pending = []
        for (loop_index, iteration), count in self._loop_settled.items():
            loop = self.graph.loops[loop_index]
            if count < len(loop.members):
                continue
            following = instance_key(loop.header, iteration + 1)
            if following in self._fired or following in self._arrivals:
                continue
            if any(
                e.index not in self._exit_taken and str(e.index) not in self.decisions
                for e in loop.exit_edges
            ):
                pending.append((loop_index, iteration))
        return pending

    def outstanding(self) -> list[str]:
        """Instances that are ready (or running, or awaiting) but not settled."""
        return [k for k in self._fired if k not in self.settled]

    def pending_skips(self) -> list[str]:
        """Instances whose inputs are all decided and none taken, but not yet recorded skipped."""
        pending = []
        for key, undecided in self._undecided.items():
            if (
                undecided == 0
                and key not in self._arrivals
                and key not in self.settled
                and key not in self._never
            ):
                pending.append(key)
        return pending

    @property
    def finished(self) -> bool:
        return (
            all(k in self.settled for k in self._fired)
            and not self.pending_skips()
            and not self.pending_loop_ends()
        )

    # ----------------------------------------------------------------- settling
    def complete(
        self,
        key: str,
        output: Any,
        action: str | None,
        context: Mapping[str, Any],
        node_input: Any = None,
        *,
        report_decisions: bool = True,
        into: Settlement | None = None,
    ) -> Settlement:
        """Record a completed node and decide its outgoing edges.

        ``into`` is an empty ``Settlement`` to fill instead of a new one (a driver that applies each
        step at once may reuse one; its ``decisions`` says whether to report them)."""
        self.settled[key] = COMPLETED
        self.outputs[key] = output
        if action is not None:
            self.actions[key] = action
        step = into
        if step is None:
            step = Settlement() if report_decisions else Settlement(decisions=None)
        node_id, iteration = split_key(key) if "#" in key else (key, 0)
        if iteration:
            self.latest[node_id] = output
        graph = self.graph
        plain_edges = graph.take_all.get(node_id)
        if plain_edges is not None:
            self._take_all(plain_edges, step)
            return step
        choices = choose_edges(
            self.graph.out_edges[node_id],
            action,
            output,
            context,
            node_input,
            conditions_first=node_id in self.graph.conditions_first,
        )
        for edge, taken in choices:
            self._decide(edge, iteration, taken, step)
        self._after_settle(key, step)
        self._cascade(step)
        return step

    def fail(self, key: str) -> None:
        self.settled[key] = FAILED

    def all_decisions(self) -> dict[str, bool]:
        """Every edge decision made (``decisions`` plus the ones ``complete`` left implied
        when called with ``report_decisions=False``): what ``restore`` needs."""
        everything = dict(self.decisions)
        for edges in self._implied:
            for edge in edges:
                everything[edge.decision_key0] = True
        return everything

    def _take_all(self, edges: list[CompiledEdge], step: Settlement) -> None:
        """``_decide(edge, 0, True)`` for plain edges outside loops, in one loop (the common
        case of a node that routes nowhere in particular: every edge is taken)."""
        decisions = self.decisions
        reported = step.decisions
        undecided_of = self._undecided
        arrivals_of = self._arrivals
        fired = self._fired
        settled = self.settled
        ready = step.ready
        if reported is None and edges:
            # Nobody asked for the decisions now: they are all True, so ``all_decisions``
            # writes them out when the run's state is saved (a dict store less per edge).
            self._implied.append(edges)
        for edge in edges:
            dkey = edge.decision_key0
            if reported is not None:
                decisions[dkey] = True
                reported[dkey] = True
            target = edge.target
            undecided = undecided_of.get(target, edge.first_pass_inputs) - 1
            arrivals = arrivals_of.get(target)
            if arrivals is None:
                arrivals_of[target] = [edge.first_pass_arrival]
            elif arrivals is not _CONSUMED:
                arrivals.append(edge.first_pass_arrival)
            if target in fired or target in settled:
                undecided_of[target] = undecided
                continue
            if join_verdict(True, edge.any_join, undecided, True) == READY:
                # A fired target's count is never read again: not stored (chains stay lean).
                fired.add(target)
                if edge.any_join:
                    self.fired_by[target] = dkey
                ready.append(target)
            else:
                undecided_of[target] = undecided

    # ----------------------------------------------------------------- internals
    def _settle_skipped(self, key: str, step: Settlement) -> None:
        self.settled[key] = SKIPPED
        node_id, iteration = split_key(key)
        for edge in self.graph.out_edges[node_id]:
            self._decide(edge, iteration, False, step)
        self._after_settle(key, step)

    def _cascade(self, step: Settlement) -> None:
        # Skips found by _arrive are appended to step.skipped; settle them breadth-first.
        position = 0
        while position < len(step.skipped):
            key = step.skipped[position]
            position += 1
            if key not in self.settled:
                self._settle_skipped(key, step)

    def _decide(self, edge: CompiledEdge, iteration: int, taken: bool, step: Settlement) -> None:
        if edge.outside_loops:
            # The common case (no loop involved), kept free of calls and allocations.
            dkey = edge.decision_key0
            self.decisions[dkey] = taken
            if step.decisions is not None:
                step.decisions[dkey] = taken
            if edge.group_size > 1:
                merged = self._merge_twin(edge, taken)
                if merged is None:
                    return
                edge, taken = merged
            target = edge.target
            undecided = self._undecided.get(target, edge.first_pass_inputs) - 1
            self._undecided[target] = undecided
            arrivals = self._arrivals.get(target)
            if taken:
                if arrivals is None:
                    arrivals = self._arrivals[target] = [edge.first_pass_arrival]
                elif arrivals is not _CONSUMED:
                    arrivals.append(edge.first_pass_arrival)
            if target in self._fired or target in self.settled:
                return
            verdict = join_verdict(taken, edge.any_join, undecided, arrivals is not None)
            if verdict == READY:
                self._fired.add(target)
                if taken and edge.any_join:
                    self.fired_by[target] = dkey
                step.ready.append(target)
            elif verdict == SKIP:
                step.skipped.append(target)
            return
        if edge.kind == _EXIT:
            if not taken or edge.index in self._exit_taken:
                return  # not-taken exits are decided when the loop ends
            self._exit_taken.add(edge.index)
            dkey = str(edge.index) if iteration == 0 else f"{edge.index}@{iteration}"
        else:
            dkey = str(edge.index) if iteration == 0 else f"{edge.index}@{iteration}"
            if taken and edge.kind == _BACK:
                loop = self.graph.loops[edge.loop]  # type: ignore[index]
                if loop.max_iterations is not None and iteration + 1 >= loop.max_iterations:
                    raise LoopLimitError(edge.target, loop.max_iterations)
        self.decisions[dkey] = taken
        if step.decisions is not None:
            step.decisions[dkey] = taken
        self._arrive(edge, iteration, taken, step)

    def _merge_twin(
        self, edge: CompiledEdge, taken: bool, iteration: int = 0
    ) -> tuple[CompiledEdge, bool] | None:
        """Count one edge of a group; once all are decided, the group's arrival (the first
        taken edge, or the group's first edge when none was taken)."""
        slot = (edge.group, iteration)
        decided, carrier = self._twins.get(slot, (0, None))
        decided += 1
        if taken and carrier is None:
            carrier = edge
        if decided < edge.group_size:
            self._twins[slot] = (decided, carrier)
            return None
        self._twins.pop(slot, None)
        if carrier is not None:
            return carrier, True
        return self.graph.edges[edge.group], False

    def _arrive(
        self, edge: CompiledEdge, iteration: int, taken: bool, step: Settlement | None
    ) -> None:
        """Count a decided edge at its target instance; fire or skip the target when due."""
        if edge.kind == _CUT:
            return  # closes a cycle that is not a loop: starts nothing
        if edge.group_size > 1:
            merged = self._merge_twin(edge, taken, iteration)
            if merged is None:
                return
            edge, taken = merged
        graph = self.graph
        if edge.kind == _BACK:
            target_it = iteration + 1
        elif edge.kind == _EXIT or edge.loop is None:
            target_it = 0
        else:
            target_it = iteration
        target = instance_key(edge.target, target_it)
        undecided = self._undecided.get(target)
        if undecided is None:
            undecided = len(graph.inputs_of(edge.target, target_it))
        undecided -= 1
        self._undecided[target] = undecided
        if taken:
            arrivals = self._arrivals.get(target)
            if arrivals is None:
                self._arrivals[target] = [(edge, instance_key(edge.source, iteration))]
            elif arrivals is not _CONSUMED:
                arrivals.append((edge, instance_key(edge.source, iteration)))
        if target in self._fired or target in self.settled:
            return
        if edge.kind == _BACK:
            if undecided == 0:
                if target in self._arrivals:
                    self._fire(target, step)
                else:
                    self._never.add(target)
                    if step is not None:
                        self._maybe_end_loop(graph.loops[edge.loop], iteration, step)  # type: ignore[index]
            return
        verdict = join_verdict(taken, edge.any_join, undecided, target in self._arrivals)
        if verdict == READY:
            self._fire(target, step)
            if taken and edge.any_join:
                self.fired_by[target] = (
                    str(edge.index) if iteration == 0 else f"{edge.index}@{iteration}"
                )
        elif verdict == SKIP and step is not None:
            step.skipped.append(target)

    def _fire(self, target: str, step: Settlement | None) -> None:
        self._fired.add(target)
        if step is not None:
            step.ready.append(target)

    def _count_loop_member(self, key: str) -> None:
        node_id, iteration = split_key(key)
        loop_index = self.graph.loop_of.get(node_id)
        if loop_index is not None:
            slot = (loop_index, iteration)
            self._loop_settled[slot] = self._loop_settled.get(slot, 0) + 1

    def _after_settle(self, key: str, step: Settlement) -> None:
        if not self.graph.loops:
            return
        node_id, iteration = split_key(key)
        loop_index = self.graph.loop_of.get(node_id)
        if loop_index is None:
            return
        self._count_loop_member(key)
        self._maybe_end_loop(self.graph.loops[loop_index], iteration, step)

    def _maybe_end_loop(self, loop: Loop, iteration: int, step: Settlement) -> None:
        """A loop ends when an iteration is fully settled and started no next iteration."""
        slot = (loop.index, iteration)
        if slot in self._loop_done:
            return
        if self._loop_settled.get(slot, 0) < len(loop.members):
            return
        next_header = instance_key(loop.header, iteration + 1)
        if next_header in self._fired or next_header in self._arrivals:
            return
        self._loop_done.add(slot)
        for edge in loop.exit_edges:
            dkey = str(edge.index)
            if edge.index not in self._exit_taken and dkey not in self.decisions:
                self.decisions[dkey] = False
                if step.decisions is not None:
                    step.decisions[dkey] = False
                self._arrive(edge, 0, False, step)

    def successor_instances(self, key: str) -> list[str]:
        """Instances that decisions made by ``key`` may have made ready."""
        node_id, iteration = split_key(key)
        found = []
        for edge in self.graph.out_edges[node_id]:
            if edge.kind == _CUT:
                continue
            if edge.kind == _BACK:
                found.append(instance_key(edge.target, iteration + 1))
            elif edge.kind == _EXIT or edge.loop is None:
                found.append(instance_key(edge.target, 0))
            else:
                found.append(instance_key(edge.target, iteration))
        return found

    # ----------------------------------------------------------------- inputs
    def build_input(
        self, key: str, context: Mapping[str, Any], node: NodeDefinition | None = None
    ) -> Any:
        """The input of an instance: its single predecessor's output, or a join's dict.

        A node that declares ``inputs`` gets what they select; an edge ``transform`` that
        brought it then applies to that value, as in flowcraft.
        """
        node_id, iteration = split_key(key) if "#" in key else (key, 0)
        if node is None:
            node = self.graph.nodes[node_id]
        arrivals = self._arrivals.get(key)
        if node.inputs is not None:
            value = self._mapped_input(node, context)
            for edge, source in arrivals or ():
                if edge.transform is not None:
                    return apply_transform(edge, value, context, self.actions.get(source))
            return value
        if not arrivals:
            if iteration == 0 and not self.graph.first_inputs[node_id]:
                return context.get(INPUTS_PREFIX + node_id)  # a child run's start node
            return None
        outputs = self.outputs
        if iteration == 0:
            expected = arrivals[0][0].first_pass_inputs if arrivals[0][0].kind != _BACK else 1
        else:
            expected = len(self.graph.inputs_of(node_id, iteration))
        if expected == 1 or node.config.join_strategy == "any":
            edge, source = arrivals[0]
            if edge.transform is None:
                return outputs.get(source)
            return apply_transform(edge, outputs.get(source), context, self.actions.get(source))
        return {
            edge.source: outputs.get(source)
            if edge.transform is None
            else apply_transform(edge, outputs.get(source), context, self.actions.get(source))
            for edge, source in arrivals
        }

    @classmethod
    def for_input(
        cls,
        graph: CompiledGraph,
        key: str,
        arrivals: list[tuple[CompiledEdge, str]],
        outputs: Mapping[str, Any],
        actions: Mapping[str, str | None],
    ) -> Scheduler:
        """A scheduler that knows just enough to build ``key``'s input: its taken incoming
        edges (with their source instances) and the outputs they carry. The distributed driver
        reads only those from its store and builds the input here, by the same rules."""
        sched = cls(graph)
        sched.outputs.update(outputs)
        sched.actions.update(actions)
        if arrivals:
            sched._arrivals[key] = list(arrivals)
        return sched

    def consume_input(
        self, key: str, context: Mapping[str, Any], node: NodeDefinition | None = None
    ) -> Any:
        """``build_input`` for an instance about to run once; its arrivals are let go."""
        value = self.build_input(key, context, node)
        if key in self._arrivals:
            self._arrivals[key] = _CONSUMED
        return value

    def latest_outputs(self) -> dict[str, Any]:
        """node id -> output of its latest completed iteration, in blueprint order."""
        latest, outputs = self.latest, self.outputs
        found = {}
        for n in self.graph.order:
            if n in latest:
                found[n] = latest[n]
            elif n in outputs:
                found[n] = outputs[n]
        return found

    def latest_output(self, node_id: str) -> Any:
        return self.output_of(node_id)[1]

    def output_of(self, node_id: str) -> tuple[bool, Any]:
        """``OutputSource``: (True, output) once ``node_id`` completed, else (False, None).

        ``latest`` holds the outputs of later loop iterations; a first iteration's output is
        under the node id itself in ``outputs``."""
        latest = self.latest
        if node_id in latest:
            return True, latest[node_id]
        outputs = self.outputs
        if node_id in outputs:
            return True, outputs[node_id]
        return False, None

    def _mapped_input(self, node: NodeDefinition, context: Mapping[str, Any]) -> Any:
        spec = node.inputs
        if isinstance(spec, str):
            return self._resolve_reference(spec, context)
        assert spec is not None
        return {name: self._resolve_reference(ref, context) for name, ref in spec.items()}

    def _resolve_reference(self, ref: str, context: Mapping[str, Any]) -> Any:
        """A node id (its latest output), ``node.path``, ``_outputs.node[.path]``, a context
        key, or ``context.path`` (flowcraft's order: a node's output before a context key)."""
        nodes = self.graph.nodes
        if ref in nodes:
            return self.latest_output(ref)
        if ref in context:
            return context[ref]
        if ref.startswith(OUTPUTS_PREFIX):
            ref = ref[len(OUTPUTS_PREFIX) :]
            if ref in nodes:
                return self.latest_output(ref)
        head, _, rest = ref.partition(".")
        if head in nodes:
            return compile_expression(f"value.{rest}").evaluate({"value": self.latest_output(head)})
        if head == "context" and rest:
            return compile_expression(ref).evaluate({"context": context})
        return None


def latest_by_node(values: Mapping[str, Any]) -> dict[str, Any]:
    """Instance key -> value, reduced to node id -> value of its latest iteration."""
    best: dict[str, tuple[int, Any]] = {}
    for key, value in values.items():
        node_id, iteration = split_key(key)
        seen = best.get(node_id)
        if seen is None or iteration >= seen[0]:
            best[node_id] = (iteration, value)
    return {node_id: value for node_id, (_, value) in best.items()}


def pick_waiting_key(waiting: list[str], node_id: str | None) -> str:
    """The waiting instance a resume addresses: an exact instance key (``ask#2``), else the
    latest waiting iteration of the node, else the only waiting instance. Both drivers resume
    through this; LookupError says why none fits."""
    if node_id is None:
        if len(waiting) != 1:
            raise LookupError(f"waiting at {', '.join(sorted(waiting))}; say which nodeId")
        return waiting[0]
    matches = [k for k in waiting if k == node_id] or [
        k for k in waiting if split_key(k)[0] == node_id
    ]
    if not matches:
        waiting_now = ", ".join(sorted(waiting)) or "none"
        raise LookupError(f"node {node_id!r} (not waiting; waiting: {waiting_now})")
    return max(matches, key=lambda k: split_key(k)[1])


def decision_source(graph: CompiledGraph, dkey: str, taken: bool) -> str | None:
    """The node instance whose settling made a decision; None for a loop's exit decided as not
    taken when the loop ended (no single node made that one)."""
    index, _, it = dkey.partition("@")
    edge = graph.edges[int(index)]
    if edge.kind == _EXIT and not taken:
        return None
    return instance_key(edge.source, int(it) if it else 0)


def statuses_by_node(
    settled: Mapping[str, str], extra: Iterable[tuple[str, str]] = ()
) -> dict[str, str]:
    """node id -> status of its latest instance (for results and diagrams)."""
    best: dict[str, tuple[int, str]] = {}
    for key, status in [*settled.items(), *extra]:
        node_id, iteration = split_key(key)
        seen = best.get(node_id)
        if seen is None:
            best[node_id] = (iteration, status)
            continue
        # The latest pass wins, except that a loop's final, skipped pass does not hide the
        # passes that ran before it.
        later = iteration >= seen[0]
        if (later and not (status == SKIPPED and seen[1] != SKIPPED)) or (
            not later and seen[1] == SKIPPED and status != SKIPPED
        ):
            best[node_id] = (iteration, status)
    return {n: s for n, (_, s) in best.items()}
