"""flowcraft's rules on the distributed driver: each case runs in memory and distributed (on the
in-memory stores) and must end the same way: status, node statuses, outputs and context."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_core import FlowRuntime, NodeContext, NodeResult, create_flow
from flowcraft_core.testing import FakeClock

from .distributed_harness import Harness
from .scenarios import bp, broken, const, echo, node


async def count_body(ctx: NodeContext) -> NodeResult:
    n = await ctx.context.get("n", 0)
    await ctx.context.set("n", n + 1)
    return NodeResult(output=n + 1)


async def reader(ctx: NodeContext) -> NodeResult:
    return NodeResult(
        output=[
            await ctx.context.get("route"),
            await ctx.context.get("_outputs.route"),
            await ctx.context.has("route"),
            await ctx.context.get("nothing", "default"),
        ]
    )


def double(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=ctx.input * 2)


def worker_of_batch(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=f"processed_{ctx.input['id']}")


REGISTRY: dict[str, Any] = {
    "start": const(21),
    "a": const("a-result"),
    "b": const("b-result"),
    "echo": echo,
    "body": count_body,
    "early": const("early"),
    "late": const("late"),
    "route": const({"total": 120}),
    "cheap": const("cheap"),
    "dear": const("dear"),
    "reader": reader,
    "double": double,
    "pick": const("picked", action="x"),
    "batch_worker": worker_of_batch,
}

SUB_ONE = bp(["double"], id="sub_one")
SUB_TWO = bp(["a", "b"], id="sub_two")

CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "cycle without a loop node runs each node once": (
        bp(["a", "b"], [("a", "b"), ("b", "a")], id="cycle"),
        {},
    ),
    "loop-controller with an early conditional exit": (
        bp(
            [
                "start",
                "body",
                {"id": "ctl", "uses": "loop-controller", "params": {"condition": "n < 100"}},
                "early",
                "late",
            ],
            [
                ("start", "ctl"),
                ("ctl", "body", {"action": "continue"}),
                ("body", "ctl"),
                ("ctl", "early", {"condition": "n >= 3"}),
                ("ctl", "late", {"action": "break"}),
            ],
            id="controller",
        ),
        {"n": 0},
    ),
    "node outputs read from the context": (
        bp(
            [
                "route",
                "cheap",
                "dear",
                {"id": "copy", "uses": "echo", "inputs": "_outputs.route"},
                "reader",
            ],
            [
                ("route", "cheap", {"condition": "route.total < 500"}),
                ("route", "dear", {"condition": "_outputs.route.total >= 500"}),
                ("route", "copy"),
                ("copy", "reader"),
            ],
            id="outputs",
        ),
        {},
    ),
    "two action edges to one target are one predecessor": (
        bp(
            ["pick", "echo"],
            [("pick", "echo", {"action": "x"}), ("pick", "echo", {"action": "y"})],
            id="twins",
        ),
        {},
    ),
    "subflow output defaults to its terminal output(s)": (
        bp(
            [
                "start",
                {"id": "one", "uses": "subflow", "params": {"blueprintId": "sub_one"}},
                {"id": "two", "uses": "SubflowNode", "params": {"blueprintId": "sub_two"}},
                {
                    "id": "mapped",
                    "uses": "subflow",
                    "params": {"blueprintId": "sub_two", "outputs": {"subResult": "a"}},
                },
            ],
            [("start", "one")],
            id="subflows",
        ),
        {},
    ),
    "an empty blueprint completes": ({"id": "empty", "nodes": [], "edges": []}, {}),
}


def in_memory(blueprint: dict[str, Any], context: dict[str, Any]) -> Any:
    runtime = FlowRuntime(
        REGISTRY, blueprints={"sub_one": SUB_ONE, "sub_two": SUB_TWO}, clock=FakeClock()
    )
    return asyncio.run(runtime.run(blueprint, context))


@pytest.mark.parametrize("case", list(CASES))
def test_distributed_ends_as_in_memory(case: str) -> None:
    blueprint, context = CASES[case]
    want = in_memory(blueprint, context)
    assert want.status == "completed", want.errors
    h = Harness(
        blueprints={blueprint["id"]: blueprint, "sub_one": SUB_ONE, "sub_two": SUB_TWO},
        registry=REGISTRY,
    )
    run_id, _ = h.client.start(blueprint["id"], context)
    h.drain()
    got = h.client.get(run_id).to_api()
    assert got["status"] == want.status, got.get("error")
    assert got["nodes"] == want.node_statuses
    assert got["outputs"] == want.outputs
    assert got["context"] == want.context


def test_batch_scatter_and_gather_distributed() -> None:
    items = [{"id": i} for i in (1, 2, 3)]
    blueprint, registry = (
        create_flow("batch")
        .node("prepare", const(items))
        .node("verify", echo)
        .batch("each", worker_of_batch, input_key="prepare", output_key="results", chunk_size=2)
        .edge("prepare", "each")
        .edge("each", "verify")
        .build()
    )
    want = asyncio.run(FlowRuntime(registry).run(blueprint))
    h = Harness(blueprints={"batch": blueprint}, registry=registry)
    run_id, _ = h.client.start("batch")
    h.drain()
    got = h.client.get(run_id).to_api()
    assert got["status"] == "completed", got.get("error")
    assert got["outputs"]["verify"] == want.outputs["verify"]
    assert got["context"]["results"] == want.context["results"]


def test_sleep_duration_strings_park_distributed() -> None:
    blueprint = bp(
        ["start", {"id": "nap", "uses": "sleep", "params": {"duration": "5m"}}, "echo"],
        [("start", "nap"), ("nap", "echo")],
        id="nap",
    )
    h = Harness(blueprints={"nap": blueprint}, registry=REGISTRY)
    run_id, _ = h.client.start("nap")
    started = h.clock.now()
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed"
    assert record.nodes["echo"].output == 21
    assert h.clock.now() - started >= 300  # parked on the queue for the 5 minutes


def test_webhook_distributed_parks_hands_out_its_endpoint_and_resumes_on_a_call() -> None:
    from flowcraft_core.distributed.errors import UnknownWebhook, WebhookRefused

    blueprint = bp(
        ["start", {"id": "hook", "uses": "webhook"}, "echo"],
        [("start", "hook"), ("hook", "echo")],
        id="hooked",
    )
    h = Harness(blueprints={"hooked": blueprint}, registry=REGISTRY)
    run_id, _ = h.client.start("hooked")
    h.drain()
    view = h.client.view(run_id)
    assert view["status"] == "awaiting"
    endpoint = view["awaitingOutputs"]["hook"]
    assert endpoint["url"] == f"/runs/{run_id}/webhooks/hook"
    assert endpoint["event"] == f"webhook:{run_id}:hook"
    with pytest.raises(WebhookRefused):
        h.client.webhook(run_id, "hook", "not-the-token", {"paid": True})
    with pytest.raises(UnknownWebhook):
        h.client.webhook(run_id, "start", endpoint["token"], {"paid": True})
    assert h.queue.sent == []
    h.client.webhook(run_id, "hook", endpoint["token"], {"paid": True})
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed"
    assert record.nodes["echo"].output == {"paid": True}


def test_a_wait_inside_a_child_parks_the_parent_and_a_resume_goes_through_it() -> None:
    child = bp(
        [{"id": "ask", "uses": "wait"}, "early", "late"],
        [("ask", "early", {"action": "yes"}), ("ask", "late", {"action": "no"})],
        id="asking_child",
    )
    parent = bp(
        [
            "start",
            {"id": "sub", "uses": "subflow", "params": {"blueprintId": "asking_child"}},
            "echo",
        ],
        [("start", "sub"), ("sub", "echo")],
        id="asking_parent",
    )
    blueprints = {"asking_child": child, "asking_parent": parent}
    runtime = FlowRuntime(REGISTRY, blueprints=blueprints, clock=FakeClock())
    want = asyncio.run(runtime.run(parent))
    assert want.status == "awaiting"
    want = asyncio.run(runtime.resume(parent, want, node_id="sub", action="yes"))
    assert want.status == "completed", want.errors

    h = Harness(blueprints=blueprints, registry=REGISTRY)
    run_id, _ = h.client.start("asking_parent")
    h.drain()
    view = h.client.view(run_id)
    assert view["status"] == "awaiting"
    assert view["awaitingOutputs"]["sub"]["awaiting"] == ["ask"]
    from flowcraft_core.distributed.errors import InvalidResume

    with pytest.raises(InvalidResume):  # checked against the child's node, nothing written
        h.client.resume(run_id, node_id="sub", action="maybe")
    assert h.client.head(run_id).status == "awaiting"
    h.client.resume(run_id, node_id="sub/ask", action="yes")
    h.drain()
    got = h.client.get(run_id).to_api()
    assert got["status"] == "completed", got.get("error")
    assert got["outputs"] == want.outputs
    assert got["nodes"] == want.node_statuses


def test_a_class_node_recovers_after_each_failed_attempt_in_both_drivers() -> None:
    from flowcraft_core import BaseNode

    calls: list[tuple[str, int]] = []

    class Flaky(BaseNode):
        async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
            raise RuntimeError(f"attempt {ctx.attempt} failed")

        async def recover(self, error: BaseException, ctx: NodeContext) -> None:
            calls.append((ctx.run_id, ctx.attempt))

    blueprint = bp([{"id": "flaky", "uses": "Flaky", "config": {"maxRetries": 1}}], id="recovering")
    want = asyncio.run(FlowRuntime({"Flaky": Flaky}, clock=FakeClock()).run(blueprint))
    assert want.status == "failed"
    in_memory_calls = [attempt for _, attempt in calls]
    calls.clear()
    h = Harness(blueprints={"recovering": blueprint}, registry={"Flaky": Flaky})
    run_id, _ = h.client.start("recovering")
    h.drain()
    assert h.client.head(run_id).status == "failed"
    assert [attempt for _, attempt in calls] == in_memory_calls == [1, 2]


def test_a_failing_fallback_fails_the_run_with_the_same_message_in_both_drivers() -> None:
    def fallback_down(ctx: NodeContext) -> NodeResult:
        raise ValueError("fallback down")

    registry = {"broken": broken, "fallback_down": fallback_down}
    blueprint = bp(
        [{"id": "x", "uses": "broken", "config": {"fallback": "fallback_down"}}], id="falling"
    )
    want = asyncio.run(FlowRuntime(registry, clock=FakeClock()).run(blueprint))
    assert want.status == "failed"
    expected = want.errors[0].message
    assert "always broken" in expected and "fallback fallback_down failed" in expected
    h = Harness(blueprints={"falling": blueprint}, registry=registry)
    run_id, _ = h.client.start("falling")
    h.drain()
    head = h.client.head(run_id)
    assert head.status == "failed"
    assert head.error == expected


def test_a_map_item_class_node_recovers_and_falls_back_in_both_drivers() -> None:
    from flowcraft_core import BaseNode

    recovered: list[tuple[Any, int]] = []

    class Fragile(BaseNode):
        async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
            if ctx.input == 2:
                raise RuntimeError(f"item 2, attempt {ctx.attempt}")
            return ctx.input * 10

        async def recover(self, error: BaseException, ctx: NodeContext) -> None:
            recovered.append((ctx.input, ctx.attempt))

        async def fallback(
            self, prep_result: Any, error: BaseException, ctx: NodeContext
        ) -> NodeResult:
            return NodeResult(output=-1)

    blueprint = bp(
        [
            node(
                "m",
                "map",
                params={"items": "context.numbers", "uses": "Fragile", "maxRetries": 1},
            )
        ],
        id="fragile_map",
    )
    registry = {"Fragile": Fragile}
    context = {"numbers": [1, 2, 3]}
    want = asyncio.run(FlowRuntime(registry, clock=FakeClock()).run(blueprint, context))
    assert want.status == "completed"
    assert want.outputs["m"] == [10, -1, 30]
    in_memory = sorted(recovered)
    recovered.clear()
    h = Harness(blueprints={"fragile_map": blueprint}, registry=registry)
    run_id, _ = h.client.start("fragile_map", context)
    h.drain()
    got = h.client.get(run_id).to_api()
    assert got["status"] == "completed", got.get("error")
    assert got["outputs"] == want.outputs
    assert sorted(recovered) == in_memory == [(2, 1), (2, 2)]


def test_a_failed_subflow_fails_its_run_with_the_same_message_in_both_drivers() -> None:
    registry = {"broken": broken}
    blueprints = {
        "child": bp([node("x", "broken")], id="child"),
        "parent": bp([node("sub", "subflow", params={"blueprintId": "child"})], id="parent"),
    }
    runtime = FlowRuntime(registry, blueprints=blueprints, clock=FakeClock())
    want = asyncio.run(runtime.run(blueprints["parent"]))
    assert want.status == "failed"
    h = Harness(blueprints=blueprints, registry=registry)
    run_id, _ = h.client.start("parent")
    h.drain()
    head = h.client.head(run_id)
    assert head.status == "failed"
    assert head.error == want.errors[0].message
    assert "SubflowError: subflow 'child' ended failed" in head.error


def test_a_subflow_failing_after_its_child_was_resumed_reads_the_same_in_both_drivers() -> None:
    registry = {"broken": broken}
    blueprints = {
        "child": bp([node("ask", "wait"), node("x", "broken")], [("ask", "x")], id="child"),
        "parent": bp([node("sub", "subflow", params={"blueprintId": "child"})], id="parent"),
    }
    runtime = FlowRuntime(registry, blueprints=blueprints, clock=FakeClock())
    parked = asyncio.run(runtime.run(blueprints["parent"]))
    assert parked.status == "awaiting"
    want = asyncio.run(runtime.resume(blueprints["parent"], parked, node_id="sub/ask"))
    assert want.status == "failed"
    h = Harness(blueprints=blueprints, registry=registry)
    run_id, _ = h.client.start("parent")
    h.drain()
    h.client.resume(run_id, node_id="sub/ask")
    h.drain()
    head = h.client.head(run_id)
    assert head.status == "failed"
    assert head.error == want.errors[0].message


def test_a_loop_condition_reads_node_outputs_in_both_drivers() -> None:
    params = {"condition": "body < 3", "maxIterations": 10}
    blueprint = bp(
        [node("body", "body"), node("ctl", "loop-controller", params=params), node("done", "echo")],
        [
            ("body", "ctl"),
            ("ctl", "body", {"action": "continue"}),
            ("ctl", "done", {"action": "break"}),
        ],
        id="loopread",
    )
    want = asyncio.run(FlowRuntime(REGISTRY, clock=FakeClock()).run(blueprint, {}))
    assert want.status == "completed" and want.context == {"n": 3}
    h = Harness(blueprints={"loopread": blueprint}, registry=REGISTRY)
    run_id, _ = h.client.start("loopread", {})
    h.drain()
    got = h.client.get(run_id).to_api()
    assert got["status"] == "completed", got.get("error")
    assert got["context"] == want.context and got["nodes"] == want.node_statuses
