"""``batch-scatter`` / ``batch-gather``: flowcraft's batch pair, on top of ``map``.

``batch-scatter`` takes its input (a list; flowcraft's builder selects it with ``inputs``) and
runs the node ``workerUsesKey`` on each item, at most ``chunkSize`` at a time (default: all),
the way ``map`` does. Its output is ``{"gatherNodeId", "hasMore": false, "results"}``.
``batch-gather`` (``gatherNodeId`` names it) stores the results, in item order, in the context
under ``outputKey`` (default: its own id) and outputs them. Unlike flowcraft, no worker nodes
are added to the graph at run time: the items are the map's, so both drivers run them.
"""

from __future__ import annotations

from typing import Any

from ..nodes import NodeContext, NodeResult
from .map import MapSpec
from .params import BuiltinParamError, number_param, services


async def batch_scatter_node(ctx: NodeContext) -> NodeResult:
    items = ctx.input if ctx.input is not None else []
    if not isinstance(items, list):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: input for batch-scatter must be a list, "
            f"got {type(items).__name__}"
        )
    worker = ctx.params.get("workerUsesKey")
    gather = ctx.params.get("gatherNodeId")
    if not isinstance(worker, str) or not worker or not isinstance(gather, str) or not gather:
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: batch-scatter needs 'workerUsesKey' and 'gatherNodeId'"
        )
    chunk = ctx.params.get("chunkSize")
    concurrency = len(items) or 1
    if chunk is not None:
        concurrency = int(number_param(ctx, "chunkSize", minimum=1))
    spec = MapSpec(items=items, uses=worker, concurrency=concurrency)
    results = await services(ctx).map_items(ctx, spec) if items else []
    return NodeResult(output={"gatherNodeId": gather, "hasMore": False, "results": results})


def _scatter_output(value: Any, gather_id: str) -> dict[str, Any] | None:
    if isinstance(value, list):  # a driver that completed the scatter with the map's results
        return {"gatherNodeId": gather_id, "hasMore": False, "results": value}
    if isinstance(value, dict) and "results" in value and "gatherNodeId" in value:
        return value
    if isinstance(value, dict):  # a join: {source id: output}
        for item in value.values():
            if isinstance(item, dict) and item.get("gatherNodeId") == gather_id:
                return item
    return None


async def batch_gather_node(ctx: NodeContext) -> NodeResult:
    gather_id = ctx.params.get("gatherNodeId") or ctx.node_id
    scattered = _scatter_output(ctx.input, str(gather_id))
    if scattered is None:
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: batch-gather needs the output of a batch-scatter "
            "as its input (an edge from the scatter node)"
        )
    results = list(scattered.get("results") or [])
    output_key = ctx.params.get("outputKey") or ctx.node_id
    await ctx.context.set(str(output_key), results)
    return NodeResult(output=results)
