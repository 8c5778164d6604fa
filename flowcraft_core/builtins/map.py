"""``map``: scatter a list over a worker node (or a sub-blueprint) and gather results in order.

Params: ``items`` (expression over ``input`` and ``context``; default: this node's input),
``uses`` (registry key of the worker) or ``blueprintId`` (run per item, item in context key
``item``), ``concurrency`` (default 10), ``params`` (passed to each worker). Each item gets
the worker's retries/timeout from ``maxRetries``/``retryDelay``/``timeout`` params.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..blueprint import NodeConfig, NodeDefinition
from ..expressions import compile_expression
from ..nodes import NodeContext, NodeResult
from .params import BuiltinParamError, number_param, services


class MapItemError(RuntimeError):
    pass


async def map_node(ctx: NodeContext) -> NodeResult:
    from ..engine import execute_with_policy

    runtime = services(ctx)
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
    limit = int(number_param(ctx, "concurrency", default=10, minimum=1))
    uses = ctx.params.get("uses")
    blueprint_id = ctx.params.get("blueprintId")
    if (uses is None) == (blueprint_id is None):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: map needs exactly one of 'uses' or 'blueprintId'"
        )
    worker_params = ctx.params.get("params") or {}
    config = NodeConfig(
        max_retries=int(ctx.params.get("maxRetries", 0)),
        retry_delay=float(ctx.params.get("retryDelay", 0)),
        timeout=ctx.params.get("timeout"),
    )
    results: list[Any] = [None] * len(items)
    semaphore = asyncio.Semaphore(limit)

    async def one(index: int, item: Any) -> None:
        async with semaphore:
            ctx.raise_if_cancelled()
            if blueprint_id is not None:
                child = await runtime.run_subflow(
                    ctx, str(blueprint_id), {"item": item, "index": index}
                )
                if child.status != "completed":
                    raise MapItemError(
                        f"item {index}: subflow {blueprint_id!r} ended {child.status}"
                    )
                results[index] = child.context.get("result", child.outputs)
                return
            node = NodeDefinition(
                id=f"{ctx.node_id}[{index}]", uses=str(uses), params=worker_params, config=config
            )
            item_ctx = NodeContext(
                context=ctx.context,
                input=item,
                params=worker_params,
                dependencies=ctx.dependencies,
                run_id=ctx.run_id,
                node_id=node.id,
                iteration=ctx.iteration,
                blueprint_id=ctx.blueprint_id,
                signal=ctx.signal,
                services=ctx.services,
            )
            outcome = await execute_with_policy(
                node, item_ctx, runtime.registry, clock=runtime.clock
            )
            if outcome.status != "completed" or outcome.result is None:
                raise MapItemError(f"item {index}: {outcome.error or outcome.status}")
            results[index] = outcome.result.output

    await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    return NodeResult(output=results)
