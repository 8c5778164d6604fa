"""``sleep``: pause this branch for ``duration`` (milliseconds, or flowcraft's ``"500ms"``,
``"5s"``, ``"10m"``, ``"1h"``, ``"2d"``), passing its input through.

In memory it awaits the runtime's clock and completes (the run is not parked); distributed,
the worker parks the job on the queue with a message delay instead of holding a Lambda
invocation open.
"""

from __future__ import annotations

from ..durations import DurationError, parse_duration_ms
from ..nodes import NodeContext, NodeResult
from .params import BuiltinParamError, services


async def sleep_node(ctx: NodeContext) -> NodeResult:
    try:
        duration_ms = parse_duration_ms(ctx.params.get("duration", 0), "parameter 'duration'")
    except DurationError as exc:
        raise BuiltinParamError(f"node {ctx.node_id!r}: {exc}") from None
    await services(ctx).sleep(ctx, duration_ms / 1000.0)
    return NodeResult(output=ctx.input)
