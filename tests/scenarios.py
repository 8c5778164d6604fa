"""Blueprints and node implementations shared by the in-memory and distributed tests."""

from __future__ import annotations

import asyncio
from typing import Any

from flowcraft_core import FlowRuntime, NodeContext, NodeResult


def run(runtime: FlowRuntime, blueprint: Any, context: dict[str, Any] | None = None) -> Any:
    """One in-memory run to its end, from synchronous test code."""
    return asyncio.run(runtime.run(blueprint, context))


def const(value: Any, action: str | None = None) -> Any:
    """A node implementation that always returns ``value`` (and ``action``)."""

    def node(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=value, action=action)

    return node


def echo(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=ctx.input)


def value_of(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=ctx.params.get("value"), action=ctx.params.get("action"))


def flaky(ctx: NodeContext) -> NodeResult:
    if ctx.attempt < 2:
        raise RuntimeError(f"transient failure on attempt {ctx.attempt}")
    return NodeResult(output={"attempt": ctx.attempt})


async def count_up(ctx: NodeContext) -> NodeResult:
    count = await ctx.context.get("count", 0)
    await ctx.context.set("count", count + 1)
    return NodeResult(output=count + 1)


def broken(ctx: NodeContext) -> NodeResult:
    raise ValueError("always broken")


def backup(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"recovered": ctx.input})


def square(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=ctx.input * ctx.input)


async def remember(ctx: NodeContext) -> NodeResult:
    await ctx.context.set(f"seen_{ctx.node_id}", ctx.input)
    return NodeResult(output=ctx.input)


REGISTRY: dict[str, Any] = {
    "echo": echo,
    "value": value_of,
    "flaky": flaky,
    "count_up": count_up,
    "broken": broken,
    "backup": backup,
    "square": square,
    "remember": remember,
}


def bp(
    nodes: list[Any], edges: list[tuple[Any, ...]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A blueprint dict from short forms: a node is its id (``uses`` the same) or a dict; an
    edge is ``(source, target)`` or ``(source, target, {"action": ..., ...})``."""
    node_defs = [n if isinstance(n, dict) else {"id": n, "uses": n} for n in nodes]
    edge_defs = []
    for e in edges or []:
        edge_def: dict[str, Any] = {"source": e[0], "target": e[1]}
        if len(e) > 2 and e[2]:
            edge_def.update(e[2])
        edge_defs.append(edge_def)
    return {"id": extra.pop("id", "test"), "nodes": node_defs, "edges": edge_defs, **extra}


def node(node_id: str, uses: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses, **extra}


def edge(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **extra}


MIXED = {
    "id": "mixed",
    "nodes": [
        node("start", "value", params={"value": 10}),
        node("a", "remember"),
        node("b", "flaky", config={"maxRetries": 2}),
        node("c", "echo"),
        node("big", "echo"),
        node("all_join", "echo"),
        node("any_join", "echo", config={"joinStrategy": "any"}),
        node("end", "remember"),
    ],
    "edges": [
        edge("start", "a"),
        edge("start", "b"),
        edge("start", "c"),
        edge("c", "big", condition="result.output > 100"),
        edge("a", "all_join"),
        edge("b", "all_join"),
        edge("big", "all_join"),
        edge("b", "any_join"),
        edge("c", "any_join"),
        edge("all_join", "end"),
        edge("any_join", "end"),
    ],
}

IF_ELSE = {
    "id": "if_else",
    "nodes": [
        node("check", "value", params={"value": 3, "action": "small"}),
        node("big", "echo"),
        node("small", "echo"),
        node("merge", "echo"),
    ],
    "edges": [
        edge("check", "big", action="big"),
        edge("check", "small", action="small"),
        edge("big", "merge"),
        edge("small", "merge"),
    ],
}

FALLBACK = {
    "id": "fallback",
    "nodes": [
        node("s", "value", params={"value": 7}),
        node("p", "broken", config={"maxRetries": 1, "fallback": "backup"}),
        node("after", "echo"),
    ],
    "edges": [edge("s", "p"), edge("p", "after")],
}

FAILING = {
    "id": "failing",
    "nodes": [
        node("s", "value", params={"value": 1}),
        node("bad", "broken"),
        node("never", "echo"),
    ],
    "edges": [edge("s", "bad"), edge("bad", "never")],
}

LOOP = {
    "id": "loop",
    "nodes": [
        node("init", "value", params={"value": 0}),
        node("loop", "loop", params={"condition": "context.count < 3", "maxIterations": 10}),
        node("body", "count_up"),
        node("done", "echo"),
    ],
    "edges": [
        edge("init", "loop"),
        edge("loop", "body", action="continue"),
        edge("body", "loop"),
        edge("loop", "done", action="break"),
    ],
}

MAP = {
    "id": "map",
    "nodes": [
        node("m", "map", params={"items": "context.numbers", "uses": "square", "concurrency": 3})
    ],
    "edges": [],
}

CHILD = {"id": "child", "nodes": [node("double", "value", params={"value": 2})], "edges": []}

SUBFLOW = {
    "id": "subflow",
    "nodes": [
        node("sub", "subflow", params={"blueprintId": "child", "outputs": {}}),
        node("after", "echo"),
    ],
    "edges": [edge("sub", "after")],
}

APPROVAL = {
    "id": "approval",
    "nodes": [
        node("request", "value", params={"value": {"amount": 5}}),
        node("approve", "wait"),
        node("ship", "echo"),
        node("refund", "echo"),
    ],
    "edges": [
        edge("request", "approve"),
        edge("approve", "ship", action="yes"),
        edge("approve", "refund", action="no"),
    ],
}

BLUEPRINTS: dict[str, Any] = {
    bp["id"]: bp for bp in [MIXED, IF_ELSE, FALLBACK, FAILING, LOOP, MAP, CHILD, SUBFLOW, APPROVAL]
}
