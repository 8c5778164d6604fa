"""Behaviour of the in-memory runtime: edges, skips, joins, failures, built-ins, scale."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_core import (
    BaseNode,
    CancellationSignal,
    CollectingEventBus,
    FlowRuntime,
    Middleware,
    NodeContext,
    NodeResult,
    load_blueprint,
)
from flowcraft_core.testing import FakeClock

from .scenarios import bp, const, echo, run


def test_if_else_merge_completes_and_untaken_branch_is_skipped() -> None:
    registry = {"check": const(5, "big"), "big": const("B"), "small": const("S"), "merge": echo}
    blueprint = bp(
        ["check", "big", "small", "merge"],
        [
            ("check", "big", {"action": "big"}),
            ("check", "small", {"action": "small"}),
            ("big", "merge"),
            ("small", "merge"),
        ],
    )
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed"
    assert result.node_statuses == {
        "check": "completed",
        "big": "completed",
        "small": "skipped",
        "merge": "completed",
    }
    assert result.outputs["merge"] == {"big": "B"}


def test_a_result_hands_back_plain_strings_that_any_serialiser_takes() -> None:
    registry = {"check": const(5, "big"), "big": const("B"), "small": const("S")}
    blueprint = bp(
        ["check", "big", "small"],
        [("check", "big", {"action": "big"}), ("check", "small", {"action": "small"})],
    )
    result = run(FlowRuntime(registry), blueprint)
    statuses = [result.status, *result.node_statuses.values(), *(t.status for t in result.timeline)]
    assert statuses and all(type(status) is str for status in statuses)
    assert repr(result.timeline[0]).count("'completed'") == 1


def test_no_action_takes_default_edges_and_unknown_action_never_starts_labelled_ones() -> None:
    blueprint = bp(
        ["a", "labelled", "default"],
        [("a", "labelled", {"action": "x"}), ("a", "default")],
    )
    for action in (None, "nothing-matches"):
        result = run(
            FlowRuntime({"a": const(1, action), "labelled": echo, "default": echo}), blueprint
        )
        assert result.status == "completed"
        assert result.node_statuses["labelled"] == "skipped"
        assert result.outputs["default"] == 1


def test_branches_ending_in_different_terminals_complete() -> None:
    blueprint = bp(
        ["start", "left", "right", "left_end", "right_end"],
        [
            ("start", "left", {"condition": "result.output > 3"}),
            ("start", "right", {"condition": "result.output <= 3"}),
            ("left", "left_end"),
            ("right", "right_end"),
        ],
    )
    registry = {"start": const(1), "left": echo, "right": echo, "left_end": echo, "right_end": echo}
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed"
    assert result.node_statuses["left_end"] == "skipped"
    assert result.outputs["right_end"] == 1


def test_any_join_of_three_fires_once_and_ignores_later_arrivals() -> None:
    calls: list[Any] = []

    def join(ctx: NodeContext) -> NodeResult:
        calls.append(ctx.input)
        return NodeResult(output=ctx.input)

    blueprint = bp(
        ["s", "a", "b", "c", {"id": "j", "uses": "j", "config": {"joinStrategy": "any"}}],
        [("s", "a"), ("s", "b"), ("s", "c"), ("a", "j"), ("b", "j"), ("c", "j")],
    )
    registry = {"s": const(0), "a": const("A"), "b": const("B"), "c": const("C"), "j": join}
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed" and not result.errors
    assert len(calls) == 1 and calls[0] in {"A", "B", "C"}


def test_all_join_after_untaken_branch_runs_with_taken_inputs_only() -> None:
    blueprint = bp(
        ["s", "a", "b", "j"],
        [("s", "a"), ("s", "b", {"condition": "context.flag == true"}), ("a", "j"), ("b", "j")],
    )
    registry = {"s": const(1), "a": const("A"), "b": const("B"), "j": echo}
    result = run(FlowRuntime(registry), blueprint, {"flag": False})
    assert result.node_statuses["b"] == "skipped"
    assert result.outputs["j"] == {"a": "A"}
    both = run(FlowRuntime(registry), blueprint, {"flag": True})
    assert both.outputs["j"] == {"a": "A", "b": "B"}


def test_join_whose_every_input_is_untaken_is_skipped() -> None:
    blueprint = bp(
        ["s", "a", "b", "j", "after"],
        [
            ("s", "a", {"action": "go"}),
            ("s", "b", {"action": "go"}),
            ("a", "j"),
            ("b", "j"),
            ("j", "after"),
        ],
    )
    result = run(
        FlowRuntime({"s": const(1, "stop"), "a": echo, "b": echo, "j": echo, "after": echo}),
        blueprint,
    )
    assert result.status == "completed"
    assert result.node_statuses == {
        "s": "completed",
        "a": "skipped",
        "b": "skipped",
        "j": "skipped",
        "after": "skipped",
    }


def test_retries_count_and_back_off_with_a_fake_clock() -> None:
    attempts: list[int] = []

    def flaky(ctx: NodeContext) -> NodeResult:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("boom")
        return NodeResult(output="ok")

    clock = FakeClock()
    blueprint = bp([{"id": "f", "uses": "f", "config": {"maxRetries": 3, "retryDelay": 100}}])
    result = run(FlowRuntime({"f": flaky}, clock=clock), blueprint)
    assert result.status == "completed"
    assert attempts == [1, 2, 3]
    assert clock.sleeps == [0.1, 0.2]


def test_spent_retries_fail_the_run_with_node_id_and_error() -> None:
    def broken(ctx: NodeContext) -> None:
        raise ValueError("card declined")

    blueprint = bp(
        [{"id": "charge", "uses": "broken", "config": {"maxRetries": 1}}, "after"],
        [("charge", "after")],
    )
    result = run(FlowRuntime({"broken": broken, "after": echo}, clock=FakeClock()), blueprint)
    assert result.status == "failed"
    assert result.errors[0].node_id == "charge"
    assert "card declined" in result.errors[0].message
    assert result.errors[0].attempt == 2
    assert "after" not in result.outputs


def test_timeout_per_attempt() -> None:
    async def slow(ctx: NodeContext) -> None:
        await asyncio.sleep(5)

    blueprint = bp([{"id": "slow", "uses": "slow", "config": {"timeout": 20}}])
    result = run(FlowRuntime({"slow": slow}), blueprint)
    assert result.status == "failed"
    assert "timed out after 20 ms" in result.errors[0].message


def test_fallback_runs_with_same_input_when_attempts_are_spent() -> None:
    seen: list[Any] = []

    def broken(ctx: NodeContext) -> None:
        raise RuntimeError("primary down")

    def backup(ctx: NodeContext) -> NodeResult:
        seen.append(ctx.input)
        return NodeResult(output="from backup")

    blueprint = bp(
        [
            "s",
            {"id": "p", "uses": "broken", "config": {"maxRetries": 1, "fallback": "backup"}},
            "after",
        ],
        [("s", "p"), ("p", "after")],
    )
    bus = CollectingEventBus()
    result = run(
        FlowRuntime(
            {"s": const(7), "broken": broken, "backup": backup, "after": echo},
            event_bus=bus,
            clock=FakeClock(),
        ),
        blueprint,
    )
    assert result.status == "completed"
    assert seen == [7]
    assert result.outputs["after"] == "from backup"
    assert "node:fallback" in bus.types() and "node:retry" in bus.types()


def test_class_node_lifecycle_and_own_fallback() -> None:
    class Doubler(BaseNode):
        async def prep(self, ctx: NodeContext) -> Any:
            return ctx.input * int(self.params.get("factor", 2))

        async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
            if prep_result > 100:
                raise OverflowError("too big")
            return prep_result

        async def post(self, prep_result: Any, exec_result: Any, ctx: NodeContext) -> Any:
            await ctx.context.set("doubled", exec_result)
            return {"output": exec_result, "action": "done"}

        async def fallback(self, prep_result: Any, error: BaseException, ctx: NodeContext) -> Any:
            return {"output": -1}

    blueprint = bp(["s", {"id": "d", "uses": "Doubler", "params": {"factor": 3}}], [("s", "d")])
    ok = run(FlowRuntime({"s": const(5), "Doubler": Doubler}), blueprint)
    assert ok.outputs["d"] == 15 and ok.context["doubled"] == 15
    recovered = run(FlowRuntime({"s": const(50), "Doubler": Doubler}), blueprint)
    assert recovered.status == "completed" and recovered.outputs["d"] == -1


def test_cancel_stops_starting_nodes() -> None:
    started: list[str] = []
    signal = CancellationSignal()

    async def first(ctx: NodeContext) -> NodeResult:
        started.append(ctx.node_id)
        signal.cancel("user asked")
        await asyncio.sleep(0)
        return NodeResult(output=1)

    async def later(ctx: NodeContext) -> NodeResult:
        started.append(ctx.node_id)
        return NodeResult()

    blueprint = bp(["first", "later"], [("first", "later")])
    result = asyncio.run(
        FlowRuntime({"first": first, "later": later}).run(blueprint, signal=signal)
    )
    assert result.status == "cancelled"
    assert started == ["first"]


def test_runtime_cancel_by_run_id_interrupts_a_sleeping_node() -> None:
    runtime = FlowRuntime()

    async def main() -> Any:
        task = asyncio.create_task(
            runtime.run(
                bp([{"id": "nap", "uses": "sleep", "params": {"duration": 60_000}}]), run_id="r1"
            )
        )
        await asyncio.sleep(0.01)
        assert runtime.cancel("r1")
        return await task

    assert asyncio.run(main()).status == "cancelled"


def test_wait_and_resume_route_by_action() -> None:
    blueprint = bp(
        ["request", {"id": "approval", "uses": "wait"}, "ship", "refund"],
        [
            ("request", "approval"),
            ("approval", "ship", {"action": "approve"}),
            ("approval", "refund", {"action": "reject"}),
        ],
    )
    runtime = FlowRuntime({"request": const({"amount": 10}), "ship": echo, "refund": echo})
    paused = run(runtime, blueprint)
    assert paused.status == "awaiting" and paused.awaiting == ["approval"]
    resumed = asyncio.run(
        runtime.resume(
            blueprint, paused, node_id="approval", action="approve", output={"by": "ann"}
        )
    )
    assert resumed.status == "completed"
    assert resumed.outputs["ship"] == {"by": "ann"}
    assert resumed.node_statuses["refund"] == "skipped"
    with pytest.raises(ValueError, match="not awaiting"):
        asyncio.run(runtime.resume(blueprint, resumed, action="approve"))


def test_subflow_maps_inputs_and_outputs() -> None:
    child = bp(["double"], id="child")

    async def double(ctx: NodeContext) -> NodeResult:
        value = await ctx.context.get("n")
        await ctx.context.set("doubled", value * 2)
        return NodeResult(output=value * 2)

    parent = bp(
        [
            {
                "id": "sub",
                "uses": "subflow",
                "params": {
                    "blueprintId": "child",
                    "inputs": {"n": "amount"},
                    "outputs": {"result": "doubled"},
                },
            }
        ],
        id="parent",
    )
    runtime = FlowRuntime({"double": double}, blueprints={"child": child})
    result = run(runtime, parent, {"amount": 21})
    assert result.status == "completed"
    assert result.context["result"] == 42


def test_map_of_1000_items_respects_the_concurrency_limit_and_keeps_order() -> None:
    active = 0
    peak = 0

    async def square(ctx: NodeContext) -> NodeResult:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1
        return NodeResult(output=ctx.input * ctx.input)

    blueprint = bp(
        [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.numbers", "uses": "square", "concurrency": 7},
            }
        ]
    )
    result = run(FlowRuntime({"square": square}), blueprint, {"numbers": list(range(1000))})
    assert result.status == "completed"
    assert result.outputs["m"] == [i * i for i in range(1000)]
    assert peak == 7


def test_bounded_loop_iterates_and_exits() -> None:
    async def body(ctx: NodeContext) -> NodeResult:
        count = await ctx.context.get("count", 0)
        await ctx.context.set("count", count + 1)
        return NodeResult(output=count + 1)

    blueprint = bp(
        [
            "init",
            {
                "id": "loop",
                "uses": "loop",
                "params": {"condition": "context.count < 5", "maxIterations": 10},
            },
            "body",
            "done",
        ],
        [
            ("init", "loop"),
            ("loop", "body", {"action": "continue"}),
            ("body", "loop"),
            ("loop", "done", {"action": "break"}),
        ],
    )
    result = run(
        FlowRuntime({"init": const(0), "body": body, "done": echo}), blueprint, {"count": 0}
    )
    assert result.status == "completed", result.errors
    assert result.context["count"] == 5
    assert result.node_statuses["done"] == "completed"
    # The final pass skips the body; the passes that ran still show it completed.
    assert result.node_statuses["body"] == "completed"


def test_loop_over_its_bound_fails_clearly() -> None:
    blueprint = bp(
        ["a", {"id": "b", "uses": "b", "config": {"maxIterations": 3}}],
        [("a", "b"), ("b", "b")],
    )
    result = run(FlowRuntime({"a": const(1), "b": echo}), blueprint)
    assert result.status == "failed"
    assert "maxIterations=3" in result.errors[0].message


def test_ten_thousand_node_chain() -> None:
    n = 10_000
    blueprint = bp(
        [{"id": f"n{i}", "uses": "inc"} for i in range(n)],
        [(f"n{i}", f"n{i + 1}") for i in range(n - 1)],
    )

    def inc(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=(ctx.input or 0) + 1)

    result = run(FlowRuntime({"inc": inc}), blueprint)
    assert result.status == "completed"
    assert result.outputs[f"n{n - 1}"] == n


def test_concurrent_branches_overlap_and_limit_holds() -> None:
    active = 0
    peak = 0

    async def work(ctx: NodeContext) -> NodeResult:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        active -= 1
        return NodeResult(output=1)

    blueprint = bp(
        ["s"] + [{"id": f"w{i}", "uses": "work"} for i in range(10)],
        [("s", f"w{i}") for i in range(10)],
    )
    run(FlowRuntime({"s": const(0), "work": work}), blueprint)
    assert peak == 10
    peak = 0
    run(FlowRuntime({"s": const(0), "work": work}, concurrency=3), blueprint)
    assert peak == 3


def test_events_and_middleware() -> None:
    order: list[str] = []

    class Trace(Middleware):
        async def before(self, ctx: NodeContext) -> None:
            order.append(f"before:{ctx.node_id}")

        async def after(self, ctx: NodeContext, result: NodeResult) -> None:
            order.append(f"after:{ctx.node_id}")

        async def around(self, ctx: NodeContext, call_next: Any) -> NodeResult:
            order.append(f"around:{ctx.node_id}")
            return await call_next()

    bus = CollectingEventBus()
    blueprint = bp(["a", "b"], [("a", "b")])
    run(FlowRuntime({"a": const(1), "b": echo}, middleware=[Trace()], event_bus=bus), blueprint)
    assert order == ["before:a", "around:a", "after:a", "before:b", "around:b", "after:b"]
    types = bus.types()
    assert types[0] == "run:start" and types[-1] == "run:finish"
    assert types.count("node:start") == 2 and "edge:decided" in types


def test_edge_transform_and_inputs_mapping() -> None:
    blueprint = bp(
        [
            "price",
            {"id": "tax", "uses": "echo"},
            {"id": "summary", "uses": "echo", "inputs": {"net": "price", "who": "customer"}},
        ],
        [("price", "tax", {"transform": "input * 0.2"}), ("tax", "summary")],
    )
    result = run(FlowRuntime({"price": const(100), "echo": echo}), blueprint, {"customer": "ann"})
    assert result.outputs["tax"] == 20.0
    assert result.outputs["summary"] == {"net": 100, "who": "ann"}


def test_flowcraft_json_loads_unchanged() -> None:
    text = """{"id": "order", "nodes": [
      {"id": "validate", "uses": "validate", "config": {"maxRetries": 2, "retryDelay": 50}},
      {"id": "charge", "uses": "charge", "params": {"currency": "EUR"}, "config": {"timeout": 1000, "fallback": "manual"}},
      {"id": "notify", "uses": "notify", "config": {"joinStrategy": "any"}}],
     "edges": [{"source": "validate", "target": "charge", "condition": "result.output.valid === true && !context.blocked"},
               {"source": "charge", "target": "notify", "action": "paid", "transform": "result.output"}],
     "metadata": {"version": "1.0"}}"""
    model = load_blueprint(text)
    assert model.nodes[0].config.max_retries == 2
    assert model.nodes[1].config.fallback == "manual"
    assert model.to_json_dict()["nodes"][2]["config"]["joinStrategy"] == "any"


def test_node_returning_a_bad_value_fails_with_a_clear_message() -> None:
    result = run(FlowRuntime({"bad": lambda ctx: 42}), bp([{"id": "x", "uses": "bad"}]))
    assert result.status == "failed"
    assert "must return a NodeResult" in result.errors[0].message


def test_unknown_implementation_refuses_the_start_naming_it_before_any_node_runs() -> None:
    from flowcraft_core.analysis import InvalidBlueprint

    ran: list[str] = []

    def first(ctx: Any) -> None:
        ran.append(ctx.node_id)

    blueprint = bp([{"id": "a", "uses": "first"}, {"id": "x", "uses": "nope"}], [("a", "x")])
    with pytest.raises(InvalidBlueprint, match="node 'x' uses 'nope'") as refused:
        run(FlowRuntime({"first": first}), blueprint)
    assert refused.value.issues[0]["code"] == "MISSING_IMPLEMENTATION"
    assert ran == []  # nothing ran


def test_a_condition_that_cannot_be_evaluated_fails_the_edge_keeping_the_output() -> None:
    blueprint = bp(
        [{"id": "a", "uses": "three"}, {"id": "b", "uses": "three"}],
        [("a", "b", {"condition": "result.output + 'x' > 1"})],
    )
    result = run(FlowRuntime({"three": lambda ctx: {"output": 3}}), blueprint)
    assert result.status == "failed"
    assert "edge a -> b" in result.errors[0].message
    assert "result.output + 'x' > 1" in result.errors[0].message
    assert result.outputs["a"] == 3 and result.node_statuses["a"] == "completed"
