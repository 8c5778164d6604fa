"""Subflow nodes as child runs: the node waits while its child runs, and finishes with it.

The child's run id is derived from the parent's and the node instance (and the attempt), so
starting it is idempotent. A finished child sends its parent's node a job (``notify_parent``),
which reads the child's head and completes, retries or fails the node.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..builtins.subflow import finish_subflow
from ..context import BufferedContext
from ..engine import NextAttempt, describe_error, handle_failure
from ..nodes import NodeContext, ResolvedNode, resolve
from ..scheduler import split_key
from ..status import AWAITING
from .commits import index_decisions
from .errors import CommitRejected, RunConflict, RunNotFound
from .job import Job
from .parking import delay_of
from .records import WAITING, PendingRetry, RunHead, child_run_id

if TYPE_CHECKING:
    from .execution import JobState
    from .worker import Worker


class Children:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def start(self, state: JobState, blueprint_id: str, context: dict[str, Any]) -> Job | None:
        """Mark the subflow node waiting, then start its child run (both idempotent)."""
        worker = self.worker
        key, run_id = state.key, state.run_id
        own = state.own
        child_id = (own.child if own is not None and own.child else None) or child_run_id(
            run_id, key
        )
        if blueprint_id not in worker.blueprints:
            node_id = split_key(key)[0]
            message = f"node {node_id!r}: subflow blueprint {blueprint_id!r} is not registered"
            worker.fail_run(state.head, message, key=key)
            return None
        attempts = own.attempts if own is not None else state.job.attempt
        try:
            worker.runs.park(
                run_id,
                key,
                status=WAITING,
                now=worker.clock.now(),
                child=child_id,
                attempts=attempts,
            )
        except CommitRejected as rejected:
            if rejected.reason == "committed" and rejected.current is not None:
                return worker.commits.walk(
                    state.plan, state.head, [(key, index_decisions(rejected.current))]
                )
            return None
        parent = {"runId": run_id, "blueprintId": state.plan.graph.id, "node": key}
        worker.client.start(blueprint_id, context, run_id=child_id, parent=parent)
        # A cancel acknowledged between marking the node and starting the child must reach it.
        head = worker.runs.head(run_id)
        if head is None or head.final:
            with contextlib.suppress(RunConflict, RunNotFound):
                worker.client.cancel(child_id)
        return None

    async def check(self, state: JobState) -> Job | None:
        """The subflow node's job after its child started: finish it once the child ended."""
        worker = self.worker
        job, key, run_id = state.job, state.key, state.run_id
        own = state.own
        assert own is not None
        if not await worker.parking.until_due(job):
            return None  # its next child starts after the delay
        node = state.plan.graph.nodes[split_key(key)[0]]
        child_id = own.child or child_run_id(run_id, key)
        child = worker.runs.head(child_id)
        if child is not None and not child.final:
            if child.status == AWAITING and own.status != AWAITING:
                self._wait_with(state, child)
            return None  # nothing to build yet: the child's end sends this job again
        context = worker.inputs.context_of(state)
        node_input = worker.inputs.input_of(state, context)
        if child is None:
            # Crashed between marking the node and starting the child: run the node again,
            # which starts the child (idempotently).
            return await worker.execution.execute(state, node_input, context)
        child_context = {
            k: worker.runs.context_value(child_id, k, v) for k, v in child.context.items()
        }
        child_outputs = self._outputs_of(child.blueprint_id, child_id)
        buffered = BufferedContext(context)
        ctx = worker.execution.node_context(
            state, buffered, node_input, node.params, node.id, own.attempts
        )
        blueprint_id = str(node.params.get("blueprintId"))
        try:
            result = await finish_subflow(
                ctx, blueprint_id, child.status, child_context, child.error or "", child_outputs
            )
        except Exception as exc:
            return await self._failed(state, ctx, exc, node_input, buffered)
        return worker.commits.commit(state, result, node_input, buffered, own.attempts)

    async def _failed(
        self,
        state: JobState,
        ctx: NodeContext,
        exc: Exception,
        node_input: Any,
        buffered: BufferedContext,
    ) -> Job | None:
        """The engine's failure step for a subflow node whose child did not complete: a retry
        starts a new child run, else the fallback's result commits, else the run fails."""
        worker, attempts = self.worker, ctx.attempt
        node = state.plan.graph.nodes[split_key(state.key)[0]]
        try:
            resolved: ResolvedNode | None = resolve(worker.registry, node.uses, node.params)
        except Exception:
            resolved = None  # its implementation is gone meanwhile: no hooks, no fallback
        after = await handle_failure(node, resolved, ctx, exc, worker.registry)
        if after.retry is not None:
            return self._retry(state, attempts, after.retry)
        if after.result is not None:
            return worker.commits.commit(state, after.result, node_input, buffered, attempts)
        message = f"node {node.id!r}: {after.message or describe_error(exc)}"
        worker.fail_run(state.head, message, key=state.key, attempts=attempts)
        return None

    def _wait_with(self, state: JobState, child: RunHead) -> None:
        """The child waits for a resume: so does this node (resuming it resumes the child)."""
        worker = self.worker
        shown = {
            "subflow": child.blueprint_id,
            "runId": child.run_id,
            "awaiting": sorted(child.waits),
        }
        try:
            worker.runs.park(
                state.run_id, state.key, status=AWAITING, now=worker.clock.now(), output=shown
            )
        except CommitRejected:
            return
        worker.runs.add_wait(state.run_id, state.key)
        worker.views.park_if_quiet(state.plan, state.run_id)

    def _outputs_of(self, blueprint_id: str, child_id: str) -> dict[str, Any] | None:
        """The child's latest output per node (what ``outputs`` mappings and the terminal
        default read); None when its blueprint is unknown here."""
        from .view import load_run

        plan = self.worker.plan(blueprint_id)
        if plan is None:
            return None
        record = load_run(self.worker.runs, plan, child_id)
        if record is None:
            return None
        outputs: dict[str, Any] = record.to_api()["outputs"]
        return outputs

    def _retry(self, state: JobState, attempts: int, verdict: NextAttempt) -> Job | None:
        """The node's next attempt starts a new child run (the failed one stays for reading)."""
        worker = self.worker
        key, run_id = state.key, state.run_id
        following = verdict.attempt or attempts + 1
        delay = verdict.delay
        not_before = worker.clock.now() + delay if delay > 0 else None
        try:
            worker.runs.park(
                run_id,
                key,
                status=WAITING,
                now=worker.clock.now(),
                attempts=following,
                child=child_run_id(run_id, key, following),
                retry=PendingRetry(following, not_before) if not_before else None,
                replace_attempt=attempts,
            )
        except CommitRejected:
            return None  # another delivery retried it already
        worker.stats.retries += 1
        job = Job(
            run_id=run_id,
            blueprint_id=state.plan.graph.id,
            node_id=key,
            attempt=following,
            not_before=not_before,
        )
        worker.send([job], delay_seconds=delay_of(delay))
        return None
