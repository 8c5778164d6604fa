"""``loop``: the controller of a bounded loop.

Params: ``condition`` (expression over ``context``, ``input`` and ``iteration``; the loop goes
on while it holds) and ``maxIterations`` (default 100). It answers action ``continue`` (edge into
the loop body) or ``break`` (edge out of the loop), passing its input through. The body's last
node links back to the loop node, closing the cycle; each pass is a new iteration.
"""

from __future__ import annotations

from ..expressions import compile_expression, is_truthy
from ..nodes import NodeContext, NodeResult
from .params import BuiltinParamError, number_param

DEFAULT_MAX_ITERATIONS = 100


async def loop_node(ctx: NodeContext) -> NodeResult:
    limit = int(number_param(ctx, "maxIterations", default=DEFAULT_MAX_ITERATIONS, minimum=1))
    source = ctx.params.get("condition", "true")
    if not isinstance(source, str):
        raise BuiltinParamError(f"node {ctx.node_id!r}: parameter 'condition' must be a string")
    if ctx.iteration >= limit:
        return NodeResult(output=ctx.input, action="break")
    scope = {"context": await ctx.context.to_dict(), "input": ctx.input, "iteration": ctx.iteration}
    going_on = is_truthy(compile_expression(source).evaluate(scope))
    return NodeResult(output=ctx.input, action="continue" if going_on else "break")
