"""One in-memory run: its ready queue, its nodes' attempts, and the result it hands back.

Nodes that finish without suspending never get an asyncio task of their own (a chain costs a
few microseconds per node); nodes that really await run concurrently, up to the runtime's
``concurrency`` limit.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from .blueprint import NodeDefinition
from .context import InMemoryContext
from .engine import (
    FlowEvent,
    Middleware,
    NodeOutcome,
    execute_with_policy,
)
from .expressions import ExpressionError
from .nodes import (
    CancellationSignal,
    NodeContext,
    NodeResult,
    Registry,
    ResolvedNode,
    UnknownImplementationError,
    resolve,
    to_node_result,
)
from .results import NodeErrorInfo, Timeline, WorkflowResult
from .scheduler import (
    CompiledGraph,
    LoopLimitError,
    Scheduler,
    Settlement,
    edge_failure_message,
    failing_edge,
    split_decision_key,
    split_key,
    statuses_by_node,
)
from .status import AWAITING, CANCELLED, COMPLETED, FAILED, SKIPPED

if TYPE_CHECKING:
    from .runtime import FlowRuntime

#: Nodes run between two yields to the event loop (when none of them awaited).
_YIELD_EVERY = 512
#: Python 3.12+ can start a task eagerly with the right ``current_task``; 3.11 cannot.
_EAGER_TASKS = sys.version_info >= (3, 12)


class NodeImplementations:
    """Each node's implementation, resolved once per run, and whether it runs inline."""

    def __init__(
        self,
        graph: CompiledGraph,
        registry: Registry,
        middleware: Sequence[Middleware],
        shared: dict[str, ResolvedNode],
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.middleware = middleware
        #: Function implementations, shared by the runtime's runs (class nodes are not).
        self.shared = shared
        self._resolved: dict[str, ResolvedNode | None] = {}
        self._inline: dict[str, tuple[NodeDefinition, ResolvedNode] | None] = {}

    def resolved(self, node: NodeDefinition) -> ResolvedNode | None:
        """Resolve each node's implementation once (None: unknown, reported when it runs).

        Function implementations are shared by every node that uses them; class nodes get an
        instance per node, since they are built with the node's params.
        """
        try:
            return self._resolved[node.id]
        except KeyError:
            pass
        shared = self.shared.get(node.uses)
        if shared is not None:
            self._resolved[node.id] = shared
            return shared
        try:
            found: ResolvedNode | None = resolve(self.registry, node.uses, node.params)
        except UnknownImplementationError:
            found = None
        if found is not None and found.instance is None:
            self.shared[node.uses] = found
        self._resolved[node.id] = found
        return found

    def inline_plan(self, key: str) -> tuple[NodeDefinition, ResolvedNode] | None:
        """The node and its implementation when it runs inline (plain functions without
        timeout or middleware run without a coroutine or task), else None. One lookup per
        node on the hot path."""
        node_id = split_key(key)[0] if "#" in key else key
        try:
            return self._inline[node_id]
        except KeyError:
            pass
        node = self.graph.nodes[node_id]
        resolved = self.resolved(node)
        plan = None
        if (
            resolved is not None
            and resolved.instance is None
            and not resolved.is_async
            and node.config.timeout is None
            and not self.middleware
        ):
            plan = (node, resolved)
        self._inline[node_id] = plan
        return plan


class MemoryRun:
    """One execution (or resumption) of a blueprint."""

    def __init__(
        self,
        runtime: FlowRuntime,
        graph: CompiledGraph,
        context: InMemoryContext,
        run_id: str,
        signal: CancellationSignal,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.runtime = runtime
        self.graph = graph
        self.context = context
        self.run_id = run_id
        self.signal = signal
        self.sched = scheduler or Scheduler(graph)
        # Reads of node outputs through the context (``_outputs.<id>``, the bare node id) are
        # answered from the scheduler's results, never stored twice.
        context.attach_outputs(self.sched)
        self.view = context.view
        #: Without an event bus nobody reads a step's decisions: one Settlement serves every node.
        self._step: Settlement | None = (
            Settlement(decisions=None) if runtime.event_bus is None else None
        )
        #: Node executions started so far, against the runtime's ``max_node_executions``.
        self.executed = 0
        #: Child runs parked inside subflow nodes: instance key -> the child's result.
        self.children: dict[str, WorkflowResult] = {}
        self.ready: deque[str] = deque()
        self.errors: list[NodeErrorInfo] = []
        # (key, status, started, finished, attempts): plain tuples the GC soon stops tracking.
        self.timeline: list[tuple[str, str, float, float, int]] = []
        self.awaiting: dict[str, NodeResult] = {}
        self.failed = False
        self.bus = runtime.event_bus
        self.implementations = NodeImplementations(
            graph, runtime.registry, runtime.middleware, runtime._function_impls
        )
        #: Nodes stopped before they finished (a cancel, or another branch failing).
        self.cancelled_nodes: list[str] = []
        self._running: dict[asyncio.Future[Any], tuple[str, float]] = {}

    # ------------------------------------------------------------------ events
    def emit(self, type_: str, node_id: str | None = None, **data: Any) -> None:
        if self.bus is not None:
            self.bus.emit(FlowEvent(type_, self.run_id, node_id, data, time.time()))

    def _apply(self, step: Settlement) -> None:
        self.ready.extend(step.ready)
        if self.bus is not None and step.decisions is not None:
            for dkey, taken in step.decisions.items():
                edge = self.graph.edges[split_decision_key(dkey)[0]]
                self.emit("edge:decided", edge.source, target=edge.target, taken=taken, key=dkey)
            for key in step.skipped:
                self.emit("node:skip", split_key(key)[0], key=key)
        for key in step.skipped:
            now = time.perf_counter()
            self.timeline.append((key, SKIPPED, now, now, 0))

    # ------------------------------------------------------------------ one node
    def _prepare(
        self, key: str, node: NodeDefinition | None = None
    ) -> tuple[NodeDefinition, NodeContext, float] | None:
        node_id, iteration = split_key(key) if "#" in key else (key, 0)
        if node is None:
            node = self.graph.nodes[node_id]
        started = time.perf_counter()
        try:
            node_input = self.sched.consume_input(key, self.view, node)
        except ExpressionError as exc:
            self._fail(key, f"input of node {node_id!r}: {exc}", 0, started)
            return None
        ctx = NodeContext(
            context=self.context,
            input=node_input,
            params=node.params,
            dependencies=self.runtime.dependencies,
            run_id=self.run_id,
            node_id=node_id,
            iteration=iteration,
            blueprint_id=self.graph.id,
            signal=self.signal,
            services=self.runtime,
        )
        if self.bus is not None:
            self.emit("node:start", node_id, key=key, input=node_input)
        return node, ctx, started

    def run_inline(
        self, key: str, plan: tuple[NodeDefinition, ResolvedNode]
    ) -> Awaitable[None] | None:
        """Run a plain-function node without a coroutine; None when it is fully handled.

        Only the first attempt of a function node runs here. If it raises, or returns an
        awaitable, the rest (retries, fallback, awaiting) continues on the policy path in
        ``execute``, so the rules stay in ``execute_with_policy``.
        """
        node, resolved = plan
        prepared = self._prepare(key, node)
        if prepared is None:
            return None
        ctx, started = prepared[1], prepared[2]
        ctx.attempt = 1
        try:
            value = resolved.invoke(ctx)
            if type(value) is not NodeResult and inspect.isawaitable(value):
                return self.execute(key, prepared, first_value=value)
            result = to_node_result(value)
        except Exception as exc:
            return self.execute(key, prepared, first_error=exc)
        if result.awaiting:
            self._finish(key, NodeOutcome(AWAITING, result), ctx.input, started)
        else:
            self.settle_completed(key, result, ctx.input, started, 1)
        return None

    async def execute(
        self,
        key: str,
        prepared: tuple[NodeDefinition, NodeContext, float] | None = None,
        *,
        first_error: BaseException | None = None,
        first_value: Any = None,
    ) -> None:
        if prepared is None:
            prepared = self._prepare(key)
            if prepared is None:
                return
        node, ctx, started = prepared
        if first_value is not None:
            try:
                first_result: NodeResult | None = to_node_result(await first_value)
            except Exception as exc:
                first_error, first_result = exc, None
            if first_result is not None:
                status = AWAITING if first_result.awaiting else COMPLETED
                self._finish(key, NodeOutcome(status, first_result), ctx.input, started)
                return
        emit = self._node_emitter(node.id) if self.bus is not None else None
        outcome: NodeOutcome = await execute_with_policy(
            node,
            ctx,
            self.runtime.registry,
            clock=self.runtime.clock,
            middleware=self.runtime.middleware,
            emit=emit,
            resolved=self.implementations.resolved(node),
            failed_first=first_error,
        )
        self._finish(key, outcome, ctx.input, started)

    def _finish(self, key: str, outcome: NodeOutcome, node_input: Any, started: float) -> None:
        if outcome.status == COMPLETED:
            result = outcome.result
            assert result is not None
            self.settle_completed(key, result, node_input, started, outcome.attempts)
        elif outcome.status == AWAITING:
            assert outcome.result is not None
            self.awaiting[key] = outcome.result
            child = self.runtime._take_parked_child(outcome.result.output)
            if child is not None:
                self.children[key] = child
            self.timeline.append((key, AWAITING, started, time.perf_counter(), outcome.attempts))
            self.emit("node:awaiting", split_key(key)[0], key=key)
        elif outcome.status == CANCELLED:
            if not self.signal.cancelled:  # the node itself cancelled the run
                self.signal.cancel(f"node {split_key(key)[0]!r} cancelled the run")
            self._mark_cancelled(key, started, outcome.attempts)
        else:
            self._fail(key, outcome.error or "failed", outcome.attempts, started)

    def _mark_cancelled(self, key: str, started: float, attempts: int) -> None:
        if key in self.cancelled_nodes:
            return
        self.cancelled_nodes.append(key)
        self.timeline.append((key, CANCELLED, started, time.perf_counter(), attempts))
        self.emit("node:cancelled", split_key(key)[0], key=key)

    def settle_completed(
        self, key: str, result: NodeResult, node_input: Any, started: float, attempts: int
    ) -> None:
        reuse = self._step
        try:
            step = self.sched.complete(
                key,
                result.output,
                result.action,
                self.view,
                node_input,
                report_decisions=self.bus is not None,
                into=reuse,
            )
        except (ExpressionError, LoopLimitError) as exc:
            if reuse is not None:
                reuse.ready.clear()
                reuse.skipped.clear()
            node_id = split_key(key)[0]
            found = None
            if isinstance(exc, ExpressionError):
                found = failing_edge(
                    self.graph.out_edges[node_id],
                    result.action,
                    result.output,
                    self.view,
                    node_input,
                )
            if found is None:
                self._fail(key, str(exc), attempts, started)
                return
            # An edge failed, not the node: its output is kept and the run fails naming the edge.
            self.timeline.append((key, COMPLETED, started, time.perf_counter(), attempts))
            self.failed = True
            self.errors.append(
                NodeErrorInfo(node_id, edge_failure_message(node_id, *found), attempts)
            )
            return
        self.timeline.append((key, COMPLETED, started, time.perf_counter(), attempts))
        if self.bus is not None:
            node_id = split_key(key)[0]
            self.emit("node:finish", node_id, key=key, output=result.output, action=result.action)
        self._apply(step)
        if reuse is not None:
            reuse.ready.clear()
            reuse.skipped.clear()

    def _node_emitter(self, node_id: str) -> Any:
        def emit(type_: str, data: dict[str, Any]) -> None:
            self.emit(type_, node_id, **data)

        return emit

    def _fail(self, key: str, message: str, attempts: int, started: float) -> None:
        node_id = split_key(key)[0]
        self.sched.fail(key)
        self.failed = True
        if not message.startswith(f"node {node_id!r}"):
            message = f"node {node_id!r}: {message}"
        self.errors.append(NodeErrorInfo(node_id, message, attempts))
        self.timeline.append((key, FAILED, started, time.perf_counter(), attempts))
        self.emit("node:error", node_id, key=key, error=message, attempts=attempts)

    # ------------------------------------------------------------------ the loop
    async def drive(self) -> None:
        limit = self.runtime.concurrency
        ready = self.ready
        pending: set[asyncio.Task[Any]] = set()
        loop = asyncio.get_running_loop()
        bound = self.runtime.max_node_executions
        try:
            await self._drive_loop(limit, ready, pending, loop, bound)
        except asyncio.CancelledError:
            # The caller gave up (``asyncio.wait_for``, task cancel): stop every node first.
            # The signal is left alone: it may be shared (a subflow's child runs with its
            # parent's), and the parent decides for itself.
            await self._stop(pending)
            raise

    async def _drive_loop(
        self,
        limit: int | None,
        ready: deque[str],
        pending: set[asyncio.Task[Any]],
        loop: asyncio.AbstractEventLoop,
        bound: int,
    ) -> None:
        executed = self.executed
        inline_plan = self.implementations.inline_plan
        while True:
            while ready and not self.failed and not self.signal.cancelled:
                if limit is not None and len(pending) >= limit:
                    break
                key = ready.popleft()
                executed += 1
                if executed > bound:
                    self.executed = executed
                    message = self._over_bound_message(key, bound)
                    self._fail(key, message, 0, time.perf_counter())
                    break
                if not executed % _YIELD_EVERY:
                    # Let the event loop breathe: timeouts and cancellation stay responsive
                    # even on a long run of nodes that never await.
                    await asyncio.sleep(0)
                plan = inline_plan(key)
                if plan is not None:
                    awaitable = self.run_inline(key, plan)
                    if awaitable is not None:
                        task: asyncio.Task[Any] = loop.create_task(
                            awaitable  # type: ignore[arg-type]
                        )
                        pending.add(task)
                        self._running[task] = (key, time.perf_counter())
                    continue
                self._start_task(key, loop, pending)
            self.executed = executed
            if not pending:
                return
            if self.failed or self.signal.cancelled:
                await self._stop(pending)
                return
            await self._wait_for_one(loop, pending)

    def _start_task(
        self, key: str, loop: asyncio.AbstractEventLoop, pending: set[asyncio.Task[Any]]
    ) -> None:
        """Run a node on the policy path; eagerly, so one that never awaits needs no task."""
        started = time.perf_counter()
        coro = self.execute(key)
        if _EAGER_TASKS:
            task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
            if task.done():
                task.result()
                return
        else:
            task = loop.create_task(coro)
        pending.add(task)
        self._running[task] = (key, started)

    async def _wait_for_one(
        self, loop: asyncio.AbstractEventLoop, pending: set[asyncio.Task[Any]]
    ) -> None:
        """Wait until a running node finishes or the run is cancelled; an engine error stops
        the rest and is raised."""
        cancel_waiter = None
        waiters: set[asyncio.Future[Any]] = set(pending)
        if not self.signal.cancelled:
            cancel_waiter = loop.create_task(self.signal.wait())
            waiters.add(cancel_waiter)
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if cancel_waiter is not None and not cancel_waiter.done():
            cancel_waiter.cancel()
        for finished in done:
            if finished is cancel_waiter:
                continue
            pending.discard(finished)
            self._running.pop(finished, None)
            exc = finished.exception()
            if exc is not None:
                await self._stop(pending)  # an engine error: stop the rest, then report it
                raise exc

    def _over_bound_message(self, key: str, bound: int) -> str:
        node_id = split_key(key)[0]
        members = self.graph.cycle_through(node_id)
        if len(members) > 1 or self.graph.loop_of.get(node_id) is not None:
            cycle = " -> ".join(repr(m) for m in [*members, members[0]])
            return (
                f"run exceeded its bound of {bound} node executions (max_node_executions) "
                f"at node {node_id!r}: it keeps cycling through {cycle}"
            )
        return (
            f"run exceeded its bound of {bound} node executions (max_node_executions) "
            f"at node {node_id!r}"
        )

    async def _stop(self, pending: set[asyncio.Task[Any]]) -> None:
        """Stop nodes still running; each ends with status ``cancelled`` and an event."""
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            key, started = self._running.pop(task, (None, 0.0))
            if key is not None and key not in self.sched.settled and key not in self.awaiting:
                self._mark_cancelled(key, started, 1)

    def result(self) -> WorkflowResult:
        return run_result(self)


def run_result(run: MemoryRun) -> WorkflowResult:
    """The result of a run that stopped: its status, and the state a parked run resumes from."""
    sched = run.sched
    if run.failed:
        status = FAILED
    elif run.signal.cancelled:
        status = CANCELLED
    elif run.awaiting:
        status = AWAITING
    elif sched.finished:
        status = COMPLETED
    else:
        status = FAILED
        run.errors.append(
            NodeErrorInfo("", "run stalled: nodes remain that can never become ready")
        )
    waiting_outputs = {split_key(k)[0]: r.output for k, r in run.awaiting.items()}
    extra: list[tuple[str, str]] = [(k, AWAITING) for k in run.awaiting]
    extra += [(k, CANCELLED) for k in run.cancelled_nodes if k not in sched.settled]
    if run.graph.loops:
        by_node = statuses_by_node(sched.settled, extra)
    else:  # no iterations: every key is a node id
        by_node = dict(sched.settled)
        by_node.update(extra)
    # Plain strings in what a run hands back (YAML, repr), not ``Status`` members.
    node_statuses = {n: str(by_node[n]) for n in run.graph.order if n in by_node}
    state: dict[str, Any] = {"awaiting": []}
    if status == AWAITING:  # only a parked run can be resumed: only it keeps its state
        state = {
            "settled": {k: str(v) for k, v in sched.settled.items()},
            "outputs": dict(sched.outputs),
            "actions": dict(sched.actions),
            "decisions": sched.all_decisions(),
            # Which arrival fired each ``any`` join: a replay must credit that one.
            "firedBy": dict(sched.fired_by),
            "awaiting": list(run.awaiting),
            "parked": {k: r.output for k, r in run.awaiting.items()},
            "children": dict(run.children),
        }
    return WorkflowResult(
        run_id=run.run_id,
        blueprint_id=run.graph.id,
        status=str(status),
        # The run is over: its context dict is handed over, not copied.
        context=run.context.data,
        outputs=sched.latest_outputs(),
        errors=run.errors,
        node_statuses=node_statuses,
        timeline=Timeline(run.timeline),
        awaiting=[split_key(k)[0] for k in run.awaiting],
        awaiting_outputs=waiting_outputs,
        state=state,
    )
