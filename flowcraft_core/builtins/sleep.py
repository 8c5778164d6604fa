"""``sleep``: pause this branch for ``duration`` milliseconds, passing its input through.

In memory it awaits the runtime's clock; distributed, the worker parks the job on the queue
with a message delay instead of holding a Lambda invocation open.
"""

from __future__ import annotations

from ..nodes import NodeContext, NodeResult
from .params import number_param, services


async def sleep_node(ctx: NodeContext) -> NodeResult:
    duration_ms = number_param(ctx, "duration", default=0)
    await services(ctx).sleep(ctx, duration_ms / 1000.0)
    return NodeResult(output=ctx.input)
