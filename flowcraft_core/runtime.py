"""FlowRuntime: the in-memory driver (asyncio).

It keeps the run's state in a ``Scheduler`` and an ``InMemoryContext`` and runs nodes through
the engine. Nodes that finish without suspending never get an asyncio task of their own (a
chain costs a few microseconds per node); nodes that really await run concurrently, up to the
``concurrency`` limit.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .blueprint import NodeDefinition, WorkflowBlueprint, load_blueprint
from .builtins import default_registry
from .builtins.map import MapSpec, map_in_process
from .builtins.subflow import finish_subflow
from .builtins.webhook import token_matches
from .context import InMemoryContext
from .engine import (
    Clock,
    EventBus,
    FlowEvent,
    Middleware,
    NodeOutcome,
    SystemClock,
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
from .scheduler import (
    CompiledGraph,
    LoopLimitError,
    Scheduler,
    Settlement,
    edge_failure_message,
    failing_edge,
    pick_waiting_key,
    split_key,
    statuses_by_node,
)
from .status import AWAITING


@dataclass(slots=True)
class NodeErrorInfo:
    node_id: str
    message: str
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"nodeId": self.node_id, "message": self.message, "attempt": self.attempt}


@dataclass(slots=True)
class NodeTiming:
    key: str
    status: str
    started: float
    finished: float
    attempts: int = 1


class Timeline(Sequence[NodeTiming]):
    """A run's node timings, in the order they settled; each ``NodeTiming`` is made when read
    (a 10,000-node run does not build 10,000 objects nobody looks at)."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[tuple[str, str, float, float, int]]) -> None:
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [NodeTiming(*entry) for entry in self._entries[index]]
        return NodeTiming(*self._entries[index])

    def __iter__(self) -> Iterator[NodeTiming]:
        for entry in self._entries:
            yield NodeTiming(*entry)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Timeline({list(self)!r})"


@dataclass
class WorkflowResult:
    """The outcome of ``FlowRuntime.run``: status, context, outputs by node id, errors."""

    run_id: str
    blueprint_id: str
    status: str
    context: dict[str, Any]
    outputs: dict[str, Any]
    errors: list[NodeErrorInfo] = field(default_factory=list)
    node_statuses: dict[str, str] = field(default_factory=dict)
    timeline: Sequence[NodeTiming] = field(default_factory=list)
    awaiting: list[str] = field(default_factory=list)
    #: node id -> output of each node the run is parked at (a webhook's ``{url, token,
    #: event}``, a parked subflow's child run).
    awaiting_outputs: dict[str, Any] = field(default_factory=dict)
    #: What ``resume`` needs: per-instance statuses, outputs, actions and edge decisions.
    state: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "status": self.status,
            "context": self.context,
            "outputs": self.outputs,
            "errors": [e.to_dict() for e in self.errors],
            "nodes": self.node_statuses,
            "awaiting": self.awaiting,
            "awaitingOutputs": self.awaiting_outputs,
        }


#: Nodes run between two yields to the event loop (when none of them awaited).
_YIELD_EVERY = 512
#: Parked child runs kept for their subflow nodes to take (a map item that parks is not).
_MAX_PARKED_CHILDREN = 1000
#: Default bound on node executions per run (``FlowRuntime(max_node_executions=...)``).
DEFAULT_MAX_NODE_EXECUTIONS = 1_000_000

#: Python 3.12+ can start a task eagerly with the right ``current_task``; 3.11 cannot.
_EAGER_TASKS = sys.version_info >= (3, 12)


class _Exact:
    """A number in a snapshot that equals only the same number of the same type (``1`` is
    not ``1.0`` nor ``True`` here), so a snapshot comparison sees such a change."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self.value) and other == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _snapshot(value: Any) -> Any:
    """A deep copy of JSON-like data with numbers made type-exact (``_Exact``)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is float or kind is bool:
        return _Exact(value)
    if isinstance(value, Mapping):
        return {(k if type(k) is str else _Exact(k)): _snapshot(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_snapshot(v) for v in value)
    raise TypeError(f"not JSON-like data: {kind.__name__}")


class GraphCache:
    """Compiled graphs of blueprint dicts, reused only for a dict equal in every value and
    type to the one compiled (checked against a deep snapshot on each lookup, which costs a
    C-level comparison, a fraction of a microsecond per node)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: dict[tuple[Any, int, int], list[tuple[Any, CompiledGraph]]] = {}

    @staticmethod
    def _key(data: Mapping[str, Any]) -> tuple[Any, int, int] | None:
        nodes, edges = data.get("nodes"), data.get("edges")
        if not isinstance(nodes, list) or not isinstance(edges, list | None):
            return None
        blueprint_id = data.get("id")
        if not isinstance(blueprint_id, str):
            return None
        return blueprint_id, len(nodes), len(edges or ())

    def get(self, data: Mapping[str, Any]) -> CompiledGraph | None:
        key = self._key(data)
        candidates = self._entries.get(key) if key is not None else None
        if not candidates:
            return None
        for snapshot, graph in candidates:
            if data == snapshot:
                return graph
        return None

    def put(self, data: Mapping[str, Any], graph: CompiledGraph) -> None:
        key = self._key(data)
        if key is None:
            return
        try:
            snapshot = _snapshot(data)
        except TypeError:
            return  # not plain data: never cached
        if key not in self._entries and len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        candidates = self._entries.setdefault(key, [])
        candidates.insert(0, (snapshot, graph))
        del candidates[4:]


class _Run:
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
        self._resolved: dict[str, ResolvedNode | None] = {}
        self._inline: dict[str, tuple[NodeDefinition, ResolvedNode] | None] = {}
        #: Nodes stopped before they finished (a cancel, or another branch failing).
        self.cancelled_nodes: list[str] = []
        self._running: dict[asyncio.Future[Any], tuple[str, float]] = {}

    def resolved(self, node: NodeDefinition) -> ResolvedNode | None:
        """Resolve each node's implementation once (None: unknown, reported when it runs).

        Function implementations are shared by every node that uses them; class nodes get an
        instance per node, since they are built with the node's params.
        """
        try:
            return self._resolved[node.id]
        except KeyError:
            pass
        shared = self.runtime._function_impls.get(node.uses)
        if shared is not None:
            self._resolved[node.id] = shared
            return shared
        try:
            found: ResolvedNode | None = resolve(self.runtime.registry, node.uses, node.params)
        except UnknownImplementationError:
            found = None
        if found is not None and found.instance is None:
            self.runtime._function_impls[node.uses] = found
        self._resolved[node.id] = found
        return found

    def _inline_plan(self, key: str) -> tuple[NodeDefinition, ResolvedNode] | None:
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
            and not self.runtime.middleware
        ):
            plan = (node, resolved)
        self._inline[node_id] = plan
        return plan

    # ------------------------------------------------------------------ events
    def emit(self, type_: str, node_id: str | None = None, **data: Any) -> None:
        if self.bus is not None:
            self.bus.emit(FlowEvent(type_, self.run_id, node_id, data, time.time()))

    def _apply(self, step: Settlement) -> None:
        self.ready.extend(step.ready)
        if self.bus is not None and step.decisions is not None:
            for dkey, taken in step.decisions.items():
                edge = self.graph.edges[int(dkey.partition("@")[0])]
                self.emit("edge:decided", edge.source, target=edge.target, taken=taken, key=dkey)
            for key in step.skipped:
                self.emit("node:skip", split_key(key)[0], key=key)
        for key in step.skipped:
            now = time.perf_counter()
            self.timeline.append((key, "skipped", now, now, 0))

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
            self._finish(key, NodeOutcome("awaiting", result), ctx.input, started)
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
                status = "awaiting" if first_result.awaiting else "completed"
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
            resolved=self.resolved(node),
            failed_first=first_error,
        )
        self._finish(key, outcome, ctx.input, started)

    def _finish(self, key: str, outcome: NodeOutcome, node_input: Any, started: float) -> None:
        if outcome.status == "completed":
            result = outcome.result
            assert result is not None
            self.settle_completed(key, result, node_input, started, outcome.attempts)
        elif outcome.status == "awaiting":
            assert outcome.result is not None
            self.awaiting[key] = outcome.result
            child = self.runtime._take_parked_child(outcome.result.output)
            if child is not None:
                self.children[key] = child
            self.timeline.append((key, AWAITING, started, time.perf_counter(), outcome.attempts))
            self.emit("node:awaiting", split_key(key)[0], key=key)
        elif outcome.status == "cancelled":
            if not self.signal.cancelled:  # the node itself cancelled the run
                self.signal.cancel(f"node {split_key(key)[0]!r} cancelled the run")
            self._mark_cancelled(key, started, outcome.attempts)
        else:
            self._fail(key, outcome.error or "failed", outcome.attempts, started)

    def _mark_cancelled(self, key: str, started: float, attempts: int) -> None:
        if key in self.cancelled_nodes:
            return
        self.cancelled_nodes.append(key)
        self.timeline.append((key, "cancelled", started, time.perf_counter(), attempts))
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
            self.timeline.append((key, "completed", started, time.perf_counter(), attempts))
            self.failed = True
            self.errors.append(
                NodeErrorInfo(node_id, edge_failure_message(node_id, *found), attempts)
            )
            return
        self.timeline.append((key, "completed", started, time.perf_counter(), attempts))
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
        self.timeline.append((key, "failed", started, time.perf_counter(), attempts))
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
                plan = self._inline_plan(key)
                if plan is not None:
                    awaitable = self.run_inline(key, plan)
                    if awaitable is not None:
                        task: asyncio.Task[Any] = loop.create_task(
                            awaitable  # type: ignore[arg-type]
                        )
                        pending.add(task)
                        self._running[task] = (key, time.perf_counter())
                    continue
                started = time.perf_counter()
                coro = self.execute(key)
                if _EAGER_TASKS:
                    task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
                    if task.done():
                        task.result()
                    else:
                        pending.add(task)
                        self._running[task] = (key, started)
                else:
                    task = loop.create_task(coro)
                    pending.add(task)
                    self._running[task] = (key, started)
            self.executed = executed
            if not pending:
                return
            if self.failed or self.signal.cancelled:
                await self._stop(pending)
                return
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
        sched = self.sched
        if self.failed:
            status = "failed"
        elif self.signal.cancelled:
            status = "cancelled"
        elif self.awaiting:
            status = "awaiting"
        elif sched.finished:
            status = "completed"
        else:
            status = "failed"
            self.errors.append(
                NodeErrorInfo("", "run stalled: nodes remain that can never become ready")
            )
        waiting_outputs = {split_key(k)[0]: r.output for k, r in self.awaiting.items()}
        extra: list[tuple[str, str]] = [(k, AWAITING) for k in self.awaiting]
        extra += [(k, "cancelled") for k in self.cancelled_nodes if k not in sched.settled]
        if self.graph.loops:
            by_node = statuses_by_node(sched.settled, extra)
        else:  # no iterations: every key is a node id
            by_node = dict(sched.settled)
            by_node.update(extra)
        node_statuses = {n: by_node[n] for n in self.graph.order if n in by_node}
        state: dict[str, Any] = {"awaiting": []}
        if status == AWAITING:  # only a parked run can be resumed: only it keeps its state
            state = {
                "settled": dict(sched.settled),
                "outputs": dict(sched.outputs),
                "actions": dict(sched.actions),
                "decisions": sched.all_decisions(),
                "awaiting": list(self.awaiting),
                "parked": {k: r.output for k, r in self.awaiting.items()},
                "children": dict(self.children),
            }
        return WorkflowResult(
            run_id=self.run_id,
            blueprint_id=self.graph.id,
            status=status,
            # The run is over: its context dict is handed over, not copied.
            context=self.context.data,
            outputs=sched.latest_outputs(),
            errors=self.errors,
            node_statuses=node_statuses,
            timeline=Timeline(self.timeline),
            awaiting=[split_key(k)[0] for k in self.awaiting],
            awaiting_outputs=waiting_outputs,
            state=state,
        )


def _webhook_path(result: WorkflowResult, token: str) -> str | None:
    """The parked webhook of a run (or of a child run parked in one of its subflow nodes,
    as ``sub/hook``) whose token is ``token``."""
    if result.status != AWAITING:
        return None
    for key, endpoint in result.state.get("parked", {}).items():
        if token_matches(endpoint, token):
            return str(key)
    for key, child in result.state.get("children", {}).items():
        inner = _webhook_path(child, token)
        if inner is not None:
            return f"{key}/{inner}"
    return None


class FlowRuntime:
    """Runs blueprints in memory. Built-ins (sleep, wait, webhook, subflow, map, batch, loop)
    are registered by default; entries in ``registry`` override them.

    ``max_node_executions`` bounds the node executions of one run (a loop that never ends
    fails the run, naming its cycle); ``webhook_base_url`` prefixes the URLs webhook nodes
    hand out.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        blueprints: Mapping[str, WorkflowBlueprint | Mapping[str, Any]] | None = None,
        dependencies: Mapping[str, Any] | None = None,
        middleware: Sequence[Middleware] | None = None,
        event_bus: EventBus | None = None,
        *,
        concurrency: int | None = None,
        clock: Clock | None = None,
        max_node_executions: int = DEFAULT_MAX_NODE_EXECUTIONS,
        webhook_base_url: str = "",
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_node_executions < 1:
            raise ValueError("max_node_executions must be at least 1")
        merged: dict[str, Any] = dict(default_registry())
        merged.update(registry or {})
        self.registry: Registry = merged
        self.blueprints: dict[str, WorkflowBlueprint] = {
            key: load_blueprint(value) for key, value in (blueprints or {}).items()
        }
        self.dependencies: Mapping[str, Any] = dependencies or {}
        self.middleware: Sequence[Middleware] = list(middleware or ())
        self.event_bus = event_bus
        self.concurrency = concurrency
        self.clock: Clock = clock or SystemClock()
        self.max_node_executions = max_node_executions
        self.webhook_base_url = webhook_base_url
        self._graphs: dict[int, tuple[WorkflowBlueprint, CompiledGraph]] = {}
        self._dict_graphs: GraphCache = GraphCache()
        self._signals: dict[str, CancellationSignal] = {}
        self._function_impls: dict[str, ResolvedNode] = {}
        self._parked_children: dict[str, WorkflowResult] = {}

    def _checked_graph(self, model: WorkflowBlueprint) -> CompiledGraph:
        """Compile a blueprint after checking it can run (once per blueprint: the result is
        cached): an unknown ``uses`` or a bad expression refuses the start before any node
        runs, with lint's findings (``InvalidBlueprint``)."""
        from .analysis import check_runnable

        check_runnable(model, self.registry)
        return CompiledGraph(model)

    def compile(self, blueprint: WorkflowBlueprint | Mapping[str, Any] | str) -> CompiledGraph:
        """Load and compile a blueprint. Compiled graphs are cached: per model object, and for
        a dict, per content (a dict that changed in any way is compiled again)."""
        if isinstance(blueprint, str) and blueprint in self.blueprints:
            blueprint = self.blueprints[blueprint]
        if isinstance(blueprint, Mapping):
            cached_graph = self._dict_graphs.get(blueprint)
            if cached_graph is not None:
                return cached_graph
            graph = self._checked_graph(load_blueprint(blueprint))
            self._dict_graphs.put(blueprint, graph)
            return graph
        model = load_blueprint(blueprint)
        cached = self._graphs.get(id(model))
        if cached is not None and cached[0] is model:
            return cached[1]
        graph = self._checked_graph(model)
        if len(self._graphs) > 256:
            self._graphs.clear()
        self._graphs[id(model)] = (model, graph)
        return graph

    async def run(
        self,
        blueprint: WorkflowBlueprint | Mapping[str, Any] | str,
        initial_context: Mapping[str, Any] | None = None,
        *,
        signal: CancellationSignal | None = None,
        run_id: str | None = None,
    ) -> WorkflowResult:
        graph = self.compile(blueprint)
        run = _Run(
            self,
            graph,
            InMemoryContext(initial_context),
            run_id or str(uuid.uuid4()),
            signal or CancellationSignal(),
        )
        run.ready.extend(run.sched.start().ready)
        return await self._drive(run)

    async def resume(
        self,
        blueprint: WorkflowBlueprint | Mapping[str, Any] | str,
        result: WorkflowResult,
        *,
        node_id: str | None = None,
        action: str | None = None,
        output: Any = None,
        signal: CancellationSignal | None = None,
    ) -> WorkflowResult:
        """Continue an ``awaiting`` run: the waiting node completes with ``output``/``action``.

        ``node_id`` names the waiting node (or instance, ``ask#2``); it may be left out when
        only one waits. A subflow node parked by its child resumes through the child: the
        child's waiting node gets ``output``/``action`` (``"sub/ask"`` picks child node ``ask``
        when several wait), and once the child completes the subflow node completes.
        """
        if result.status != "awaiting":
            raise ValueError(f"run {result.run_id!r} is {result.status}, not awaiting")
        graph = self.compile(blueprint)
        state = result.state
        waiting: list[str] = list(state.get("awaiting", []))
        child_node: str | None = None
        if node_id is not None and "/" in node_id and node_id not in waiting:
            # ``sub/ask``: the node ``ask`` of the child run parked in subflow node ``sub``.
            node_id, _, child_node = node_id.partition("/")
        try:
            key = pick_waiting_key(waiting, node_id)
        except LookupError as exc:
            raise ValueError(f"run {result.run_id!r} cannot resume {exc.args[0]}") from None
        sched = Scheduler.restore(
            graph, state["settled"], state["outputs"], state["actions"], state["decisions"]
        )
        run = _Run(
            self,
            graph,
            InMemoryContext(result.context),
            result.run_id,
            signal or CancellationSignal(),
            scheduler=sched,
        )
        parked: dict[str, Any] = state.get("parked", {})
        children: dict[str, WorkflowResult] = dict(state.get("children", {}))
        for other in waiting:
            if other != key:
                run.awaiting[other] = NodeResult(output=parked.get(other), awaiting=True)
                if other in children:
                    run.children[other] = children[other]
        started = time.perf_counter()
        node_input = sched.build_input(key, run.view)
        if key in children:
            # A subflow parked inside its child: resume the child, then finish this node.
            finished = await self._resume_child(
                run, key, children[key], node_input, child_node, action, output
            )
            if finished is not None:
                run.settle_completed(key, finished, node_input, started, 1)
        else:
            result_of_resume = NodeResult(output=output, action=action)
            run.settle_completed(key, result_of_resume, node_input, started, 1)
        return await self._drive(run)

    async def _resume_child(
        self,
        run: _Run,
        key: str,
        child: WorkflowResult,
        node_input: Any,
        child_node: str | None,
        action: str | None,
        output: Any,
    ) -> NodeResult | None:
        """Resume the child run parked in subflow node ``key``; the node's result once the
        child ended, None when it parked again (the node stays parked) or failed the node."""
        node_id, iteration = split_key(key)
        node = run.graph.nodes[node_id]
        blueprint_id = str(node.params.get("blueprintId"))
        resumed = await self.resume(
            self.blueprints[blueprint_id],
            child,
            node_id=child_node,
            action=action,
            output=output,
            signal=run.signal,
        )
        if resumed.status == "awaiting":
            parked = {
                "subflow": blueprint_id,
                "runId": resumed.run_id,
                "awaiting": resumed.awaiting,
                "awaitingOutputs": resumed.awaiting_outputs,
            }
            run.awaiting[key] = NodeResult(output=parked, awaiting=True)
            run.children[key] = resumed
            return None
        ctx = NodeContext(
            context=run.context,
            input=node_input,
            params=node.params,
            dependencies=self.dependencies,
            run_id=run.run_id,
            node_id=node_id,
            iteration=iteration,
            blueprint_id=run.graph.id,
            signal=run.signal,
            services=self,
        )
        details = "; ".join(e.message for e in resumed.errors)
        try:
            return await finish_subflow(
                ctx, blueprint_id, resumed.status, resumed.context, details, resumed.outputs
            )
        except Exception as exc:
            run._fail(key, str(exc), 1, time.perf_counter())
            return None

    async def resume_webhook(
        self,
        blueprint: WorkflowBlueprint | Mapping[str, Any] | str,
        result: WorkflowResult,
        token: str,
        body: Any = None,
        *,
        action: str | None = None,
    ) -> WorkflowResult:
        """Call a parked ``webhook`` node in memory (the local callback): the node whose
        token matches completes with ``body`` as its output and the run goes on.

        Raises ``PermissionError`` when no parked webhook of the run has that token.
        """
        path = _webhook_path(result, token)
        if path is None:
            raise PermissionError(f"run {result.run_id!r}: no parked webhook has this token")
        return await self.resume(blueprint, result, node_id=path, action=action, output=body)

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a run started by this runtime; False when it is not running."""
        signal = self._signals.get(run_id)
        if signal is None:
            return False
        signal.cancel(reason)
        return True

    async def _drive(self, run: _Run) -> WorkflowResult:
        self._signals[run.run_id] = run.signal
        run.emit("run:start", None, blueprintId=run.graph.id)
        try:
            await run.drive()
        finally:
            self._signals.pop(run.run_id, None)
        result = run.result()
        run.emit("run:finish", None, status=result.status)
        return result

    # ------------------------------------------------------------------ services for built-ins
    async def sleep(self, ctx: NodeContext, seconds: float) -> None:
        if seconds <= 0:
            return
        sleeper: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(seconds))
        cancel: asyncio.Future[Any] = asyncio.ensure_future(ctx.signal.wait())
        try:
            await asyncio.wait({sleeper, cancel}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            cancel.cancel()
        ctx.raise_if_cancelled()

    async def map_items(self, ctx: NodeContext, spec: MapSpec) -> list[Any]:
        return await map_in_process(self, ctx, spec)

    async def run_subflow(
        self, ctx: NodeContext, blueprint_id: str, context: dict[str, Any]
    ) -> WorkflowResult:
        if blueprint_id not in self.blueprints:
            raise LookupError(f"subflow blueprint {blueprint_id!r} is not registered")
        child = await self.run(
            self.blueprints[blueprint_id],
            context,
            signal=ctx.signal,
            run_id=f"{ctx.run_id}/{ctx.node_id}",
        )
        if child.status == AWAITING:
            # Kept until the parent node parks on it (``_take_parked_child``).
            self._parked_children[child.run_id] = child
            while len(self._parked_children) > _MAX_PARKED_CHILDREN:  # never taken: let go
                self._parked_children.pop(next(iter(self._parked_children)))
        return child

    def _take_parked_child(self, parked_output: Any) -> WorkflowResult | None:
        if not self._parked_children or not isinstance(parked_output, dict):
            return None
        run_id = parked_output.get("runId")
        if "subflow" not in parked_output or not isinstance(run_id, str):
            return None
        return self._parked_children.pop(run_id, None)
