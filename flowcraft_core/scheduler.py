"""The one place that decides what follows a node: edges, joins, skips, loops, completion.

Both drivers use this module. The in-memory runtime keeps one ``Scheduler`` for a whole run;
the distributed worker rebuilds one from the stored run record (``Scheduler.restore``), applies
the node it just executed, and stores the decisions it made. The rules (DESIGN.md section 4):

* a result's ``action`` selects the edges labelled with it; with no action, or an action no edge
  is labelled with, the unlabelled edges are the default route; a ``condition`` must also hold;
* a node whose incoming edges are all decided and none taken is *skipped*, and the skip flows on;
* ``all`` joins fire once every incoming edge is decided and at least one was taken; ``any``
  joins fire on the first taken edge and ignore later arrivals;
* a cycle is a loop: each pass is a new *iteration* of its nodes (instance key ``node#k``), its
  back edges start the next iteration, and the edges that leave it are decided as not taken only
  once the loop has ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .blueprint import NodeDefinition, WorkflowBlueprint
from .builtins.names import LOOP
from .expressions import CompiledExpression, compile_expression, is_truthy
from .graph_algorithms import cyclic_components

COMPLETED = "completed"
SKIPPED = "skipped"
FAILED = "failed"
AWAITING = "awaiting"

_NORMAL, _BACK, _EXIT = 0, 1, 2


class GraphError(ValueError):
    """The blueprint's shape cannot be run (e.g. nested cycles); the message names the nodes."""


class LoopLimitError(RuntimeError):
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
    kind: int = _NORMAL
    loop: int | None = None
    #: Precomputed for the hot path: decision key, target's join and input count.
    key0: str = ""
    any_join: bool = False
    inputs0: int = 0
    plain: bool = True
    arrival0: tuple[Any, str] | None = None


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
        for index, e in enumerate(blueprint.edges):
            edge = CompiledEdge(
                index=index,
                source=e.source,
                target=e.target,
                action=e.action,
                condition=compile_expression(e.condition) if e.condition else None,
                transform=compile_expression(e.transform) if e.transform else None,
            )
            self.edges.append(edge)
            self.out_edges[e.source].append(edge)
            self.in_edges[e.target].append(edge)
        self.loops: list[Loop] = []
        self.loop_of: dict[str, int] = {}
        self._find_loops()
        # Expected incoming edges of iteration 0 and of later iterations, per node.
        self.first_inputs: dict[str, list[CompiledEdge]] = {}
        self.later_inputs: dict[str, list[CompiledEdge]] = {}
        for node_id in self.order:
            incoming = self.in_edges[node_id]
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
            edge.key0 = str(edge.index)
            edge.any_join = self.nodes[edge.target].config.join_strategy == "any"
            edge.inputs0 = len(self.first_inputs[edge.target])
            edge.plain = edge.kind == _NORMAL and edge.loop is None
            edge.arrival0 = (edge, edge.source)
        self.start_nodes = [n for n in self.order if not self.first_inputs[n]]
        if not self.start_nodes:
            raise GraphError(f"blueprint {self.id!r} has no start node (every node has an input)")

    def _find_loops(self) -> None:
        successors = {n: [e.target for e in self.out_edges[n]] for n in self.order}
        position = {n: i for i, n in enumerate(self.order)}
        for component in cyclic_components(self.order, successors):
            members = frozenset(component)
            loop_index = len(self.loops)
            entries = [
                n
                for n in sorted(members, key=position.__getitem__)
                if any(e.source not in members for e in self.in_edges[n])
            ]
            header = entries[0] if entries else min(members, key=position.__getitem__)
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
                if node.uses == LOOP and "maxIterations" in node.params:
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

    def inputs_of(self, node_id: str, iteration: int) -> list[CompiledEdge]:
        return self.first_inputs[node_id] if iteration == 0 else self.later_inputs[node_id]


def _result_scope(output: Any, action: str | None) -> dict[str, Any]:
    """``result`` in expressions: ``result.output``/``result.action``, plus the output's keys."""
    scope: dict[str, Any] = dict(output) if isinstance(output, Mapping) else {}
    scope["output"] = output
    scope["action"] = action
    return scope


def choose_edges(
    edges: list[CompiledEdge],
    action: str | None,
    output: Any,
    context: Mapping[str, Any],
    node_input: Any = None,
) -> list[tuple[CompiledEdge, bool]]:
    """Decide each outgoing edge of a completed node: taken or not."""
    if not edges:
        return []
    route_labelled = action is not None and any(e.action == action for e in edges)
    scope: dict[str, Any] | None = None
    decisions = []
    for edge in edges:
        taken = edge.action == action if route_labelled else edge.action is None
        if taken and edge.condition is not None:
            if scope is None:
                scope = {
                    "context": context,
                    "result": _result_scope(output, action),
                    "output": output,
                    "input": node_input,
                }
            taken = is_truthy(edge.condition.evaluate(scope))
        decisions.append((edge, taken))
    return decisions


def apply_transform(
    edge: CompiledEdge, output: Any, context: Mapping[str, Any], action: str | None = None
) -> Any:
    if edge.transform is None:
        return output
    return edge.transform.evaluate(
        {
            "input": output,
            "output": output,
            "result": _result_scope(output, action),
            "context": context,
        }
    )


#: Marks an instance whose arrivals were used to build its input.
_CONSUMED: tuple[()] = ()


@dataclass(slots=True)
class Step:
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
        "_loop_done",
        "_loop_settled",
        "_never",
        "_undecided",
        "actions",
        "decisions",
        "fired_by",
        "graph",
        "outputs",
        "settled",
    )

    def __init__(self, graph: CompiledGraph) -> None:
        self.graph = graph
        self.settled: dict[str, str] = {}
        self.outputs: dict[str, Any] = {}
        self.actions: dict[str, str | None] = {}
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

    # ----------------------------------------------------------------- starting and restoring
    def start(self) -> Step:
        step = Step(ready=list(self.graph.start_nodes))
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

    def settle_derived(self) -> Step:
        """Decide what the stored decisions imply but a concurrent or interrupted step left
        undone: skips, and the end of loops whose last iteration has settled."""
        step = Step()
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
    ) -> Step:
        """Record a completed node and decide its outgoing edges."""
        self.settled[key] = COMPLETED
        self.outputs[key] = output
        self.actions[key] = action
        step = Step() if report_decisions else Step(decisions=None)
        node_id, iteration = split_key(key)
        choices = choose_edges(self.graph.out_edges[node_id], action, output, context, node_input)
        for edge, taken in choices:
            self._decide(edge, iteration, taken, step)
        self._after_settle(key, step)
        self._cascade(step)
        return step

    def fail(self, key: str) -> None:
        self.settled[key] = FAILED

    # ----------------------------------------------------------------- internals
    def _settle_skipped(self, key: str, step: Step) -> None:
        self.settled[key] = SKIPPED
        node_id, iteration = split_key(key)
        for edge in self.graph.out_edges[node_id]:
            self._decide(edge, iteration, False, step)
        self._after_settle(key, step)

    def _cascade(self, step: Step) -> None:
        # Skips found by _arrive are appended to step.skipped; settle them breadth-first.
        position = 0
        while position < len(step.skipped):
            key = step.skipped[position]
            position += 1
            if key not in self.settled:
                self._settle_skipped(key, step)

    def _decide(self, edge: CompiledEdge, iteration: int, taken: bool, step: Step) -> None:
        if edge.plain:
            # The common case (no loop involved), kept free of calls and allocations.
            dkey = edge.key0
            self.decisions[dkey] = taken
            if step.decisions is not None:
                step.decisions[dkey] = taken
            target = edge.target
            undecided = self._undecided.get(target, edge.inputs0) - 1
            self._undecided[target] = undecided
            if taken:
                arrivals = self._arrivals.get(target)
                if arrivals is None:
                    self._arrivals[target] = [edge.arrival0]
                elif arrivals is not _CONSUMED:
                    arrivals.append(edge.arrival0)
            if target in self._fired or target in self.settled:
                return
            if taken and edge.any_join:
                self._fired.add(target)
                self.fired_by[target] = dkey
                step.ready.append(target)
            elif undecided == 0:
                if target in self._arrivals:
                    self._fired.add(target)
                    step.ready.append(target)
                else:
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

    def _arrive(self, edge: CompiledEdge, iteration: int, taken: bool, step: Step | None) -> None:
        """Count a decided edge at its target instance; fire or skip the target when due."""
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
        if taken and edge.any_join:
            self._fire(target, step)
            self.fired_by[target] = (
                str(edge.index) if iteration == 0 else f"{edge.index}@{iteration}"
            )
        elif undecided == 0:
            if target in self._arrivals:
                self._fire(target, step)
            elif step is not None:
                step.skipped.append(target)

    def _fire(self, target: str, step: Step | None) -> None:
        self._fired.add(target)
        if step is not None:
            step.ready.append(target)

    def _count_loop_member(self, key: str) -> None:
        node_id, iteration = split_key(key)
        loop_index = self.graph.loop_of.get(node_id)
        if loop_index is not None:
            slot = (loop_index, iteration)
            self._loop_settled[slot] = self._loop_settled.get(slot, 0) + 1

    def _after_settle(self, key: str, step: Step) -> None:
        if not self.graph.loops:
            return
        node_id, iteration = split_key(key)
        loop_index = self.graph.loop_of.get(node_id)
        if loop_index is None:
            return
        self._count_loop_member(key)
        self._maybe_end_loop(self.graph.loops[loop_index], iteration, step)

    def _maybe_end_loop(self, loop: Loop, iteration: int, step: Step) -> None:
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
            if edge.kind == _BACK:
                found.append(instance_key(edge.target, iteration + 1))
            elif edge.kind == _EXIT or edge.loop is None:
                found.append(instance_key(edge.target, 0))
            else:
                found.append(instance_key(edge.target, iteration))
        return found

    # ----------------------------------------------------------------- inputs
    def build_input(self, key: str, context: Mapping[str, Any]) -> Any:
        """The input of an instance: its single predecessor's output, or a join's dict."""
        node_id, iteration = split_key(key)
        node = self.graph.nodes[node_id]
        if node.inputs is not None:
            return self._mapped_input(node, context)
        arrivals = self._arrivals.get(key)
        if not arrivals:
            return None
        outputs = self.outputs
        expected = self.graph.inputs_of(node_id, iteration)
        if len(expected) == 1 or node.config.join_strategy == "any":
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

    def consume_input(self, key: str, context: Mapping[str, Any]) -> Any:
        """``build_input`` for an instance about to run once; its arrivals are let go."""
        value = self.build_input(key, context)
        if key in self._arrivals:
            self._arrivals[key] = _CONSUMED
        return value

    def latest_outputs(self) -> dict[str, Any]:
        """node id -> output of its latest completed iteration, in blueprint order."""
        latest = latest_by_node(self.outputs)
        return {n: latest[n] for n in self.graph.order if n in latest}

    def latest_output(self, node_id: str) -> Any:
        return latest_by_node(self.outputs).get(node_id)

    def _mapped_input(self, node: NodeDefinition, context: Mapping[str, Any]) -> Any:
        spec = node.inputs
        if isinstance(spec, str):
            return self._resolve_reference(spec, context)
        assert spec is not None
        return {name: self._resolve_reference(ref, context) for name, ref in spec.items()}

    def _resolve_reference(self, ref: str, context: Mapping[str, Any]) -> Any:
        """A node id (its latest output), ``node.path``, a context key, or ``context.path``."""
        nodes = self.graph.nodes
        if ref in nodes:
            return self.latest_output(ref)
        if ref in context:
            return context[ref]
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
