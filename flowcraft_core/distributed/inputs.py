"""A node's input and context in a distributed run, built from the run's items.

The worker reads the head, the node's own item and its predecessors' items in one consistent
request (``read_for``); the input is then built by the same scheduler code the in-memory driver
uses (``Scheduler.for_input``), from the outputs of the edges that were taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..context import ContextView
from ..scheduler import CompiledEdge, Scheduler, instance_key, split_key
from .context_view import StoredContext, StoredOutputs
from .layout import join_key, loop_exits_key
from .plan import Plan
from .records import COMPLETED, NodeRecord
from .state import JobRead, RunItems

if TYPE_CHECKING:
    from .execution import JobState
    from .view import RunViews

#: Predecessor items read with the head in the job's first request.
FIRST_READ = 90


class NodeInputs:
    """Reads what a node instance's input and context are made of, and builds them."""

    def __init__(self, runs: RunItems, views: RunViews) -> None:
        self.runs = runs
        self.views = views

    def context_of(self, state: JobState) -> Mapping[str, Any]:
        """The run's context as a node, its input and its edges see it: the head's values
        (decoded on first use), then node outputs (``_outputs.<id>``, bare node ids)."""
        stored = StoredContext(self.runs, state.run_id, state.head.context)
        # Records this job already holds (its first read, and what its chain committed) are
        # not fetched again when an edge or an input names a predecessor's output.
        held = state.read.nodes if state.read is not None else state.known
        outputs = StoredOutputs(
            self.runs,
            state.plan,
            state.run_id,
            state.key,
            self.views.latest_instances,
            held,
        )
        return ContextView(stored, outputs)

    def read_for(
        self, plan: Plan, run_id: str, key: str, known: Mapping[str, NodeRecord] | None = None
    ) -> tuple[list[tuple[CompiledEdge, str | None]], JobRead]:
        """One consistent read of the head, the instance and what its input is built from
        (predecessors this invocation committed itself are not read again)."""
        node_id, iteration = split_key(key)
        sources = self._sources(plan, node_id, iteration)
        extra: list[str] = []
        if plan.is_any_join(node_id) and len(sources) > 1:
            extra.append(join_key(run_id, key))
        for edge, source in sources:
            if source is None and edge.loop is not None:
                extra.append(loop_exits_key(run_id, edge.loop))
        wanted = [s for _, s in sources if s is not None and s not in (known or {})]
        read = self.runs.read(run_id, [key, *wanted[:FIRST_READ]], dict.fromkeys(extra))
        for instance, record in (known or {}).items():
            read.nodes.setdefault(instance, record)
        return sources, read

    def input_of(self, state: JobState, context: Mapping[str, Any]) -> Any:
        """The input of ``state``'s instance, from what the job's ``read_for`` read (a resume,
        a subflow's end, a map's gather or fallback): predecessors' outputs never change."""
        assert state.read is not None, "the job's read_for read"
        node_id, iteration = split_key(state.key)
        sources = self._sources(state.plan, node_id, iteration)
        return self.build_input(state, sources, context, state.read)

    def _sources(
        self, plan: Plan, node_id: str, iteration: int
    ) -> list[tuple[CompiledEdge, str | None]]:
        if plan.graph.nodes[node_id].inputs is not None:
            return []
        return [(e, plan.source_instance(e, iteration)) for e in plan.expected(node_id, iteration)]

    def build_input(
        self,
        state: JobState,
        sources: list[tuple[CompiledEdge, str | None]],
        context: Mapping[str, Any],
        read: JobRead,
    ) -> Any:
        """The node's input from the predecessor items it is built from (read once)."""
        plan, key, run_id = state.plan, state.key, state.run_id
        node = plan.graph.nodes[split_key(key)[0]]
        if node.inputs is not None:
            return self._mapped_input(state, context)
        if not sources:
            # A start node: nothing, or (in a child run) what its parent node handed it.
            return Scheduler.for_input(plan.graph, key, [], {}, {}).build_input(key, context)
        resolved: list[tuple[CompiledEdge, str]] = []
        for edge, source in sources:
            if source is None:  # a loop exit: the pass that took it is recorded
                exits = read.raw.get(loop_exits_key(run_id, edge.loop or 0)) or {}
                taken_in = (exits.get("x") or {}).get(str(edge.index))
                if taken_in is None:
                    continue
                source = instance_key(edge.source, int(taken_in))
            resolved.append((edge, source))
        records = dict(read.nodes)
        missing = [s for _, s in resolved if s not in records]
        if missing:
            records.update(self.runs.nodes(run_id, missing))
        arrivals: list[tuple[CompiledEdge, str]] = []
        for edge, source in resolved:
            record = records.get(source)
            if record is None or record.status != COMPLETED:
                continue
            # Edges from one source to one target are one predecessor: the first taken one
            # carries the output (and its transform).
            for member in plan.group_of(edge):
                if record.took(member.index):
                    arrivals.append((member, source))
                    break
        if plan.is_any_join(node.id) and len(sources) > 1:
            owner = (read.raw.get(join_key(run_id, key)) or {}).get("f")
            if owner is not None:
                owned = plan.expected(node.id, split_key(key)[1])[int(owner)]
                arrivals.sort(key=lambda arrival: arrival[0] is not owned)
        outputs = {s: self.runs.codec.decode(records[s].stored) for _, s in arrivals}
        actions = {s: records[s].action for _, s in arrivals}
        sched = Scheduler.for_input(plan.graph, key, arrivals, outputs, actions)
        return sched.build_input(key, context)

    def _mapped_input(self, state: JobState, context: Mapping[str, Any]) -> Any:
        """``inputs`` naming nodes: their latest outputs, read by key."""
        plan, key = state.plan, state.key
        node = plan.graph.nodes[split_key(key)[0]]
        spec = node.inputs
        refs = [spec] if isinstance(spec, str) else list((spec or {}).values())
        named = {r.partition(".")[0] for r in refs} & set(plan.graph.nodes)
        instances = self.views.latest_instances(plan, state.run_id, sorted(named), key)
        records = self.runs.nodes(state.run_id, list(instances.values()))
        outputs = {
            i: self.runs.codec.decode(r.stored) for i, r in records.items() if r.status == COMPLETED
        }
        sched = Scheduler.for_input(plan.graph, key, [], outputs, {})
        return sched.build_input(key, context)
