"""Settling a node instance: its one conditional commit, then advancing from it.

Everything after the commit is idempotent (set additions, create-if-absent writes), so a
redelivered job or the reconciler may ``walk`` the same settled instances again safely:
docs/design.md, section 3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..context import BufferedContext, ContextView
from ..expressions import ExpressionError
from ..nodes import NodeResult
from ..scheduler import LoopLimitError, split_decision_key, split_key
from .advance import Advanced
from .context_view import StoredOutputs
from .errors import CommitRejected, EdgeFailed, StateTooLarge
from .job import Job
from .payloads import PayloadsUnavailable, ValueTooLarge
from .plan import Plan
from .records import NodeRecord, RunHead

if TYPE_CHECKING:
    from .execution import JobState
    from .worker import Worker

#: How far a redelivered job walks the nodes committed after it.
MAX_WALK = 10_000


class Commits:
    """Commits a node's result once, advances its edges, and hands on what became ready."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def commit(
        self,
        state: JobState,
        result: NodeResult,
        node_input: Any,
        buffered: BufferedContext,
        attempts: int,
        *,
        replace_attempt: int | None = None,
    ) -> Job | None:
        """Commit a completed instance once, then advance from it."""
        worker, plan, key, head = self.worker, state.plan, state.key, state.head
        decided = self._decide(state, result, node_input, buffered, attempts)
        if decided is None:
            return None
        decisions, edge_failure = decided
        node_id = split_key(key)[0]
        try:
            committed = worker.runs.commit(
                state.run_id,
                key,
                output=result.output,
                action=result.action,
                attempts=attempts,
                decisions=decisions,
                context_set=buffered.written,
                context_delete=buffered.deleted,
                now=worker.clock.now(),
                where=f"node {node_id!r}",
                replace_attempt=replace_attempt,
            )
        except CommitRejected as rejected:
            current = rejected.current
            if rejected.reason == "committed" and current is not None:
                return self.walk(plan, head, [(key, index_decisions(current))])
            return None
        except (StateTooLarge, ValueTooLarge, PayloadsUnavailable, TypeError) as exc:
            written = ", ".join(sorted(buffered.written)) or "none"
            message = (
                f"node {node_id!r}: {exc} (context keys written by this node: {written}); "
                "nothing of this node was stored"
            )
            worker.fail_run(head, message, key=key, attempts=attempts)
            return None
        if edge_failure is not None:
            worker.fail_run(head, str(edge_failure))
            return None
        state.known.clear()  # a chain needs only the latest link
        state.known[key] = committed
        return self.after(
            plan, head, worker.advancer.advance(plan, state.run_id, [(key, decisions)])
        )

    def _decide(
        self,
        state: JobState,
        result: NodeResult,
        node_input: Any,
        buffered: BufferedContext,
        attempts: int,
    ) -> tuple[dict[int, bool], EdgeFailed | None] | None:
        """The node's edge decisions, seeing its own output and context writes; ``None`` when
        deciding failed the run. A failing edge still lets the output commit first."""
        key = state.key
        node_id = split_key(key)[0]
        base = buffered._base
        if isinstance(base, ContextView) and isinstance(base.source, StoredOutputs):
            base.source.note(node_id, result.output)  # its own output, for its own edges
        view = buffered.view
        try:
            decided = state.plan.decide(key, result.output, result.action, view, node_input)
        except EdgeFailed as failed:
            return {}, failed
        except (ExpressionError, LoopLimitError) as exc:
            message = str(exc) if str(exc).startswith("node ") else f"node {node_id!r}: {exc}"
            self.worker.fail_run(state.head, message, key=key, attempts=attempts)
            return None
        return decided, None

    def after(self, plan: Plan, head: RunHead, advanced: Advanced) -> Job | None:
        """Send (or chain) what a step made ready; close the run when its end join is done."""
        if advanced.run_complete:
            self.worker.finish_run(head)
            return None
        jobs = [
            Job(run_id=head.run_id, blueprint_id=plan.graph.id, node_id=k) for k in advanced.ready
        ]
        if not jobs:
            self.worker.parking.check_quiet(plan, head)
            return None
        if len(jobs) == 1:
            return jobs[0]
        self.worker.send(jobs)
        return None

    def walk(
        self, plan: Plan, head: RunHead, settled: list[tuple[str, dict[int, bool]]]
    ) -> Job | None:
        """Advance again from settled instances, and through the instances they make ready
        that settled too (a chain a dead invocation ran inline), up to what is not settled."""
        ready: list[str] = []
        seen: set[str] = set()
        pending = list(settled)
        complete = False
        while pending and len(seen) < MAX_WALK:
            seen.update(k for k, _ in pending)
            advanced = self.worker.advancer.advance(plan, head.run_id, pending)
            complete = complete or advanced.run_complete
            candidates = [k for k in advanced.ready if k not in seen]
            records = self.worker.runs.nodes(head.run_id, candidates) if candidates else {}
            pending = []
            for candidate in candidates:
                record = records.get(candidate)
                if record is not None and record.settled:
                    pending.append((candidate, index_decisions(record)))
                elif candidate not in ready:
                    ready.append(candidate)
        return self.after(plan, head, Advanced(ready=ready, run_complete=complete))


def index_decisions(record: NodeRecord) -> dict[int, bool]:
    """A record's decisions by edge index (its iteration is in its key)."""
    return {split_decision_key(k)[0]: v for k, v in record.decisions.items()}
