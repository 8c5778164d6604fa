"""The worker: run one job (and, when cheap, the single successor after it).

Each step of a job is safe to crash after: one consistent read, the node's attempt
(``execution``), its one conditional commit, then idempotent advancing (``commits``); parked
work is in ``parking``, maps in ``fanout``, subflows in ``children``. Why each step is safe:
docs/design.md, section 3. The ``Worker`` holds only what every job shares, so several pollers
may share one worker in threads.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..blueprint import WorkflowBlueprint, load_blueprint
from ..builtins import default_registry
from ..engine import Clock, Middleware, SystemClock
from ..expressions import ExpressionError
from ..nodes import Registry
from ..runtime import FlowRuntime
from ..scheduler import CompiledGraph, GraphError, split_key
from ..status import AWAITING, WAITING
from .advance import Advancer
from .children import Children
from .client import WorkflowClient, notify_parent
from .commits import Commits, index_decisions
from .errors import PoisonJob
from .execution import Execution, JobState
from .fanout import Fanout
from .inputs import NodeInputs
from .items import ItemStore
from .job import Job
from .layout import BUCKET
from .parking import Parking
from .payloads import ValueCodec
from .plan import Plan
from .records import COMPLETED, FAILED, RUNNING, NodeRecord, RunHead
from .state import Retention, RunItems
from .stores import JobQueue, StatusStore
from .view import RunViews

logger = logging.getLogger("flowcraft.worker")

#: Failure messages are kept to this length (a node may raise with a whole HTTP body).
MAX_ERROR_CHARS = 4000
#: A worker tells the status table a run is alive at most this often (the reconciler looks
#: only at runs without a sign of life for its threshold).
HEARTBEAT_SECONDS = 60.0


@dataclass
class WorkerStats:
    nodes_executed: int = 0
    node_failures: int = 0
    retries: int = 0
    runs_completed: int = 0
    runs_failed: int = 0
    jobs_sent: int = 0
    #: The latest node durations (bounded: a long-running poller never resets its stats).
    durations_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


class Worker:
    """Executes jobs against the stores. One per container; safe to reuse across batches."""

    def __init__(
        self,
        *,
        items: ItemStore | None = None,
        runs: RunItems | None = None,
        statuses: StatusStore,
        queue: JobQueue,
        blueprints: Mapping[str, WorkflowBlueprint | Mapping[str, Any]],
        registry: Registry | None = None,
        dependencies: Mapping[str, Any] | None = None,
        middleware: Sequence[Middleware] = (),
        clock: Clock | None = None,
        codec: ValueCodec | None = None,
        retention: Retention | None = None,
        max_chain: int = 25,
        chain_reserve_ms: int = 10_000,
        bucket_size: int = BUCKET,
        webhook_base_url: str = "",
    ) -> None:
        if runs is None:
            if items is None:
                raise TypeError("Worker needs items (an ItemStore) or runs (RunItems)")
            runs = RunItems(items, codec or ValueCodec(), retention)
        self.runs = runs
        self.codec = runs.codec
        self.statuses = statuses
        self.queue = queue
        self.blueprints = {k: load_blueprint(v) for k, v in blueprints.items()}
        merged: dict[str, Any] = dict(default_registry())
        merged.update(registry or {})
        self.registry: Registry = merged
        self.dependencies = dependencies or {}
        self.middleware = list(middleware)
        self.clock: Clock = clock or SystemClock()
        self.webhook_base_url = webhook_base_url
        self.max_chain = max_chain
        self.chain_reserve_ms = chain_reserve_ms
        self.stats = WorkerStats()
        self.advancer = Advancer(self.runs, self.clock.now, bucket_size)
        self._plans: dict[str, Plan] = {}
        self._child_runtime: FlowRuntime | None = None
        self._beats: OrderedDict[str, float] = OrderedDict()
        self.execution = Execution(self)
        self.commits = Commits(self)
        self.parking = Parking(self)
        self.fanout = Fanout(self)
        self.children = Children(self)
        self.views = RunViews(self)
        self.inputs = NodeInputs(self.runs, self.views)
        self.client = WorkflowClient(
            runs=runs,
            statuses=statuses,
            queue=queue,
            blueprints=self.blueprints,
            clock=self.clock,
            registry=self.registry,
        )

    # ------------------------------------------------------------------ blueprints
    def plan(self, blueprint_id: str) -> Plan | None:
        plan = self._plans.get(blueprint_id)
        if plan is None:
            blueprint = self.blueprints.get(blueprint_id)
            if blueprint is None:
                return None
            plan = self._plans[blueprint_id] = Plan.of(CompiledGraph(blueprint))
        return plan

    def graph(self, blueprint_id: str) -> CompiledGraph | None:
        plan = self.plan(blueprint_id)
        return plan.graph if plan is not None else None

    def child_runtime(self) -> FlowRuntime:
        if self._child_runtime is None:
            self._child_runtime = FlowRuntime(
                registry=self.registry,
                blueprints=self.blueprints,
                dependencies=self.dependencies,
                middleware=self.middleware,
                clock=self.clock,
            )
        return self._child_runtime

    # ------------------------------------------------------------------ entry point
    async def handle_job(self, job: Job, remaining_ms: Callable[[], int] | None = None) -> None:
        """Process one job. Raises only when the job should be redelivered (or DLQ'd)."""
        plan = self.plan(job.blueprint_id)
        if plan is None:
            head = self.runs.head(job.run_id)
            if head is None:
                raise PoisonJob(f"job names run {job.run_id!r}, which does not exist")
            self.fail_run(head, f"unknown blueprint {job.blueprint_id!r}")
            return
        if job.item is not None:
            await self.fanout.run_item(plan, job, remaining_ms)
            return
        known: dict[str, NodeRecord] = {}
        await self.chain(job, lambda current: self._step(plan, current, known), remaining_ms)
        self.heartbeat(job.run_id)

    async def chain(
        self,
        job: Job,
        step: Callable[[Job], Awaitable[Job | None]],
        remaining_ms: Callable[[], int] | None,
    ) -> None:
        """Run ``job``, then the single job each step hands on, in this invocation (a chain,
        a map's lane), up to ``max_chain`` steps or until the time reserve is reached; what is
        left goes back on the queue."""
        steps = 0
        next_job: Job | None = job
        while next_job is not None:
            next_job = await step(next_job)
            steps += 1
            if next_job is None:
                return
            time_left = remaining_ms() if remaining_ms is not None else 10**9
            if steps >= self.max_chain or time_left < self.chain_reserve_ms:
                self.send([next_job])
                return

    def heartbeat(self, run_id: str) -> None:
        """Tell the status table the run is alive: once per container, then at most once a
        minute (the reconciler looks only at runs with no sign of life for its threshold)."""
        now = self.clock.now()
        last = self._beats.get(run_id)
        if last is not None and now - last < HEARTBEAT_SECONDS:
            return
        self._beats[run_id] = now
        self._beats.move_to_end(run_id)
        while len(self._beats) > 10_000:
            self._beats.popitem(last=False)
        self.statuses.heartbeat(run_id, now)

    # ------------------------------------------------------------------ one node
    async def _step(self, plan: Plan, job: Job, known: dict[str, NodeRecord]) -> Job | None:
        key = job.node_id
        node_id, _iteration = split_key(key)
        graph = plan.graph
        if node_id not in graph.nodes:
            head = self.runs.head(job.run_id)
            if head is None:
                raise PoisonJob(f"job names run {job.run_id!r}, which does not exist")
            if not head.final:
                self.fail_run(head, f"job names unknown node {node_id!r}")
            return None
        sources, read = self.inputs.read_for(plan, job.run_id, key, known)
        head = read.head
        if head is None:
            raise PoisonJob(f"job names run {job.run_id!r}, which does not exist")
        if head.blueprint_id != job.blueprint_id:
            self.fail_run(head, f"job names blueprint {job.blueprint_id!r}, the run is another")
            return None
        if head.final:
            return None
        state = JobState(
            job=job, plan=plan, head=head, own=read.nodes.get(key), read=read, known=known
        )
        own = state.own
        if own is not None and own.settled:
            # Redelivered: what this job's invocation committed after it is walked again, and
            # what follows is sent, as if the invocation had not died.
            return self.commits.walk(plan, head, [(key, index_decisions(own))])
        if head.status != RUNNING:
            return None  # awaiting: nothing starts until a resume
        if own is not None and own.status == WAITING:
            return await self.children.check(state)
        if own is not None and own.status == AWAITING and own.child:
            return await self.children.check(state)  # a subflow node whose child waits
        if own is not None and own.status == AWAITING:
            if own.resume is None:
                return None  # still waiting for a resume
            return await self.execution.resume(state)
        if own is not None and own.retry is not None and job.attempt < own.retry.attempt:
            return None  # an older attempt's duplicate: the next attempt is on the queue
        if not await self.parking.until_due(job):
            return None
        context = self.inputs.context_of(state)
        try:
            node_input = self.inputs.build_input(state, sources, context, read)
        except ExpressionError as exc:
            self.fail_run(head, f"node {node_id!r}: input: {exc}")
            return None
        return await self.execution.execute(state, node_input, context)

    # ------------------------------------------------------------------ the run
    def finish_run(self, head: RunHead) -> None:
        now = self.clock.now()
        closed = self.runs.transition(head.run_id, to=COMPLETED, allowed_from=[RUNNING], now=now)
        if closed is not None:
            self.stats.runs_completed += 1
            self.statuses.changed(head.run_id, COMPLETED, now)
            notify_parent(self.queue, closed)

    def fail_run(
        self, head: RunHead, message: str, *, key: str | None = None, attempts: int = 1
    ) -> RunHead | None:
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + f"... ({len(message)} characters in all)"
        logger.warning("run %s failed: %s", head.run_id, message)
        now = self.clock.now()
        closed = self.runs.fail(head.run_id, message, now, key=key, attempts=attempts)
        if closed is None:
            return None
        self.stats.runs_failed += 1
        self.statuses.changed(head.run_id, FAILED, now, error=message)
        notify_parent(self.queue, closed)
        return closed

    def send(self, jobs: list[Job], delay_seconds: int = 0) -> None:
        if jobs:
            self.queue.send(jobs, delay_seconds=delay_seconds)
            self.stats.jobs_sent += len(jobs)


__all__ = ["GraphError", "Worker", "WorkerStats"]
