"""Reading built-in node parameters with errors that name the node and the parameter."""

from __future__ import annotations

from typing import Any

from ..errors import FlowcraftError
from ..nodes import NodeContext


class BuiltinParamError(FlowcraftError, ValueError):
    pass


def number_param(
    ctx: NodeContext, name: str, *, default: float | None = None, minimum: float = 0
) -> float:
    value = ctx.params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: parameter {name!r} must be a number, not {value!r}"
        )
    if value < minimum:
        raise BuiltinParamError(f"node {ctx.node_id!r}: parameter {name!r} must be >= {minimum}")
    return float(value)


def str_param(ctx: NodeContext, name: str, default: str | None = None) -> str:
    value = ctx.params.get(name, default)
    if not isinstance(value, str) or not value:
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: parameter {name!r} must be a non-empty string"
        )
    return value


def services(ctx: NodeContext) -> Any:
    if ctx.services is None:
        raise BuiltinParamError(f"node {ctx.node_id!r}: built-in needs a runtime to run in")
    return ctx.services
