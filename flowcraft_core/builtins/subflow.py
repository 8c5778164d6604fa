"""``subflow``: run another registered blueprint as a child run.

Params: ``blueprintId``; ``inputs`` (child context key -> parent context key, or ``input`` for
this node's input); ``outputs`` (parent context key -> child context key). The node's output is
the child's final context. A child that does not complete fails this node with its errors.
"""

from __future__ import annotations

from typing import Any

from ..nodes import NodeContext, NodeResult
from .params import BuiltinParamError, services, str_param


class SubflowError(RuntimeError):
    pass


def _mapping(ctx: NodeContext, name: str) -> dict[str, str]:
    value = ctx.params.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: parameter {name!r} must map names to context keys"
        )
    return value


async def subflow_node(ctx: NodeContext) -> NodeResult:
    blueprint_id = str_param(ctx, "blueprintId")
    child_context: dict[str, Any] = {}
    for child_key, parent_key in _mapping(ctx, "inputs").items():
        if parent_key == "input":
            child_context[child_key] = ctx.input
        else:
            child_context[child_key] = await ctx.context.get(parent_key)
    outcome = await services(ctx).run_subflow(ctx, blueprint_id, child_context)
    details = "; ".join(e.message for e in outcome.errors)
    return await finish_subflow(ctx, blueprint_id, outcome.status, outcome.context, details)


async def finish_subflow(
    ctx: NodeContext, blueprint_id: str, status: str, child_context: dict[str, Any], details: str
) -> NodeResult:
    """The subflow node's result once its child ended (shared by both drivers)."""
    if status != "completed":
        raise SubflowError(f"subflow {blueprint_id!r} ended {status}: {details or status}")
    for parent_key, child_key in _mapping(ctx, "outputs").items():
        await ctx.context.set(parent_key, child_context.get(child_key))
    return NodeResult(output=child_context)
