"""A run's scheduling state: what settled, what was decided, and what that leaves to do."""

from __future__ import annotations

from typing import Any

from ._graph import CompiledEdge, CompiledGraph, EdgeKind, instance_key, split_key, target_iteration
from ._inputs import InputRules


class RunState(InputRules):
    """What a run has settled, output and decided, and the questions the drivers ask of it
    (outstanding instances, pending skips and loop ends, whether it finished)."""

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

    def all_decisions(self) -> dict[str, bool]:
        """Every edge decision made (``decisions`` plus the ones ``complete`` left implied
        when called with ``report_decisions=False``): what ``restore`` needs."""
        everything = dict(self.decisions)
        for edges in self._implied:
            for edge in edges:
                everything[edge.first_pass_decision_key] = True
        return everything

    def successor_instances(self, key: str) -> list[str]:
        """Instances that decisions made by ``key`` may have made ready."""
        node_id, iteration = split_key(key)
        found = []
        for edge in self.graph.out_edges[node_id]:
            if edge.kind != EdgeKind.CUT:
                found.append(instance_key(edge.target, target_iteration(edge, iteration)))
        return found
