"""Run-level bookkeeping: what settling a node makes ready, skips, or ends (joins, loops)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..status import COMPLETED, FAILED, SKIPPED
from ._edges import READY, SKIP, choose_edges, join_verdict
from ._graph import (
    CompiledEdge,
    CompiledGraph,
    EdgeKind,
    Loop,
    LoopLimitError,
    decision_key,
    instance_key,
    split_decision_key,
    split_key,
    target_iteration,
)
from ._inputs import _CONSUMED
from ._records import latest_by_node
from ._state import RunState

# Settling runs per node: a module global reads five times faster than ``EdgeKind.BACK``.
_NORMAL, _BACK, _EXIT, _CUT = EdgeKind.NORMAL, EdgeKind.BACK, EdgeKind.EXIT, EdgeKind.CUT


@dataclass(slots=True)
class Settlement:
    """What settling one node decided."""

    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: The edge decisions made (None when the caller said it does not need them).
    decisions: dict[str, bool] | None = field(default_factory=dict)


class Scheduler(RunState):
    """Run-level bookkeeping over a compiled graph (one per run, or rebuilt per job): what
    settling a node decides, and rebuilding that from stored records."""

    __slots__ = ()

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
            index, iteration = split_decision_key(dkey)
            edge = edges[index]
            sched.decisions[dkey] = taken
            if edge.kind == _EXIT and taken:
                sched._exit_taken.add(edge.index)
            sched._arrive(edge, iteration, taken, None)
        for target, owner in (fired_by or {}).items():
            sched.fired_by[target] = owner
            arrivals = sched._arrivals.get(target)
            if arrivals:
                index, iteration = split_decision_key(owner)
                source = instance_key(edges[index].source, iteration)
                arrivals.sort(key=lambda arrival: arrival[1] != source)
        return sched

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
            dkey = edge.first_pass_decision_key
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
        """Record one edge decision, then count it at its target (``_arrive``)."""
        if edge.outside_loops:
            dkey = edge.first_pass_decision_key
        elif edge.kind == _EXIT:
            if not taken or edge.index in self._exit_taken:
                return  # not-taken exits are decided when the loop ends
            self._exit_taken.add(edge.index)
            dkey = decision_key(edge.index, iteration)
        else:
            dkey = decision_key(edge.index, iteration)
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
        if edge.outside_loops:  # precomputed: the first pass of both ends
            target_it, target = 0, edge.target
            undecided = self._undecided.get(target, edge.first_pass_inputs) - 1
            arrival = edge.first_pass_arrival
        else:
            target_it = target_iteration(edge, iteration)
            target = instance_key(edge.target, target_it)
            known = self._undecided.get(target)
            if known is None:
                known = len(self.graph.inputs_of(edge.target, target_it))
            undecided = known - 1
            arrival = (edge, instance_key(edge.source, iteration))
        self._undecided[target] = undecided
        if taken:
            arrivals = self._arrivals.get(target)
            if arrivals is None:
                self._arrivals[target] = [arrival]
            elif arrivals is not _CONSUMED:
                arrivals.append(arrival)
        if target in self._fired or target in self.settled:
            return
        if edge.kind == _BACK:
            if undecided == 0:
                if target in self._arrivals:
                    self._fire(target, step)
                else:
                    self._never.add(target)
                    if step is not None:
                        loop = self.graph.loops[edge.loop]  # type: ignore[index]
                        self._maybe_end_loop(loop, iteration, step)
            return
        verdict = join_verdict(taken, edge.any_join, undecided, target in self._arrivals)
        if verdict == READY:
            self._fire(target, step)
            if taken and edge.any_join:
                self.fired_by[target] = decision_key(edge.index, iteration)
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
