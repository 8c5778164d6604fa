"""FlowRuntime: the in-memory driver (asyncio): starts, resumes and cancels runs, and serves
built-ins (sleep, map, subflow). One run's loop is ``memory_run.MemoryRun``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .blueprint import WorkflowBlueprint, load_blueprint
from .builtins import default_registry
from .builtins.map import MapSpec, map_in_process
from .builtins.subflow import finish_subflow, parked_on
from .builtins.webhook import token_matches
from .context import InMemoryContext
from .engine import (
    Clock,
    EventBus,
    Middleware,
    SystemClock,
    describe_error,
)
from .graph_cache import GraphCache
from .memory_run import MemoryRun
from .nodes import (
    CancellationSignal,
    NodeContext,
    NodeResult,
    Registry,
    ResolvedNode,
)
from .results import NodeErrorInfo, NodeTiming, Timeline, WorkflowResult
from .scheduler import (
    CompiledGraph,
    Scheduler,
    instance_key,
    pick_waiting_key,
    split_key,
)
from .status import AWAITING

#: Parked child runs kept for their subflow nodes to take (a map item that parks is not).
_MAX_PARKED_CHILDREN = 1000
#: Default bound on node executions per run (``FlowRuntime(max_node_executions=...)``).
DEFAULT_MAX_NODE_EXECUTIONS = 1_000_000


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
        run = MemoryRun(
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
        if result.status != AWAITING:
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
        run = self._restored_run(graph, result, key, signal)
        children: dict[str, WorkflowResult] = state.get("children", {})
        started = time.perf_counter()
        node_input = run.sched.build_input(key, run.view)
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

    def _restored_run(
        self,
        graph: CompiledGraph,
        result: WorkflowResult,
        key: str,
        signal: CancellationSignal | None,
    ) -> MemoryRun:
        """A parked run rebuilt from its result's state; every waiting instance but ``key``
        (the one resuming) stays parked, with its child run if it has one."""
        state = result.state
        sched = Scheduler.restore(
            graph,
            state["settled"],
            state["outputs"],
            state["actions"],
            state["decisions"],
            state.get("firedBy"),
        )
        run = MemoryRun(
            self,
            graph,
            InMemoryContext(result.context),
            result.run_id,
            signal or CancellationSignal(),
            scheduler=sched,
        )
        parked: dict[str, Any] = state.get("parked", {})
        children: dict[str, WorkflowResult] = state.get("children", {})
        for other in state.get("awaiting", []):
            if other != key:
                run.awaiting[other] = NodeResult(output=parked.get(other), awaiting=True)
                if other in children:
                    run.children[other] = children[other]
        return run

    async def _resume_child(
        self,
        run: MemoryRun,
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
        if resumed.status == AWAITING:
            run.awaiting[key] = parked_on(blueprint_id, resumed)
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
            # Worded as any failed attempt is (the distributed driver says the same).
            run._fail(key, describe_error(exc), 1, time.perf_counter())
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

    async def _drive(self, run: MemoryRun) -> WorkflowResult:
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
            # One id per node instance (a loop's pass, a map's item), as distributed.
            run_id=f"{ctx.run_id}/{instance_key(ctx.node_id, ctx.iteration)}",
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


__all__ = [
    "DEFAULT_MAX_NODE_EXECUTIONS",
    "FlowRuntime",
    "GraphCache",
    "NodeErrorInfo",
    "NodeTiming",
    "Timeline",
    "WorkflowResult",
]
