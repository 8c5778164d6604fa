"""``subflow``: run another registered blueprint as a child run.

Params: ``blueprintId``; ``inputs`` (child context key -> parent context key or node id, or
``input`` for this node's input); ``outputs`` (parent context key -> child node id or child
context key). Without ``inputs``, this node's input is the input of the child's start nodes.
The node's output is, with an ``outputs`` mapping, the child's final context; without one, the
output of the child's single terminal node, or ``{terminal id: output}`` when it has several
(as in flowcraft). A child that does not complete fails this node with its errors; a child
that parks (``wait``, ``webhook``) parks this node too, and resuming the parent resumes the
child.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..context import INPUTS_PREFIX, OUTPUTS_PREFIX
from ..errors import FlowcraftError
from ..nodes import NodeContext, NodeResult
from ..status import AWAITING, COMPLETED
from .params import BuiltinParamError, services, str_param


class SubflowError(FlowcraftError, RuntimeError):
    pass


def _mapping(ctx: NodeContext, name: str) -> dict[str, str]:
    value = ctx.params.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BuiltinParamError(
            f"node {ctx.node_id!r}: parameter {name!r} must map names to context keys"
        )
    return value


def _child_blueprint(ctx: NodeContext, blueprint_id: str) -> Any:
    blueprints = getattr(ctx.services, "blueprints", None) or {}
    return blueprints.get(blueprint_id)


def _node_ids(blueprint: Any) -> tuple[list[str], list[str]]:
    """(start node ids, terminal node ids) of a blueprint model."""
    if blueprint is None:
        return [], []
    targets = {e.target for e in blueprint.edges}
    sources = {e.source for e in blueprint.edges}
    starts = [n.id for n in blueprint.nodes if n.id not in targets]
    terminals = [n.id for n in blueprint.nodes if n.id not in sources]
    return starts, terminals


async def child_context(ctx: NodeContext, blueprint_id: str) -> dict[str, Any]:
    """The child run's initial context, from ``inputs`` or from this node's input."""
    initial: dict[str, Any] = {}
    inputs = _mapping(ctx, "inputs")
    for child_key, parent_key in inputs.items():
        if parent_key == "input":
            initial[child_key] = ctx.input
            continue
        value = await ctx.context.get(parent_key)
        if value is None:
            value = await ctx.context.get(OUTPUTS_PREFIX + parent_key)
        initial[child_key] = value
    if not inputs and ctx.input is not None:
        starts, _ = _node_ids(_child_blueprint(ctx, blueprint_id))
        for start in starts:
            initial[INPUTS_PREFIX + start] = ctx.input
    return initial


def parked_on(blueprint_id: str, child: Any) -> NodeResult:
    """What a subflow node shows while its child (a ``WorkflowResult``) waits for a resume."""
    shown = {
        "subflow": blueprint_id,
        "runId": child.run_id,
        "awaiting": child.awaiting,
        "awaitingOutputs": getattr(child, "awaiting_outputs", {}),
    }
    return NodeResult(output=shown, awaiting=True)


async def subflow_node(ctx: NodeContext) -> NodeResult:
    blueprint_id = str_param(ctx, "blueprintId")
    initial = await child_context(ctx, blueprint_id)
    outcome = await services(ctx).run_subflow(ctx, blueprint_id, initial)
    if outcome.status == AWAITING:
        return parked_on(blueprint_id, outcome)
    details = "; ".join(e.message for e in outcome.errors)
    return await finish_subflow(
        ctx, blueprint_id, outcome.status, outcome.context, details, outcome.outputs
    )


async def finish_subflow(
    ctx: NodeContext,
    blueprint_id: str,
    status: str,
    child_context: dict[str, Any],
    details: str,
    child_outputs: Mapping[str, Any] | None = None,
) -> NodeResult:
    """The subflow node's result once its child ended (shared by both drivers).

    ``child_outputs`` (node id -> output) is what ``outputs`` mappings naming a child node and
    the terminal-output default read; without it the node's output is the child's context.
    """
    if status != COMPLETED:
        raise SubflowError(f"subflow {blueprint_id!r} ended {status}: {details or status}")
    outputs = child_outputs or {}
    mapping = _mapping(ctx, "outputs")
    for parent_key, child_key in mapping.items():
        name = child_key.removeprefix(OUTPUTS_PREFIX)
        value = outputs[name] if name in outputs else child_context.get(child_key)
        await ctx.context.set(parent_key, value)
    if ctx.params.get("outputs") is not None or child_outputs is None:
        # With an ``outputs`` mapping (even an empty one, as in flowcraft): the child's context.
        return NodeResult(output=child_context)
    _, terminals = _node_ids(_child_blueprint(ctx, blueprint_id))
    if len(terminals) == 1:
        return NodeResult(output=outputs.get(terminals[0]))
    return NodeResult(output={t: outputs.get(t) for t in terminals})
