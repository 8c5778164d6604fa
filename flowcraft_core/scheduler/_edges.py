"""What a settled node decides: which of its edges are taken, what they carry, and what one
decided edge means for a join."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..context import ExpressionScope
from ..expressions import ExpressionError, is_truthy
from ._graph import CompiledEdge

#: Join verdicts (``join_verdict``).
WAIT, READY, SKIP = 0, 1, 2


def join_verdict(taken: bool, any_join: bool, undecided: int, arrived: bool) -> int:
    """What one decided incoming edge means for its target (not yet fired or settled).

    ``any`` joins fire on the first taken edge; otherwise a target waits until every incoming
    edge is decided, then fires if one was taken (``arrived``) and is skipped if none was.
    """
    if taken and any_join:
        return READY
    if undecided == 0:
        return READY if arrived else SKIP
    return WAIT


def _result_scope(output: Any, action: str | None) -> dict[str, Any]:
    """``result`` in expressions: ``result.output``/``result.action``, plus the output's keys."""
    scope: dict[str, Any] = dict(output) if isinstance(output, Mapping) else {}
    scope["output"] = output
    scope["action"] = action
    return scope


def failing_edge(
    edges: list[CompiledEdge],
    action: str | None,
    output: Any,
    context: Mapping[str, Any],
    node_input: Any = None,
) -> tuple[CompiledEdge, ExpressionError] | None:
    """The edge whose condition cannot be evaluated on this result, and why (conditions are
    tried one by one); None when every one evaluates. Both drivers report an edge failure with
    it, keeping the node's output."""
    for edge in edges:
        if edge.condition is None:
            continue
        try:
            choose_edges([edge], edge.action or action, output, context, node_input)
        except ExpressionError as exc:
            return edge, exc
    return None


def edge_failure_message(source: str, edge: CompiledEdge, error: Exception) -> str:
    expression = edge.condition.source if edge.condition is not None else ""
    return (
        f"node {source!r}: edge {source} -> {edge.target}: condition {expression!r} "
        f"could not be evaluated: {error}"
    )


def choose_edges(
    edges: list[CompiledEdge],
    action: str | None,
    output: Any,
    context: Mapping[str, Any],
    node_input: Any = None,
    *,
    conditions_first: bool = False,
) -> list[tuple[CompiledEdge, bool]]:
    """Decide each outgoing edge of a completed node: taken or not.

    Conditions see ``result``, ``output``, ``input`` and ``context``; any other name is read
    from the context (and node outputs), as flowcraft evaluates conditions over the context.
    With ``conditions_first`` (loop controllers), the conditional edges are evaluated before
    action matching: if any holds, exactly those are taken.
    """
    if not edges:
        return []
    scope: ExpressionScope | None = None
    if conditions_first and any(e.condition is not None for e in edges):
        scope = _condition_scope(output, action, context, node_input)
        held = {
            e.index
            for e in edges
            if e.condition is not None and is_truthy(e.condition.evaluate(scope))
        }
        if held:
            return [(e, e.index in held) for e in edges]
    route_labelled = action is not None and any(e.action == action for e in edges)
    decisions = []
    for edge in edges:
        taken = edge.action == action if route_labelled else edge.action is None
        if taken and edge.condition is not None:
            if scope is None:
                scope = _condition_scope(output, action, context, node_input)
            taken = is_truthy(edge.condition.evaluate(scope))
        decisions.append((edge, taken))
    return decisions


def _condition_scope(
    output: Any, action: str | None, context: Mapping[str, Any], node_input: Any
) -> ExpressionScope:
    fixed = {
        "context": context,
        "result": _result_scope(output, action),
        "output": output,
        "input": node_input,
    }
    return ExpressionScope(fixed, context)


def apply_transform(
    edge: CompiledEdge, output: Any, context: Mapping[str, Any], action: str | None = None
) -> Any:
    if edge.transform is None:
        return output
    fixed = {
        "input": output,
        "output": output,
        "result": _result_scope(output, action),
        "context": context,
    }
    return edge.transform.evaluate(ExpressionScope(fixed, context))
