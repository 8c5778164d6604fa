"""``loop`` and ``loop-controller``: the controller of a loop.

Params: ``condition``, an expression over the context (its keys and node outputs are names
of their own, as in flowcraft: ``count < 5``; ``context``, ``input`` and ``iteration`` are
there too); the loop goes on while it holds. ``maxIterations`` bounds the passes (``loop``:
default 100; ``loop-controller``: flowcraft's, no bound of its own, the run's bound on node
executions applies). It answers action ``continue`` (edge into the loop body) or ``break``
(edge out of the loop), passing its input through. The body's last node links back to the
controller, closing the cycle; each pass is a new iteration. The controller's conditional
out-edges are evaluated before action matching, so a condition can end the loop early.
"""

from __future__ import annotations

from typing import Any

from ..context import ContextView, ExpressionScope
from ..expressions import compile_expression, is_truthy
from ..nodes import NodeContext, NodeResult
from .params import BuiltinParamError, number_param

DEFAULT_MAX_ITERATIONS = 100


async def context_view(ctx: NodeContext) -> Any:
    """The context as expressions read it (with node outputs where the driver offers them)."""
    view = getattr(ctx.context, "view", None)
    if view is not None:
        return view
    return ContextView(await ctx.context.to_dict(), None)


async def _decide(ctx: NodeContext, limit: int | None, default_condition: str) -> NodeResult:
    source = ctx.params.get("condition", default_condition)
    if not isinstance(source, str):
        raise BuiltinParamError(f"node {ctx.node_id!r}: parameter 'condition' must be a string")
    if limit is not None and ctx.iteration >= limit:
        return NodeResult(output=ctx.input, action="break")
    view = await context_view(ctx)
    fixed = {"context": view, "input": ctx.input, "iteration": ctx.iteration}
    going_on = is_truthy(compile_expression(source).evaluate(ExpressionScope(fixed, view)))
    return NodeResult(output=ctx.input, action="continue" if going_on else "break")


async def loop_node(ctx: NodeContext) -> NodeResult:
    limit = int(number_param(ctx, "maxIterations", default=DEFAULT_MAX_ITERATIONS, minimum=1))
    return await _decide(ctx, limit, "true")


async def loop_controller_node(ctx: NodeContext) -> NodeResult:
    limit = None
    if "maxIterations" in ctx.params:
        limit = int(number_param(ctx, "maxIterations", minimum=1))
    if not isinstance(ctx.params.get("condition"), str):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: loop-controller needs a 'condition' expression"
        )
    return await _decide(ctx, limit, "false")
