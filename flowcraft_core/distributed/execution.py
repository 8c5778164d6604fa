"""Running one node instance for a job: what it sees, one attempt, and what follows a failure.

A failed attempt goes through the engine's one failure step (``handle_failure``), applied here
by parking the next attempt on the queue (``parking``), committing the fallback's result, or
failing the run. Sleeps, maps and subflows leave a node's attempt as the
signals below, which the worker turns into parked work, item jobs and child runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..blueprint import NodeDefinition
from ..builtins.map import MapSpec
from ..context import BufferedContext
from ..engine import (
    Clock,
    attempt_once,
    describe_error,
    fall_back,
    fallback_failed,
    handle_failure,
)
from ..nodes import (
    CancellationSignal,
    NodeContext,
    NodeResult,
    Registry,
    ResolvedNode,
    UnknownImplementationError,
    resolve,
)
from ..runtime import WorkflowResult
from ..scheduler import split_key
from .job import Job
from .plan import Plan
from .records import NodeRecord, RunHead
from .state import JobRead

if TYPE_CHECKING:
    from .worker import Worker

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


class Execution:
    """Runs a job's node: builds its context, makes one attempt, and applies the attempt
    policy when it fails (retry later, fallback, or fail the run)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

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
            dependencies=self.worker.dependencies,
            run_id=state.run_id,
            node_id=node_id,
            attempt=attempt,
            iteration=split_key(state.key)[1],
            blueprint_id=state.plan.graph.id,
            signal=CancellationSignal(),
            services=JobServices(self.worker, wake),
        )

    async def execute(
        self, state: JobState, node_input: Any, context: Mapping[str, Any]
    ) -> Job | None:
        """One attempt at the node; what it leaves (a result, parked work, a map's or a
        subflow's start) decides the job that follows."""
        worker, job = self.worker, state.job
        node = state.plan.graph.nodes[split_key(state.key)[0]]
        try:
            resolved = resolve(worker.registry, node.uses, node.params)
        except UnknownImplementationError as exc:
            worker.fail_run(state.head, f"node {node.id!r}: {exc}")
            return None
        buffered = BufferedContext(context)
        wake = state.own.wake if state.own is not None else None
        ctx = self.node_context(
            state, buffered, node_input, node.params, node.id, job.attempt, wake
        )
        started = time.perf_counter()
        try:
            result: NodeResult | None = await attempt_once(
                resolved, ctx, node.config, worker.middleware
            )
        except Suspend as suspend:
            worker.parking.sleep(state, state.key, suspend.until)
            return None
        except FanOut as fan_out:
            return worker.fanout.start(state, fan_out.spec, node_input)
        except StartChild as start:
            return worker.children.start(state, start.blueprint_id, start.context)
        except Exception as exc:
            result = await self._after_failure(state, node, resolved, ctx, exc)
        finally:
            worker.stats.durations_ms.append((time.perf_counter() - started) * 1000)
        if result is None:
            return None
        worker.stats.nodes_executed += 1
        if result.awaiting:
            worker.parking.wait(state, state.key, job.attempt, result.output)
            return None
        return worker.commits.commit(state, result, node_input, buffered, job.attempt)

    async def _after_failure(
        self,
        state: JobState,
        node: NodeDefinition,
        resolved: ResolvedNode,
        ctx: NodeContext,
        exc: Exception,
    ) -> NodeResult | None:
        """The engine's failure step (``handle_failure``), applied by queueing: a retry is
        parked on the queue, the fallback's result commits, or the run fails (``None``)."""
        worker = self.worker
        worker.stats.node_failures += 1
        after = await handle_failure(node, resolved, ctx, exc, worker.registry)
        if after.retry is not None:
            worker.parking.retry(state, state.key, after.retry, exc, node.id)
            return None
        if after.result is not None:
            return after.result
        message = f"node {node.id!r}: {after.message or describe_error(exc)}"
        worker.fail_run(state.head, message, key=state.key, attempts=state.job.attempt)
        return None

    async def resume(self, state: JobState) -> Job | None:
        """A waiting node's resume: its resume payload is its result."""
        assert state.own is not None and state.own.resume is not None
        resume, worker = state.own.resume, self.worker
        result = NodeResult(output=worker.codec.decode(resume.output), action=resume.action)
        context = worker.inputs.context_of(state)
        node_input = worker.inputs.input_of(state, context)
        buffered = BufferedContext(context)
        return worker.commits.commit(state, result, node_input, buffered, state.own.attempts)

    async def fallback_or_fail(
        self,
        state: JobState,
        error: BaseException,
        message: str,
        node_input: Any,
        buffered: BufferedContext,
        attempts: int,
    ) -> Job | None:
        """A map node whose item failed for good: its ``fallback``, if any, runs with the
        node's input as in memory, and its result commits; otherwise the run fails with
        ``message``."""
        node = state.plan.graph.nodes[split_key(state.key)[0]]
        if node.config.fallback:
            ctx = self.node_context(state, buffered, node_input, node.params, node.id, attempts)
            try:
                resolved = resolve(self.worker.registry, node.uses, node.params)
            except Exception as resolve_exc:
                message = fallback_failed(message, node, resolve_exc)
            else:
                registry = self.worker.registry
                outcome = await fall_back(node, resolved, ctx, error, registry, message)
                if isinstance(outcome, NodeResult):
                    return self.worker.commits.commit(
                        state, outcome, node_input, buffered, attempts
                    )
                message = outcome
        self.worker.fail_run(state.head, message, key=state.key, attempts=attempts)
        return None
