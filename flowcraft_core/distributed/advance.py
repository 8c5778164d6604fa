"""What follows a settled node instance: arrivals, skips, loop ends and the run's end.

Every decided edge arrives at its target; a join records the arrival in its own small item and
fires when that item says so. Every write is idempotent, so advancing twice reaches the same
state: docs/design.md, section 3.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..scheduler import READY as JOIN_READY
from ..scheduler import SKIP as JOIN_SKIP
from ..scheduler import CompiledEdge, instance_key, join_verdict, split_key
from .layout import BUCKET, END, decode_decisions, node_key
from .plan import BACK, CUT, EXIT, Plan
from .state import RunItems

READY, SKIP, NEVER = "ready", "skip", "never"


@dataclass
class Advanced:
    """The instances a step made ready, and whether it completed the run's end join."""

    ready: list[str] = field(default_factory=list)
    #: ``ready`` as a set (a 2,000-edge fan-out checks each target in constant time).
    seen: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)
    run_complete: bool = False


class Advancer:
    def __init__(
        self, items: RunItems, clock_now: Callable[[], float], bucket_size: int = BUCKET
    ) -> None:
        self.items = items
        self.now = clock_now
        self.bucket_size = bucket_size

    def advance(
        self, plan: Plan, run_id: str, settled: list[tuple[str, dict[int, bool]]]
    ) -> Advanced:
        """Advance from instances that settled with these decisions (edge index -> taken)."""
        result = Advanced()
        work = deque(settled)
        while work:
            key, decisions = work.popleft()
            node_id, iteration = split_key(key)
            for edge in plan.graph.out_edges[node_id]:
                if edge.index not in decisions or edge.kind == CUT:
                    continue  # a cycle's closing edge is decided but starts nothing
                taken = decisions[edge.index]
                if edge.group_size > 1:
                    # One predecessor: its first edge arrives once all of them are decided.
                    members = plan.group_of(edge)
                    if edge is not members[0] or any(m.index not in decisions for m in members):
                        continue
                    taken = any(decisions[m.index] for m in members)
                self._follow(plan, run_id, edge, iteration, taken, result, work)
            loop_index = plan.graph.loop_of.get(node_id)
            if loop_index is not None:
                self._settle_member(plan, run_id, loop_index, node_id, iteration, result, work)
            elif ("node", node_id) in plan.end_position:
                self._reach_end(plan, run_id, ("node", node_id), result)
        return result

    # ------------------------------------------------------------------ one edge
    def _follow(
        self,
        plan: Plan,
        run_id: str,
        edge: CompiledEdge,
        iteration: int,
        taken: bool,
        result: Advanced,
        work: deque[tuple[str, dict[int, bool]]],
    ) -> None:
        if edge.kind == EXIT:
            if not taken:
                return  # decided when the loop ends
            loop = edge.loop
            assert loop is not None
            first = self.items.arrivals.record_exit(run_id, loop, edge.index, iteration, self.now())
            if first != iteration:
                return  # an earlier pass took this exit; that one arrived
        target_iteration = plan.target_iteration(edge, iteration)
        outcome = self.arrive(plan, run_id, edge, target_iteration, taken, result)
        self._land(plan, run_id, instance_key(edge.target, target_iteration), outcome, result, work)

    def _land(
        self,
        plan: Plan,
        run_id: str,
        target: str,
        outcome: str | None,
        result: Advanced,
        work: deque[tuple[str, dict[int, bool]]],
    ) -> None:
        """A ready target is collected; a skipped one is recorded and its edges follow."""
        if outcome == READY:
            if target not in result.seen:
                result.seen.add(target)
                result.ready.append(target)
        elif outcome == SKIP:
            decisions = plan.skipped_decisions(split_key(target)[0])
            self.items.skip(run_id, target, decisions, self.now())
            result.skipped.append(target)
            work.append((target, decisions))

    def arrive(
        self,
        plan: Plan,
        run_id: str,
        edge: CompiledEdge,
        target_iteration: int,
        taken: bool,
        result: Advanced,
    ) -> str | None:
        """Count one decided edge at its target instance: READY, SKIP, NEVER or None (wait)."""
        position, size = plan.position(edge, target_iteration)
        back = edge.kind == BACK
        if size == 1:
            if taken:
                return READY
            return NEVER if back else SKIP
        any_join = plan.is_any_join(edge.target) and not back
        target = instance_key(edge.target, target_iteration)
        arrival = self.items.arrivals.arrive(
            run_id,
            target,
            position,
            size,
            taken,
            claim=any_join,
            now=self.now(),
            bucket_size=self.bucket_size,
        )
        if any_join:
            if arrival.complete and edge.target not in plan.graph.loop_of:
                # Every input of the ``any`` join is in: its late branches have ended.
                self._reach_end(plan, run_id, ("any", edge.target), result)
            if arrival.any_taken and arrival.owner != position:
                return None  # the arrival that claimed it fired it (or will)
        # The scheduler's one join rule, on what the join's item says.
        verdict = join_verdict(taken, any_join, 0 if arrival.complete else 1, arrival.any_taken)
        if verdict == JOIN_READY:
            return READY
        if verdict == JOIN_SKIP:
            return NEVER if back else SKIP
        return None

    # ------------------------------------------------------------------ loops
    def _settle_member(
        self,
        plan: Plan,
        run_id: str,
        loop_index: int,
        node_id: str,
        iteration: int,
        result: Advanced,
        work: deque[tuple[str, dict[int, bool]]],
    ) -> None:
        positions = plan.member_position[loop_index]
        complete = self.items.arrivals.settle_member(
            run_id, loop_index, iteration, positions[node_id], len(positions), self.now()
        )
        if not complete:
            return
        loop = plan.graph.loops[loop_index]
        # The iteration is settled: did any back edge start the next one?
        sources = [instance_key(e.source, iteration) for e in loop.back_edges]
        raw = self.items.raw([node_key(run_id, s) for s in dict.fromkeys(sources)])
        started_next = False
        for edge in loop.back_edges:
            item = raw.get(node_key(run_id, instance_key(edge.source, iteration)))
            if item is not None and decode_decisions(item).get(edge.index):
                started_next = True
        if not started_next:
            taken = self.items.arrivals.end_loop(run_id, loop_index, iteration, self.now())
            for edge in loop.exit_edges:
                if str(edge.index) in taken:
                    continue
                outcome = self.arrive(plan, run_id, edge, 0, False, result)
                self._land(plan, run_id, edge.target, outcome, result, work)
        # The loop is done once it ended and every pass has settled (an earlier pass may still
        # hold a node, e.g. one waiting for a resume, after the last pass ended).
        ended = self.items.arrivals.loop_end(run_id, loop_index)
        if ended is not None and self.items.arrivals.passes_settled(
            run_id, loop_index, ended, len(positions)
        ):
            self._reach_end(plan, run_id, ("loop", loop_index), result)

    # ------------------------------------------------------------------ the run's end
    def _reach_end(self, plan: Plan, run_id: str, entry: tuple[str, Any], result: Advanced) -> None:
        position = plan.end_position.get(entry)
        if position is None:
            return
        size = len(plan.end_inputs)
        if size == 1:
            result.run_complete = True
            return
        arrival = self.items.arrivals.arrive(
            run_id,
            END,
            position,
            size,
            True,
            claim=False,
            now=self.now(),
            bucket_size=self.bucket_size,
        )
        if arrival.complete:
            result.run_complete = True
