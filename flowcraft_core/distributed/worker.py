"""The worker: run one job (and, when cheap, the single successor after it).

Per job, each step safe to crash after:

1. one consistent read: the run's head (status, context), the node's own item and the items of
   the predecessors its input is built from; a closed run starts nothing, and a node that
   already settled is not run again: its successors are advanced again (invariant 3);
2. execute the node through the engine, its context writes buffered;
3. commit its output, action, decisions (and context writes) in one conditional write;
4. advance: each decided edge arrives at its target (``advance``); ready successors are sent,
   or the single one is run in this invocation; the run's end join closes the run.

Parking (sleeps, retries, waits) is in ``parking``, maps in ``fanout``, subflows in ``children``.
Per-job state travels in a ``JobState``; the ``Worker`` holds only what every job shares, so
several pollers may share one worker in threads.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..blueprint import NodeDefinition, WorkflowBlueprint, load_blueprint
from ..builtins import default_registry
from ..builtins.map import MapSpec
from ..context import BufferedContext, ContextView
from ..engine import (
    Clock,
    Middleware,
    SystemClock,
    attempt_once,
    describe_error,
    fallback_failed,
    recover,
    run_fallback,
)
from ..expressions import ExpressionError
from ..nodes import (
    CancellationSignal,
    NodeContext,
    NodeResult,
    Registry,
    ResolvedNode,
    UnknownImplementationError,
    resolve,
)
from ..runtime import FlowRuntime, WorkflowResult
from ..scheduler import (
    CompiledGraph,
    GraphError,
    LoopLimitError,
    split_key,
)
from ..status import AWAITING
from .advance import Advanced, Advancer
from .context_view import OverlayContext, StoredOutputs
from .errors import CommitRejected, EdgeFailed, PoisonJob, StateTooLarge
from .items import ItemStore
from .job import Job
from .layout import BUCKET
from .payloads import PayloadsUnavailable, ValueCodec, ValueTooLarge
from .plan import Plan
from .records import COMPLETED, FAILED, RUNNING, NodeRecord, RunHead
from .state import JobRead, Retention, RunItems
from .stores import JobQueue, StatusStore

logger = logging.getLogger("flowcraft.worker")

#: SQS's longest message delay; longer sleeps are re-parked when they come back early.
MAX_DELAY_SECONDS = 900
#: Failure messages are kept to this length (a node may raise with a whole HTTP body).
MAX_ERROR_CHARS = 4000
#: How far a redelivered job walks the nodes committed after it.
MAX_WALK = 10_000
#: Sleeps shorter than this are slept in-process rather than parked on the queue.
INLINE_SLEEP_SECONDS = 1.0
#: A worker tells the status table a run is alive at most this often (the reconciler looks
#: only at runs without a sign of life for its threshold).
HEARTBEAT_SECONDS = 60.0


class FanOut(Exception):
    """Raised by the distributed map service: run this map as one queued job per item."""

    def __init__(self, spec: MapSpec) -> None:
        super().__init__(f"fan out over {len(spec.items)} items")
        self.spec = spec


class StartChild(Exception):
    """Raised by the distributed subflow service: run the blueprint as a child run."""

    def __init__(self, blueprint_id: str, context: dict[str, Any]) -> None:
        super().__init__(f"start child run of {blueprint_id!r}")
        self.blueprint_id = blueprint_id
        self.context = context


class Suspend(Exception):
    """Raised by the distributed sleep service: park this node until ``until``."""

    def __init__(self, until: float) -> None:
        super().__init__(f"suspended until {until}")
        self.until = until


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


@dataclass
class JobState:
    """What one job knows while it runs (never stored on the shared worker)."""

    job: Job
    plan: Plan
    head: RunHead
    own: NodeRecord | None = None
    read: JobRead | None = None
    #: Records this invocation committed (a chain run inline reads its predecessor from here).
    known: dict[str, NodeRecord] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.job.run_id

    @property
    def key(self) -> str:
        return self.job.node_id


class JobServices:
    """What built-ins get from the distributed driver, for one job."""

    def __init__(self, worker: Worker, wake: float | None) -> None:
        self.registry: Registry = worker.registry
        self.blueprints: Mapping[str, Any] = worker.blueprints
        self.clock: Clock = worker.clock
        self.wake = wake
        #: Where webhook nodes' URLs point (the API's base URL; a path alone without it).
        self.webhook_base_url = worker.webhook_base_url

    async def sleep(self, ctx: NodeContext, seconds: float) -> None:
        if self.wake is None:
            if seconds <= INLINE_SLEEP_SECONDS:
                await self.clock.sleep(seconds)
                return
            raise Suspend(self.clock.now() + seconds)
        if self.clock.now() < self.wake:
            raise Suspend(self.wake)  # woke early (SQS delays top out at 15 minutes)

    async def map_items(self, ctx: NodeContext, spec: MapSpec) -> list[Any]:
        raise FanOut(spec)

    async def run_subflow(
        self, ctx: NodeContext, blueprint_id: str, context: dict[str, Any]
    ) -> WorkflowResult:
        raise StartChild(blueprint_id, context)


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
        from .children import Children
        from .client import WorkflowClient
        from .fanout import Fanout
        from .inputs import NodeInputs
        from .parking import Parking
        from .view import RunViews

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

    async def fallback_or_fail(
        self,
        state: JobState,
        error: BaseException,
        message: str,
        node_input: Any,
        buffered: BufferedContext,
        attempts: int,
    ) -> Job | None:
        """A node whose work failed for good outside a plain attempt (a subflow's child, a
        map's item): its ``fallback``, if any, runs with the node's input as in memory, and
        its result commits; otherwise the run fails with ``message``."""
        node = state.plan.graph.nodes[split_key(state.key)[0]]
        if node.config.fallback:
            ctx = self.node_context(state, buffered, node_input, node.params, node.id, attempts)
            try:
                resolved = resolve(self.registry, node.uses, node.params)
            except Exception as resolve_exc:
                message = fallback_failed(message, node, resolve_exc)
            else:
                outcome = await self._fallback(node, resolved, ctx, error, message)
                if isinstance(outcome, NodeResult):
                    return self.commit(state, outcome, node_input, buffered, attempts)
                message = outcome
        self.fail_run(state.head, message, key=state.key, attempts=attempts)
        return None

    async def _fallback(
        self,
        node: NodeDefinition,
        resolved: ResolvedNode,
        ctx: NodeContext,
        error: BaseException,
        message: str,
    ) -> NodeResult | str:
        """The node's fallback result, or the message the run fails with (naming the
        fallback's own failure when it raised)."""
        try:
            recovered = await run_fallback(node, resolved, ctx, error, self.registry)
        except Exception as fallback_exc:
            return fallback_failed(message, node, fallback_exc)
        return message if recovered is None else recovered

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
            return self.walk(plan, head, [(key, index_decisions(own))])
        if head.status != RUNNING:
            return None  # awaiting: nothing starts until a resume
        if own is not None and own.status == "waiting":
            return await self.children.check(state)
        if own is not None and own.status == AWAITING and own.child:
            return await self.children.check(state)  # a subflow node whose child waits
        if own is not None and own.status == AWAITING:
            if own.resume is None:
                return None  # still waiting for a resume
            return await self._resume(state)
        if own is not None and own.retry is not None and job.attempt < own.retry["attempt"]:
            return None  # an older attempt's duplicate: the next attempt is on the queue
        if not await self.parking.until_due(job):
            return None
        context = self.inputs.context_of(state)
        try:
            node_input = self.inputs.build_input(state, sources, context, read)
        except ExpressionError as exc:
            self.fail_run(head, f"node {node_id!r}: input: {exc}")
            return None
        return await self._execute(state, node_input, context)

    # ------------------------------------------------------------------ executing
    def node_context(
        self,
        state: JobState,
        context: BufferedContext,
        node_input: Any,
        params: Mapping[str, Any],
        node_id: str,
        attempt: int,
        wake: float | None = None,
    ) -> NodeContext:
        """What a node (or a map item, or a fallback) sees when this worker runs it."""
        return NodeContext(
            context=context,
            input=node_input,
            params=params,
            dependencies=self.dependencies,
            run_id=state.run_id,
            node_id=node_id,
            attempt=attempt,
            iteration=split_key(state.key)[1],
            blueprint_id=state.plan.graph.id,
            signal=CancellationSignal(),
            services=JobServices(self, wake),
        )

    async def _execute(
        self, state: JobState, node_input: Any, context: Mapping[str, Any]
    ) -> Job | None:
        job, plan = state.job, state.plan
        node = plan.graph.nodes[split_key(state.key)[0]]
        try:
            resolved = resolve(self.registry, node.uses, node.params)
        except UnknownImplementationError as exc:
            self.fail_run(state.head, f"node {node.id!r}: {exc}")
            return None
        buffered = BufferedContext(context)
        wake = state.own.wake if state.own is not None else None
        ctx = self.node_context(
            state, buffered, node_input, node.params, node.id, job.attempt, wake
        )
        started = time.perf_counter()
        try:
            result = await attempt_once(resolved, ctx, node.config, self.middleware)
        except Suspend as suspend:
            self.parking.sleep(state, state.key, suspend.until)
            return None
        except FanOut as fan_out:
            return self.fanout.start(state, fan_out.spec, node_input)
        except StartChild as start:
            return self.children.start(state, start.blueprint_id, start.context)
        except Exception as exc:
            self.stats.node_failures += 1
            try:
                # A class node's clean-up after each failed attempt, as in memory.
                await recover(resolved, exc, ctx)
            except Exception as recover_exc:
                message = (
                    f"node {node.id!r}: {describe_error(exc)}; recover failed: "
                    f"{describe_error(recover_exc)}"
                )
                self.fail_run(state.head, message, key=state.key, attempts=job.attempt)
                return None
            if self.parking.retry(state, state.key, node.config, exc, node.id):
                return None
            message = f"node {node.id!r}: {describe_error(exc)}"
            outcome = await self._fallback(node, resolved, ctx, exc, message)
            if not isinstance(outcome, NodeResult):
                self.fail_run(state.head, outcome, key=state.key, attempts=job.attempt)
                return None
            result = outcome
        finally:
            self.stats.durations_ms.append((time.perf_counter() - started) * 1000)
        self.stats.nodes_executed += 1
        if result.awaiting:
            self.parking.wait(state, state.key, job.attempt, result.output)
            return None
        return self.commit(state, result, node_input, buffered, job.attempt)

    async def _resume(self, state: JobState) -> Job | None:
        assert state.own is not None and state.own.resume is not None
        resume = state.own.resume
        result = NodeResult(
            output=self.codec.decode(resume.get("output")), action=resume.get("action")
        )
        context = self.inputs.context_of(state)
        node_input = self.inputs.input_of(state, context)
        return self.commit(state, result, node_input, BufferedContext(context), state.own.attempts)

    # ------------------------------------------------------------------ committing
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
        plan, key, head = state.plan, state.key, state.head
        node_id = split_key(key)[0]
        base = buffered._base
        if isinstance(base, ContextView) and isinstance(base.source, StoredOutputs):
            base.source.note(node_id, result.output)  # its own output, for its own edges
        view = OverlayContext(base, buffered.written, buffered.deleted)
        edge_failure: EdgeFailed | None = None
        try:
            decisions = plan.decide(key, result.output, result.action, view, node_input)
        except EdgeFailed as failed:
            # The node did its work: its output is committed; the run fails naming the edge.
            decisions, edge_failure = {}, failed
        except (ExpressionError, LoopLimitError) as exc:
            message = str(exc) if str(exc).startswith("node ") else f"node {node_id!r}: {exc}"
            self.fail_run(head, message, key=key, attempts=attempts)
            return None
        now = self.clock.now()
        try:
            committed = self.runs.commit(
                state.run_id,
                key,
                output=result.output,
                action=result.action,
                attempts=attempts,
                decisions=decisions,
                context_set=buffered.written,
                context_delete=buffered.deleted,
                now=now,
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
            self.fail_run(head, message, key=key, attempts=attempts)
            return None
        if edge_failure is not None:
            self.fail_run(head, str(edge_failure))
            return None
        state.known.clear()  # a chain needs only the latest link
        state.known[key] = committed
        return self.after(plan, head, self.advancer.advance(plan, state.run_id, [(key, decisions)]))

    def after(self, plan: Plan, head: RunHead, advanced: Advanced) -> Job | None:
        """Send (or chain) what a step made ready; close the run when its end join is done."""
        if advanced.run_complete:
            self.finish_run(head)
            return None
        jobs = [
            Job(run_id=head.run_id, blueprint_id=plan.graph.id, node_id=k) for k in advanced.ready
        ]
        if not jobs:
            self.parking.check_quiet(plan, head)
            return None
        if len(jobs) == 1:
            return jobs[0]
        self.send(jobs)
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
            advanced = self.advancer.advance(plan, head.run_id, pending)
            complete = complete or advanced.run_complete
            candidates = [k for k in advanced.ready if k not in seen]
            records = self.runs.nodes(head.run_id, candidates) if candidates else {}
            pending = []
            for candidate in candidates:
                record = records.get(candidate)
                if record is not None and record.settled:
                    pending.append((candidate, index_decisions(record)))
                elif candidate not in ready:
                    ready.append(candidate)
        return self.after(plan, head, Advanced(ready=ready, run_complete=complete))

    # ------------------------------------------------------------------ the run
    def finish_run(self, head: RunHead) -> None:
        from .client import notify_parent

        now = self.clock.now()
        closed = self.runs.transition(head.run_id, to=COMPLETED, allowed_from=[RUNNING], now=now)
        if closed is not None:
            self.stats.runs_completed += 1
            self.statuses.changed(head.run_id, COMPLETED, now)
            notify_parent(self.queue, closed)

    def fail_run(
        self, head: RunHead, message: str, *, key: str | None = None, attempts: int = 1
    ) -> RunHead | None:
        from .client import notify_parent

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


def index_decisions(record: NodeRecord) -> dict[int, bool]:
    """A record's decisions by edge index (its iteration is in its key)."""
    return {int(k.partition("@")[0]): v for k, v in record.decisions.items()}


__all__ = ["GraphError", "JobState", "Suspend", "Worker", "WorkerStats"]
