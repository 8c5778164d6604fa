"""The worker step: run one job (and, when cheap, the single successor after it).

Protocol per job, each step safe to crash after:

1. load the run record (one consistent read); a closed run or a committed node is not re-run:
   a committed node only has its successors re-derived and re-sent (invariant 3);
2. execute the node through the engine with a buffered context;
3. commit output, context writes and edge decisions in one conditional write (at most once);
4. from the committed record, derive skips and ready successors, send them (or run the single
   successor in this invocation), and close the run when it is finished.

Retries go back through the queue with a delay; sleeps park the job on the queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..blueprint import NodeConfig, NodeDefinition, WorkflowBlueprint, load_blueprint
from ..builtins import default_registry
from ..builtins.map import MapItemError, MapSpec, item_context
from ..builtins.subflow import finish_subflow
from ..context import BufferedContext
from ..engine import (
    Clock,
    Middleware,
    SystemClock,
    attempt_once,
    describe_error,
    retry_delay_seconds,
    run_fallback,
)
from ..expressions import ExpressionError
from ..nodes import (
    CancellationSignal,
    NodeContext,
    NodeResult,
    Registry,
    UnknownImplementationError,
    resolve,
)
from ..runtime import FlowRuntime, WorkflowResult
from ..scheduler import (
    AWAITING,
    CompiledGraph,
    GraphError,
    LoopLimitError,
    Scheduler,
    Step,
    decision_source,
    split_key,
)
from .client import WorkflowClient, notify_parent
from .errors import (
    CommitRejected,
    DeferJob,
    PoisonJob,
    RunConflict,
    RunNotFound,
    StateTooLarge,
)
from .job import Job
from .records import COMPLETED, FAILED, RUNNING, WAITING, NodeRecord, RunRecord, child_run_id
from .stores import JobQueue, RunStore, StatusStore

logger = logging.getLogger("flowcraft.worker")

#: SQS's longest message delay; longer sleeps are re-parked when they come back early.
MAX_DELAY_SECONDS = 900
#: The run record must stay under DynamoDB's 400 KB item limit; we refuse a commit that would
#: bring it near (JSON size approximates DynamoDB's count), before sending it.
MAX_RUN_BYTES = 380_000
#: Failure messages are kept to this length (a node may raise with a whole HTTP body).
MAX_ERROR_CHARS = 4000
#: How far a redelivered job walks the nodes committed after it.
MAX_WALK = 10_000
#: Skipped nodes a commit carries along (more are recorded right after, in chunks).
SKIPS_IN_COMMIT = 10
#: Skipped nodes recorded per write (keeps each update expression well under DynamoDB's 4 KB).
SKIPS_PER_WRITE = 25
#: Sleeps shorter than this are slept in-process rather than parked on the queue.
INLINE_SLEEP_SECONDS = 1.0


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


class _Services:
    """What built-ins get from the distributed driver."""

    def __init__(self, worker: Worker) -> None:
        self.registry: Registry = worker.registry
        self.blueprints: Mapping[str, Any] = worker.blueprints
        self.clock: Clock = worker.clock
        self._worker = worker
        #: Wake-up times of parked sleeps in the run being executed, and the key the running
        #: node (or map item) parks under (set per job).
        self.timers: Mapping[str, float] = {}
        self.park_key = ""

    async def sleep(self, ctx: NodeContext, seconds: float) -> None:
        wake = self.timers.get(self.park_key)
        if wake is None:
            if seconds <= INLINE_SLEEP_SECONDS:
                await self.clock.sleep(seconds)
                return
            raise Suspend(self.clock.now() + seconds)
        if self.clock.now() < wake:
            raise Suspend(wake)  # woke early (SQS delays top out at 15 minutes)

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
        runs: RunStore,
        statuses: StatusStore,
        queue: JobQueue,
        blueprints: Mapping[str, WorkflowBlueprint | Mapping[str, Any]],
        registry: Registry | None = None,
        dependencies: Mapping[str, Any] | None = None,
        middleware: Sequence[Middleware] = (),
        clock: Clock | None = None,
        max_chain: int = 25,
        chain_reserve_ms: int = 10_000,
    ) -> None:
        self.runs = runs
        self.statuses = statuses
        self.queue = queue
        self.blueprints = {k: load_blueprint(v) for k, v in blueprints.items()}
        merged: dict[str, Any] = dict(default_registry())
        merged.update(registry or {})
        self.registry: Registry = merged
        self.dependencies = dependencies or {}
        self.middleware = list(middleware)
        self.clock: Clock = clock or SystemClock()
        self.max_chain = max_chain
        self.chain_reserve_ms = chain_reserve_ms
        self.stats = WorkerStats()
        self._graphs: dict[str, CompiledGraph] = {}
        self._child_runtime: FlowRuntime | None = None
        self.services = _Services(self)
        self.client = WorkflowClient(
            runs=runs, statuses=statuses, queue=queue, blueprints=self.blueprints, clock=self.clock
        )

    def graph(self, blueprint_id: str) -> CompiledGraph | None:
        graph = self._graphs.get(blueprint_id)
        if graph is None:
            blueprint = self.blueprints.get(blueprint_id)
            if blueprint is None:
                return None
            graph = self._graphs[blueprint_id] = CompiledGraph(blueprint)
        return graph

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
        record = self.runs.load(job.run_id)
        if record is None:
            raise PoisonJob(f"job names run {job.run_id!r}, which does not exist")
        graph = self.graph(job.blueprint_id)
        if graph is None or record.blueprint_id != job.blueprint_id:
            self._fail_run(record, f"unknown blueprint {job.blueprint_id!r}")
            return
        chained = 0
        next_job: Job | None = job
        while next_job is not None:
            current = next_job
            try:
                next_job, record = await self._step(graph, current, record)
            except StateTooLarge as exc:
                # A write near the 400 KB limit (parking, a retry, skips): the run cannot go on.
                node_id = split_key(current.node_id)[0]
                message = f"node {node_id!r}: the run's state is over DynamoDB's item limit: {exc}"
                self._fail_run(record, message)
                return
            chained += 1
            if next_job is None:
                break
            time_left = remaining_ms() if remaining_ms is not None else 10**9
            if chained >= self.max_chain or time_left < self.chain_reserve_ms:
                self._send([next_job])
                break

    # ------------------------------------------------------------------ one node
    async def _step(
        self, graph: CompiledGraph, job: Job, record: RunRecord
    ) -> tuple[Job | None, RunRecord]:
        key = job.node_id
        node_id, _ = split_key(key)
        if record.final or node_id not in graph.nodes:
            if not record.final:
                self._fail_run(record, f"job names unknown node {node_id!r}")
            return None, record
        existing = record.nodes.get(key)
        resume = record.resumes.get(key)
        if record.status == RUNNING and existing is not None and existing.status == WAITING:
            if job.not_before is not None and self.clock.now() < job.not_before:
                self._not_yet(job)  # its next child starts after the delay
                return None, record
            return await self._check_child(graph, record, key)
        if existing is not None and existing.status not in (AWAITING, WAITING):
            # Redelivered: walk what this job's invocation committed after it (a chain run
            # inline), then send what follows, as if the invocation had not died.
            walked = self._committed_after(graph, record, key)
            return self._advance(graph, record, walked), record
        if record.status != RUNNING:
            return None, record  # awaiting or closed: nothing may start
        if existing is not None and resume is None:
            return None, record  # still waiting for a resume
        if job.not_before is not None and self.clock.now() < job.not_before:
            self._not_yet(job)
            return None, record
        sched = record.scheduler(graph)
        node = graph.nodes[node_id]
        if job.item is not None:
            return await self._map_item(graph, record, sched, job)
        if resume is not None:
            result = NodeResult(output=resume.get("output"), action=resume.get("action"))
            node_input = sched.build_input(key, record.context)
            return self._commit(
                graph, record, sched, key, result, node_input, BufferedContext({}), 1
            )
        return await self._execute(graph, record, sched, node, job)

    def _not_yet(self, job: Job) -> None:
        """A job that came back before it is due: park it again (or defer it on FIFO)."""
        assert job.not_before is not None
        remaining = job.not_before - self.clock.now()
        if not getattr(self.queue, "supports_delay", True):
            raise DeferJob(remaining)
        self.queue.send([job], delay_seconds=min(MAX_DELAY_SECONDS, math.ceil(remaining)))

    def _committed_after(self, graph: CompiledGraph, record: RunRecord, key: str) -> list[str]:
        """``key`` and the settled instances reachable from it through settled instances."""
        sched = record.scheduler(graph)
        walked = [key]
        seen = {key}
        position = 0
        while position < len(walked) and len(walked) < MAX_WALK:
            for successor in sched.successor_instances(walked[position]):
                if successor not in seen and successor in sched.settled:
                    seen.add(successor)
                    walked.append(successor)
            position += 1
        return walked

    async def _execute(
        self,
        graph: CompiledGraph,
        record: RunRecord,
        sched: Scheduler,
        node: NodeDefinition,
        job: Job,
    ) -> tuple[Job | None, RunRecord]:
        key = job.node_id
        try:
            node_input = sched.build_input(key, record.context)
        except ExpressionError as exc:
            return None, self._fail_run(record, f"node {node.id!r}: input: {exc}")
        try:
            resolved = resolve(self.registry, node.uses, node.params)
        except UnknownImplementationError as exc:
            return None, self._fail_run(record, f"node {node.id!r}: {exc}")
        buffered = BufferedContext(record.context)
        ctx = self._node_context(
            record, graph, key, buffered, node_input, node.params, node.id, job.attempt
        )
        started = time.perf_counter()
        self.services.timers = record.timers
        self.services.park_key = key
        try:
            result = await attempt_once(resolved, ctx, node.config, self.middleware)
        except Suspend as suspend:
            self._park_sleep(graph, record, job, key, suspend.until)
            return None, record
        except FanOut as fan_out:
            return self._start_fanout(graph, record, sched, job, fan_out.spec, node_input)
        except StartChild as start:
            return self._start_child(graph, record, key, start), record
        except Exception as exc:
            self.stats.node_failures += 1
            if self._retry(job, node.config, exc, node.id, record):
                return None, record
            try:
                recovered = await run_fallback(node, resolved, ctx, exc, self.registry)
            except Exception as fallback_exc:
                message = (
                    f"node {node.id!r}: {describe_error(exc)}; fallback failed: "
                    f"{describe_error(fallback_exc)}"
                )
                return None, self._fail_run(record, message, key=key, attempts=job.attempt)
            if recovered is None:
                message = f"node {node.id!r}: {describe_error(exc)}"
                return None, self._fail_run(record, message, key=key, attempts=job.attempt)
            result = recovered
        finally:
            self.stats.durations_ms.append((time.perf_counter() - started) * 1000)
        self.stats.nodes_executed += 1
        if result.awaiting:
            return None, self._park_wait(graph, record, key, job.attempt)
        return self._commit(graph, record, sched, key, result, node_input, buffered, job.attempt)

    def _node_context(
        self,
        record: RunRecord,
        graph: CompiledGraph,
        key: str,
        context: BufferedContext,
        node_input: Any,
        params: Mapping[str, Any],
        node_id: str,
        attempt: int,
    ) -> NodeContext:
        """What a node (or a map item, or a fallback) sees when this worker runs it."""
        return NodeContext(
            context=context,
            input=node_input,
            params=params,
            dependencies=self.dependencies,
            run_id=record.run_id,
            node_id=node_id,
            attempt=attempt,
            iteration=split_key(key)[1],
            blueprint_id=graph.id,
            signal=CancellationSignal(),
            services=self.services,
        )

    def _retry(
        self, job: Job, config: NodeConfig, exc: BaseException, label: str, record: RunRecord
    ) -> bool:
        """Send the next attempt with the retry delay; False when attempts are spent.

        The pending attempt is recorded first (one write; retries are rare), so a reconciler
        pass that finds the run quiet re-sends this attempt when it is due instead of starting
        the node over at attempt one.
        """
        if job.attempt > config.max_retries:
            return False
        delay = retry_delay_seconds(config, job.attempt)
        not_before = self.clock.now() + delay
        retry = job.model_copy(update={"attempt": job.attempt + 1, "not_before": not_before})
        park_key = park_key_of(job)
        try:
            record = self.runs.record_progress(
                record.run_id,
                nodes={},
                decisions={},
                now=self.clock.now(),
                retries={park_key: {"attempt": retry.attempt, "notBefore": not_before}},
            )
        except CommitRejected:
            return True  # the run closed: nothing to retry
        self.stats.retries += 1
        logger.info(
            "%s attempt %d failed (%s); retrying in %.3fs",
            label,
            job.attempt,
            describe_error(exc),
            delay,
        )
        self._send([retry], delay_seconds=min(MAX_DELAY_SECONDS, math.ceil(delay)))
        self._heartbeat_if_parked(record)
        return True

    # ------------------------------------------------------------------ subflows as child runs
    def _start_child(
        self, graph: CompiledGraph, record: RunRecord, key: str, start: StartChild
    ) -> Job | None:
        """Mark the subflow node waiting, then start its child run (both idempotent)."""
        child_id = record.child_of(key) or child_run_id(record.run_id, key)
        if start.blueprint_id not in self.blueprints:
            node_id = split_key(key)[0]
            message = (
                f"node {node_id!r}: subflow blueprint {start.blueprint_id!r} is not registered"
            )
            self._fail_run(record, message, key=key)
            return None
        try:
            self.runs.commit(
                record.run_id,
                key,
                NodeRecord(status=WAITING, output={"childRunId": child_id}),
                context_set={},
                context_delete=(),
                now=self.clock.now(),
            )
        except CommitRejected as rejected:
            if rejected.reason == "committed" and rejected.current is not None:
                return self._advance(graph, rejected.current, [key])
            if rejected.reason != "parked":
                return None  # the run closed meanwhile
        parent = {"runId": record.run_id, "blueprintId": graph.id, "node": key}
        self.client.start(start.blueprint_id, start.context, run_id=child_id, parent=parent)
        # A cancel acknowledged between marking the node and starting the child must reach it.
        current = self.runs.load(record.run_id)
        if current is None or current.final:
            with contextlib.suppress(RunConflict, RunNotFound):
                self.client.cancel(child_id)
        return None

    async def _check_child(
        self, graph: CompiledGraph, record: RunRecord, key: str
    ) -> tuple[Job | None, RunRecord]:
        """The subflow node's job after its child started: finish it once the child ended."""
        node = graph.nodes[split_key(key)[0]]
        child_id = record.child_of(key) or child_run_id(record.run_id, key)
        child = self.runs.load(child_id)
        if child is None:
            # Crashed between marking the node and starting the child: run the node again,
            # which starts the child (idempotently).
            return await self._execute(
                graph,
                record,
                record.scheduler(graph),
                node,
                Job(run_id=record.run_id, blueprint_id=graph.id, node_id=key),
            )
        if not child.final:
            return None, record
        sched = record.scheduler(graph)
        node_input = sched.build_input(key, record.context)
        buffered = BufferedContext(record.context)
        ctx = self._node_context(record, graph, key, buffered, node_input, node.params, node.id, 1)
        blueprint_id = str(node.params.get("blueprintId"))
        try:
            result = await finish_subflow(
                ctx, blueprint_id, child.status, child.context, child.error or ""
            )
        except Exception as exc:
            attempts = record.nodes[key].attempts
            if attempts <= node.config.max_retries:
                return await self._retry_child(graph, record, node, key, attempts)
            return await self._fallback_or_fail(
                graph, record, sched, node, key, exc, f"node {node.id!r}: {exc}", attempts
            )
        attempts = record.nodes[key].attempts
        return self._commit(graph, record, sched, key, result, node_input, buffered, attempts)

    async def _retry_child(
        self, graph: CompiledGraph, record: RunRecord, node: NodeDefinition, key: str, attempts: int
    ) -> tuple[Job | None, RunRecord]:
        """The node's next attempt starts a new child run (the failed one stays for reading)."""
        following = attempts + 1
        try:
            record = self.runs.commit(
                record.run_id,
                key,
                NodeRecord(
                    status=WAITING,
                    attempts=following,
                    output={"childRunId": child_run_id(record.run_id, key, following)},
                ),
                context_set={},
                context_delete=(),
                now=self.clock.now(),
                replace_attempt=attempts,
            )
        except CommitRejected as rejected:
            return None, rejected.current or record  # another delivery retried it already
        self.stats.retries += 1
        job = Job(run_id=record.run_id, blueprint_id=graph.id, node_id=key, attempt=following)
        delay = retry_delay_seconds(node.config, attempts)
        if delay > 0:
            # Like any retry: recorded for the reconciler, then parked on the queue.
            job.not_before = self.clock.now() + delay
            record = self.runs.record_progress(
                record.run_id,
                nodes={},
                decisions={},
                now=self.clock.now(),
                retries={key: {"attempt": following, "notBefore": job.not_before}},
            )
            self._send([job], delay_seconds=min(MAX_DELAY_SECONDS, math.ceil(delay)))
            return None, record
        return await self._execute(graph, record, record.scheduler(graph), node, job)

    async def _fallback_or_fail(
        self,
        graph: CompiledGraph,
        record: RunRecord,
        sched: Scheduler,
        node: NodeDefinition,
        key: str,
        error: BaseException,
        message: str,
        attempts: int = 1,
    ) -> tuple[Job | None, RunRecord]:
        """A subflow or map node whose child or item failed for good: its fallback, if any,
        runs with the node's input (as in memory); otherwise the run fails."""
        if node.config.fallback:
            node_input = sched.build_input(key, record.context)
            buffered = BufferedContext(record.context)
            ctx = self._node_context(
                record, graph, key, buffered, node_input, node.params, node.id, attempts
            )
            try:
                resolved = resolve(self.registry, node.uses, node.params)
                recovered = await run_fallback(node, resolved, ctx, error, self.registry)
            except Exception as fallback_exc:
                message = f"{message}; fallback failed: {describe_error(fallback_exc)}"
            else:
                if recovered is not None:
                    return self._commit(
                        graph, record, sched, key, recovered, node_input, buffered, attempts
                    )
        return None, self._fail_run(record, message, key=key, attempts=attempts)

    # ------------------------------------------------------------------ map fan-out
    def _start_fanout(
        self,
        graph: CompiledGraph,
        record: RunRecord,
        sched: Scheduler,
        job: Job,
        spec: MapSpec,
        node_input: Any,
    ) -> tuple[Job | None, RunRecord]:
        """Store the map's items once, then send the first ``concurrency`` item jobs."""
        key = job.node_id
        if not spec.items:
            return self._commit(
                graph, record, sched, key, NodeResult(output=[]), node_input, BufferedContext({}), 1
            )
        if key not in record.fanouts:
            try:
                record = self.runs.record_fanout(
                    record.run_id, key, spec.to_dict(), self.clock.now()
                )
            except CommitRejected as rejected:
                return None, rejected.current or record
            except StateTooLarge:
                message = f"node {split_key(key)[0]!r}: map items exceed the run's 400 KB limit"
                return None, self._fail_run(record, message, key=key)
        fan = record.fanouts[key]
        pending = [i for i in range(len(fan["items"])) if str(i) not in fan["results"]]
        if not pending:  # every item is in, but the map's own commit never happened
            return self._advance_fanout(graph, record, sched, key, len(fan["items"]) - 1)
        limit = int(fan.get("concurrency") or 10)
        now = self.clock.now()
        for index in pending[:limit]:
            item_job = self._recovery_job(graph, record, key, f"{key}[{index}]", index, now)
            if item_job is not None:
                wait = 0 if item_job.not_before is None else math.ceil(item_job.not_before - now)
                self._send([item_job], delay_seconds=min(MAX_DELAY_SECONDS, max(0, wait)))
        return None, record

    async def _map_item(
        self, graph: CompiledGraph, record: RunRecord, sched: Scheduler, job: Job
    ) -> tuple[Job | None, RunRecord]:
        key = job.node_id
        index = job.item
        assert index is not None
        fan = record.fanouts.get(key)
        node_id = split_key(key)[0]
        if fan is None or index >= len(fan["items"]):
            return None, self._fail_run(record, f"node {node_id!r}: job names unknown item {index}")
        if str(index) in fan["results"]:
            return self._advance_fanout(graph, record, sched, key, index)
        spec = MapSpec.from_dict(fan)
        ctx = item_context(
            self._node_context(
                record, graph, key, BufferedContext(record.context), None, {}, node_id, 1
            ),
            f"{node_id}[{index}]",
            spec.items[index],
            spec,
        )
        ctx.attempt = job.attempt
        item_node = spec.item_node(node_id, index)
        park_key = f"{key}[{index}]"
        self.services.timers = record.timers
        self.services.park_key = park_key
        started = time.perf_counter()
        try:
            if spec.blueprint_id is not None:
                # A map item's sub-blueprint runs inside this item's job.
                child = await self.child_runtime().run(
                    spec.blueprint_id,
                    {"item": spec.items[index], "index": index},
                    run_id=f"{record.run_id}/{node_id}[{index}]",
                )
                if child.status != "completed":
                    details = "; ".join(e.message for e in child.errors) or child.status
                    raise MapItemError(f"subflow {spec.blueprint_id!r}: {details}")
                output = child.context.get("result", child.outputs)
            else:
                resolved = resolve(self.registry, item_node.uses, item_node.params)
                output = (
                    await attempt_once(resolved, ctx, item_node.config, self.middleware)
                ).output
        except Suspend as suspend:
            self._park_sleep(graph, record, job, park_key, suspend.until)
            return None, record
        except (FanOut, StartChild):
            message = (
                f"node {node_id!r}: item {index}: a map item cannot itself fan out or start a "
                "child run when distributed; use a sub-blueprint per item (blueprintId)"
            )
            return None, self._fail_run(record, message, key=key, attempts=job.attempt)
        except Exception as exc:
            self.stats.node_failures += 1
            current = self.runs.load(record.run_id)
            if current is not None and (
                key in current.nodes
                or str(index) in current.fanouts.get(key, {}).get("results", {})
            ):
                # Another delivery of this item committed it meanwhile: that result stands.
                return self._advance_fanout(graph, current, current.scheduler(graph), key, index)
            if self._retry(job, item_node.config, exc, item_node.id, record):
                return None, record
            message = f"node {node_id!r}: item {index}: {describe_error(exc)}"
            return await self._fallback_or_fail(
                graph, record, sched, graph.nodes[node_id], key, exc, message, job.attempt
            )
        finally:
            self.stats.durations_ms.append((time.perf_counter() - started) * 1000)
        self.stats.nodes_executed += 1
        try:
            record = self.runs.commit_item(record.run_id, key, index, output, self.clock.now())
        except CommitRejected as rejected:
            if rejected.current is None or rejected.reason != "committed":
                return None, rejected.current or record
            record = rejected.current
        except StateTooLarge:
            message = f"node {node_id!r}: item {index}: results exceed the run's 400 KB limit"
            return None, self._fail_run(record, message, key=key, attempts=job.attempt)
        return self._advance_fanout(graph, record, record.scheduler(graph), key, index)

    def _advance_fanout(
        self, graph: CompiledGraph, record: RunRecord, sched: Scheduler, key: str, index: int
    ) -> tuple[Job | None, RunRecord]:
        """After item ``index``: complete the map when all are in, else send the next item."""
        if key in record.nodes:
            return self._advance(graph, record, [key]), record
        fan = record.fanouts[key]
        results = fan["results"]
        count = len(fan["items"])
        if len(results) >= count:
            ordered = [results[str(i)] for i in range(count)]
            node_input = sched.build_input(key, record.context)
            return self._commit(
                graph,
                record,
                sched,
                key,
                NodeResult(output=ordered),
                node_input,
                BufferedContext({}),
                1,
            )
        following = index + int(fan.get("concurrency") or 10)
        if following < count and str(following) not in results:
            # Items are sent, not chained: each gets its own job (and its own invocation).
            self._send(
                [Job(run_id=record.run_id, blueprint_id=graph.id, node_id=key, item=following)]
            )
        return None, record

    def _commit(
        self,
        graph: CompiledGraph,
        record: RunRecord,
        sched: Scheduler,
        key: str,
        result: NodeResult,
        node_input: Any,
        buffered: BufferedContext,
        attempts: int,
    ) -> tuple[Job | None, RunRecord]:
        node_id = split_key(key)[0]
        view = dict(record.context)
        view.update(buffered.written)
        for deleted in buffered.deleted:
            view.pop(deleted, None)
        try:
            step = sched.complete(key, result.output, result.action, view, node_input)
        except (ExpressionError, LoopLimitError) as exc:
            message = str(exc) if str(exc).startswith("node ") else f"node {node_id!r}: {exc}"
            return None, self._fail_run(record, message, key=key, attempts=attempts)
        now = self.clock.now()
        decisions = step.decisions or {}
        by_source: dict[str | None, dict[str, bool]] = {}
        for dkey, taken in decisions.items():
            by_source.setdefault(decision_source(graph, dkey, taken), {})[dkey] = taken
        own = by_source.get(key, {})
        fired = {t: sched.fired_by[t] for t in step.ready if t in sched.fired_by}
        # Skips this commit implies (always right: a view missing other commits only sees
        # fewer of them) ride along while few; the rest are derived afterwards, in chunks.
        derived = {
            k: NodeRecord(status="skipped", finished_at=now, decisions=by_source.get(k, {}))
            for k in step.skipped[:SKIPS_IN_COMMIT]
        }
        drop_fanout = key if key in record.fanouts else None
        try:
            size = _record_size(record, view, result.output, drop_fanout)
        except (TypeError, ValueError) as exc:
            message = f"node {node_id!r}: output or context value is not JSON-serialisable: {exc}"
            return None, self._fail_run(record, message, key=key, attempts=attempts)
        try:
            if size > MAX_RUN_BYTES:
                raise StateTooLarge(f"about {size // 1000} KB")
            committed = self.runs.commit(
                record.run_id,
                key,
                NodeRecord(
                    status=COMPLETED,
                    output=result.output,
                    action=result.action,
                    attempts=attempts,
                    finished_at=now,
                    decisions=own,
                ),
                context_set=buffered.written,
                context_delete=buffered.deleted,
                now=now,
                fired_by=fired,
                derived=derived,
                drop_fanout=drop_fanout is not None,
            )
        except CommitRejected as rejected:
            current = rejected.current
            if current is None or rejected.reason != "committed":
                return None, current or record
            return self._advance(graph, current, [key]), current
        except StateTooLarge as exc:
            written = ", ".join(sorted(buffered.written)) or "none"
            message = (
                f"node {node_id!r}: the run's state would exceed DynamoDB's 400 KB item limit "
                f"({exc}; context keys written by this node: {written}; keep large data in S3 "
                "and store a reference)"
            )
            return None, self._fail_run(record, message, key=key, attempts=attempts)
        except TypeError as exc:
            message = f"node {node_id!r}: output or context value is not JSON-serialisable: {exc}"
            return None, self._fail_run(record, message, key=key, attempts=attempts)
        return self._advance(graph, committed, [key, *derived], step.ready), committed

    # ------------------------------------------------------------------ what follows
    def _settle_derived(
        self, graph: CompiledGraph, record: RunRecord
    ) -> tuple[RunRecord, Step, Scheduler]:
        """Record what the committed decisions imply but no step wrote yet: skips (of a
        concurrent commit's branch, or of a step cut short) and the end of settled loops.

        Each skipped node's record carries its own decisions; they are written in chunks, so a
        cascade over hundreds of nodes never builds an oversized update. Returns the record,
        what was derived, and a scheduler for the record (rebuilt only if something was written,
        since the write may have brought in concurrent commits).
        """
        sched = record.scheduler(graph)
        step = sched.settle_derived()
        decisions = step.decisions or {}
        if not decisions and not step.skipped:
            return record, step, sched
        now = self.clock.now()
        by_source: dict[str | None, dict[str, bool]] = {}
        for dkey, taken in decisions.items():
            by_source.setdefault(decision_source(graph, dkey, taken), {})[dkey] = taken
        records = {
            k: NodeRecord(status="skipped", finished_at=now, decisions=by_source.pop(k, {}))
            for k in step.skipped
        }
        # Decisions of nodes that settled before (a loop's last members) or of a loop's end.
        loose = {d: t for group in by_source.values() for d, t in group.items()}
        keys = list(records)
        for start in range(0, max(len(keys), 1), SKIPS_PER_WRITE):
            chunk = {k: records[k] for k in keys[start : start + SKIPS_PER_WRITE]}
            record = self.runs.record_progress(
                record.run_id, nodes=chunk, decisions=loose if start == 0 else {}, now=now
            )
        return record, step, record.scheduler(graph)

    def _advance(
        self,
        graph: CompiledGraph,
        record: RunRecord,
        origins: list[str],
        maybe_ready: list[str] | None = None,
    ) -> Job | None:
        """From a committed record: record derived skips and loop ends, then send (or chain)
        the successors this step made ready, and close the run when it is done."""
        try:
            record, derived, sched = self._settle_derived(graph, record)
        except CommitRejected:
            return None
        origin_set = set(origins) | set(derived.skipped)
        awaiting = set(record.awaiting_keys())
        outstanding = set(sched.outstanding())
        candidates = [*(maybe_ready or ()), *derived.ready]
        for origin in origin_set:
            candidates.extend(sched.successor_instances(origin))
        ready: list[str] = []
        for candidate in candidates:
            if candidate not in outstanding or candidate in awaiting or candidate in ready:
                continue
            owner = sched.fired_by.get(candidate)
            if owner is not None and decision_source(graph, owner, True) not in origin_set:
                continue  # an ``any`` join fired by another arrival: that one sends it
            ready.append(candidate)
        if not ready:
            self._close_if_done(graph, record, sched)
            return None
        jobs = [Job(run_id=record.run_id, blueprint_id=graph.id, node_id=k) for k in ready]
        if len(jobs) == 1:
            return jobs[0]
        self._send(jobs)
        return None

    def recover_run(self, graph: CompiledGraph, record: RunRecord) -> tuple[int, float]:
        """Reconciler entry: re-send the ready nodes of a stalled run; close it when done.

        Nodes parked until later (a sleep, a retry delay) are left alone: their jobs are on the
        queue. One whose time has passed is re-sent as the attempt it was waiting for. Returns
        the jobs sent and when the run should be looked at again.
        """
        now = self.clock.now()
        try:
            record, _, sched = self._settle_derived(graph, record)
        except CommitRejected:
            return 0, now
        awaiting = set(record.awaiting_keys())
        ready = [k for k in sched.outstanding() if k not in awaiting or k in record.resumes]
        if not ready:
            self._close_if_done(graph, record, sched)
            return 0, now
        jobs = [
            job
            for key in ready
            if (job := self._recovery_job(graph, record, key, key, None, now)) is not None
        ]
        for job in jobs:
            delay = 0 if job.not_before is None else math.ceil(job.not_before - now)
            self._send([job], delay_seconds=min(MAX_DELAY_SECONDS, max(0, delay)))
        return len(jobs), self.parked_until(record, graph) or now

    def _recovery_job(
        self,
        graph: CompiledGraph,
        record: RunRecord,
        key: str,
        park_key: str,
        item: int | None,
        now: float,
    ) -> Job | None:
        """The job that resumes a node (or map item) after its messages may have been lost;
        None while it is parked and not yet due (its parked message is still on the queue)."""
        due = record.park_due(park_key)
        if due is not None and due > now:
            return None
        job = Job(
            run_id=record.run_id,
            blueprint_id=graph.id,
            node_id=key,
            item=item,
            cause=f"recovered at {int(now)}",
        )
        retry = record.retries.get(park_key)
        if retry is not None:
            job.attempt = int(retry["attempt"])
            job.not_before = float(retry["notBefore"])
        return job

    def _close_if_done(self, graph: CompiledGraph, record: RunRecord, sched: Scheduler) -> None:
        if record.status != RUNNING:
            return
        now = self.clock.now()
        if sched.finished and not record.awaiting_keys():
            closed = self.runs.transition(
                record.run_id, to=COMPLETED, allowed_from=[RUNNING], now=now
            )
            if closed is not None:
                self.stats.runs_completed += 1
                self.statuses.changed(record.run_id, COMPLETED, now)
                notify_parent(self.queue, closed)
            return
        outstanding = set(sched.outstanding())
        awaiting = set(record.awaiting_keys())
        if outstanding and outstanding <= awaiting and not (awaiting & set(record.resumes)):
            parked = self.runs.transition(
                record.run_id, to=AWAITING, allowed_from=[RUNNING], now=now
            )
            if parked is not None:
                self.statuses.changed(record.run_id, AWAITING, now)
                self.recheck_status_row(record.run_id, AWAITING)

    def recheck_status_row(self, run_id: str, written: str) -> None:
        """A resume may have overtaken us between the record and the row: mirror the record."""
        current = self.runs.load(run_id)
        if current is not None and current.status != written:
            self.statuses.changed(run_id, current.status, self.clock.now(), error=current.error)

    # ------------------------------------------------------------------ parking
    def _park_wait(
        self, graph: CompiledGraph, record: RunRecord, key: str, attempts: int
    ) -> RunRecord:
        now = self.clock.now()
        try:
            record = self.runs.commit(
                record.run_id,
                key,
                NodeRecord(status=AWAITING, attempts=attempts),
                context_set={},
                context_delete=(),
                now=now,
            )
        except CommitRejected as rejected:
            return rejected.current or record  # parked already (and maybe resumed): leave it
        self._close_if_done(graph, record, record.scheduler(graph))
        return record

    def _park_sleep(
        self, graph: CompiledGraph, record: RunRecord, job: Job, park_key: str, until: float
    ) -> None:
        """Record the wake time once (duplicates agree on it), then park the job on the queue."""
        now = self.clock.now()
        try:
            record = self.runs.record_progress(
                record.run_id, nodes={}, decisions={}, now=now, timers={park_key: until}
            )
        except CommitRejected:
            return
        wake = record.timers.get(park_key, until)
        parked = job.model_copy(update={"not_before": wake})
        self._send([parked], delay_seconds=min(MAX_DELAY_SECONDS, max(0, math.ceil(wake - now))))
        self._heartbeat_if_parked(record, graph)

    def parked_until(self, record: RunRecord, graph: CompiledGraph) -> float | None:
        """When every branch still to run is parked (sleeps, retry delays): the earliest due
        time. None when some branch is not parked (the run is simply busy, or stalled)."""
        sched = record.scheduler(graph)
        awaiting = set(record.awaiting_keys())
        due_times: list[float] = []
        for key in sched.outstanding():
            if key in awaiting:
                continue
            fan = record.fanouts.get(key)
            keys = (
                [f"{key}[{i}]" for i in range(len(fan["items"])) if str(i) not in fan["results"]]
                if fan is not None and key not in record.nodes
                else [key]
            )
            for park_key in keys:
                due = record.park_due(park_key)
                if due is None or due <= self.clock.now():
                    return None
                due_times.append(due)
        return min(due_times) if due_times else None

    def _heartbeat_if_parked(self, record: RunRecord, graph: CompiledGraph | None = None) -> None:
        graph = graph or self.graph(record.blueprint_id)
        if graph is None:
            return
        due = self.parked_until(record, graph)
        if due is not None:
            self.statuses.heartbeat(record.run_id, due)

    # ------------------------------------------------------------------ failure
    def _fail_run(
        self, record: RunRecord, message: str, *, key: str | None = None, attempts: int = 1
    ) -> RunRecord:
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + f"... ({len(message)} characters in all)"
        logger.warning("run %s failed: %s", record.run_id, message)
        now = self.clock.now()
        failed_node = None
        if key is not None:
            failed = NodeRecord(status=FAILED, attempts=attempts, error=message, finished_at=now)
            failed_node = (key, failed)
        try:
            closed = self.runs.transition(
                record.run_id,
                to=FAILED,
                allowed_from=[RUNNING, AWAITING],
                now=now,
                error=message,
                failed_node=failed_node,
            )
        except StateTooLarge:
            # Even the failure does not fit: close the run with the message alone.
            closed = self.runs.transition(
                record.run_id, to=FAILED, allowed_from=[RUNNING, AWAITING], now=now, error=message
            )
        if closed is None:
            return record
        self.stats.runs_failed += 1
        self.statuses.changed(record.run_id, FAILED, now, error=message)
        notify_parent(self.queue, closed)
        return closed

    def _send(self, jobs: list[Job], delay_seconds: int = 0) -> None:
        if jobs:
            self.queue.send(jobs, delay_seconds=delay_seconds)
            self.stats.jobs_sent += len(jobs)


def park_key_of(job: Job) -> str:
    """The key a node's (or a map item's) sleep timer and pending retry are recorded under."""
    return job.node_id if job.item is None else f"{job.node_id}[{job.item}]"


def _record_size(
    record: RunRecord, context: dict[str, Any], output: Any, dropped_fanout: str | None = None
) -> int:
    nodes = {k: v.to_item() for k, v in record.nodes.items()}
    fanouts = {k: v for k, v in record.fanouts.items() if k != dropped_fanout}
    parts = [context, nodes, record.decisions, fanouts, output]
    return len(json.dumps(parts, separators=(",", ":")))


__all__ = ["GraphError", "Suspend", "Worker", "WorkerStats"]
