"""``map``: scatter a list over a worker node (or a sub-blueprint) and gather results in order.

Params: ``items`` (expression over ``input`` and ``context``; default: this node's input),
``uses`` (registry key of the worker) or ``blueprintId`` (run per item, item in context key
``item``, result from context key ``result``), ``concurrency`` (default 10), ``params``
(passed to each worker), and ``maxRetries``/``retryDelay``/``timeout`` for each item.

The node only reads its parameters into a ``MapSpec``; the driver runs it: in memory with
asyncio, distributed as one queued job per item (``services.map_items``).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from ..blueprint import NodeConfig, NodeDefinition
from ..durations import DurationError, parse_duration_ms
from ..errors import FlowcraftError
from ..expressions import compile_expression
from ..nodes import NodeContext, NodeResult
from ..status import COMPLETED
from .params import BuiltinParamError, number_param, services


def map_item_instance(instance: str, index: int) -> str:
    """A map item's own instance (``<map>[<index>]``): its result, retries and sleeps are
    recorded under it like any node's."""
    return f"{instance}[{index}]"


class MapItemError(FlowcraftError, RuntimeError):
    pass


@dataclass
class MapSpec:
    items: list[Any]
    uses: str | None = None
    blueprint_id: str | None = None
    concurrency: int = 10
    params: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 0
    retry_delay: float = 0
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MapSpec:
        timeout = data.get("timeout")
        return cls(
            items=list(data["items"]),
            uses=data.get("uses"),
            blueprint_id=data.get("blueprint_id"),
            concurrency=int(data.get("concurrency") or 10),
            params=dict(data.get("params") or {}),
            max_retries=int(data.get("max_retries") or 0),
            retry_delay=float(data.get("retry_delay") or 0),
            timeout=float(timeout) if timeout is not None else None,
        )

    def item_node(self, map_node_id: str, index: int) -> NodeDefinition:
        """The node definition one item runs as (retries and timeout from the map's params)."""
        config = NodeConfig(
            max_retries=self.max_retries, retry_delay=self.retry_delay, timeout=self.timeout
        )
        return NodeDefinition(
            id=map_item_instance(map_node_id, index),
            uses=str(self.uses),
            params=self.params,
            config=config,
        )


async def read_spec(ctx: NodeContext) -> MapSpec:
    source = ctx.params.get("items")
    if source is None:
        items = ctx.input
    else:
        if not isinstance(source, str):
            raise BuiltinParamError(
                f"node {ctx.node_id!r}: parameter 'items' must be an expression"
            )
        scope = {"input": ctx.input, "context": await ctx.context.to_dict()}
        items = compile_expression(source).evaluate(scope)
    if not isinstance(items, list):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: map needs a list of items, got {type(items).__name__}"
        )
    uses = ctx.params.get("uses")
    blueprint_id = ctx.params.get("blueprintId")
    if (uses is None) == (blueprint_id is None):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: map needs exactly one of 'uses' or 'blueprintId'"
        )
    worker_params = ctx.params.get("params") or {}
    if not isinstance(worker_params, dict):
        raise BuiltinParamError(f"node {ctx.node_id!r}: parameter 'params' must be an object")
    timeout = ctx.params.get("timeout")
    try:
        retry_delay = parse_duration_ms(ctx.params.get("retryDelay", 0), "parameter 'retryDelay'")
        if timeout is not None:
            timeout = parse_duration_ms(timeout, "parameter 'timeout'")
    except DurationError as exc:
        raise BuiltinParamError(f"node {ctx.node_id!r}: {exc}") from None
    return MapSpec(
        items=items,
        uses=str(uses) if uses is not None else None,
        blueprint_id=str(blueprint_id) if blueprint_id is not None else None,
        concurrency=int(number_param(ctx, "concurrency", default=10, minimum=1)),
        params=worker_params,
        max_retries=int(number_param(ctx, "maxRetries", default=0)),
        retry_delay=retry_delay,
        timeout=float(timeout) if timeout is not None else None,
    )


async def map_node(ctx: NodeContext) -> NodeResult:
    spec = await read_spec(ctx)
    results = await services(ctx).map_items(ctx, spec)
    return NodeResult(output=results)


def item_context(ctx: NodeContext, node_id: str, item: Any, spec: MapSpec) -> NodeContext:
    return NodeContext(
        context=ctx.context,
        input=item,
        params=spec.params,
        dependencies=ctx.dependencies,
        run_id=ctx.run_id,
        node_id=node_id,
        iteration=ctx.iteration,
        blueprint_id=ctx.blueprint_id,
        signal=ctx.signal,
        services=ctx.services,
    )


def blueprint_item_output(child: Any, blueprint_id: str) -> Any:
    """What an item run as a sub-blueprint (``child``, its result) gives the map: its context's
    ``result``, else its outputs; a child that did not complete fails the item."""
    if child.status != COMPLETED:
        details = "; ".join(e.message for e in child.errors) or child.status
        raise MapItemError(f"subflow {blueprint_id!r}: {details}")
    return child.context.get("result", child.outputs)


async def run_item(runtime: Any, ctx: NodeContext, spec: MapSpec, index: int) -> Any:
    """One item, start to finish, in this process (retries and fallback included)."""
    from ..engine import execute_with_policy

    item = spec.items[index]
    if spec.blueprint_id is not None:
        own = item_context(ctx, map_item_instance(ctx.node_id, index), item, spec)
        child = await runtime.run_subflow(own, spec.blueprint_id, {"item": item, "index": index})
        try:
            return blueprint_item_output(child, spec.blueprint_id)
        except MapItemError as exc:
            raise MapItemError(f"item {index}: {exc}") from None
    node = spec.item_node(ctx.node_id, index)
    item_ctx = item_context(ctx, node.id, item, spec)
    outcome = await execute_with_policy(node, item_ctx, runtime.registry, clock=runtime.clock)
    if outcome.status != COMPLETED or outcome.result is None:
        raise MapItemError(f"item {index}: {outcome.error or outcome.status}")
    return outcome.result.output


async def map_in_process(runtime: Any, ctx: NodeContext, spec: MapSpec) -> list[Any]:
    """The in-memory way: every item concurrently, at most ``concurrency`` at a time."""
    results: list[Any] = [None] * len(spec.items)
    semaphore = asyncio.Semaphore(spec.concurrency)

    async def one(index: int) -> None:
        async with semaphore:
            ctx.raise_if_cancelled()
            results[index] = await run_item(runtime, ctx, spec, index)

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(spec.items))]
    if not tasks:
        return results
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        # One failing item fails the map: the items not finished are stopped, not left behind.
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return results
