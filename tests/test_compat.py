"""flowcraft's own cases, in memory: built-in names, node outputs in the context, subflows,
cycles, edges, durations, webhooks (from packages/core/test/** and the guide pages)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_core import FlowRuntime, NodeContext, NodeResult, create_flow, load_blueprint
from flowcraft_core.durations import DurationError, parse_duration_ms
from flowcraft_core.testing import FakeClock

from .scenarios import bp, const, echo, run


# --------------------------------------------------------------------------- 1. built-ins
def test_loop_controller_counts_to_five_then_finalizes() -> None:
    # builtins.test.ts: "should correctly exit a simple loop with an intuitive edge definition"
    async def initialize(ctx: NodeContext) -> NodeResult:
        await ctx.context.set("count", 0)
        return NodeResult(output="Initialized")

    async def increment(ctx: NodeContext) -> NodeResult:
        count = (await ctx.context.get("count")) or 0
        await ctx.context.set("count", count + 1)
        return NodeResult(output=count + 1)

    async def finalize(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=f"Finalized at {await ctx.context.get('count')}")

    blueprint, registry = (
        create_flow("simple-loop-exit-test")
        .node("initialize", initialize)
        .node("increment", increment)
        .loop("counter", start_node_id="increment", end_node_id="increment", condition="count < 5")
        .node("finalize", finalize)
        .edge("initialize", "counter")
        .edge("counter", "finalize")
        .build()
    )
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed", result.errors
    assert result.outputs["finalize"] == "Finalized at 5"
    assert result.context["count"] == 5


def test_loop_controller_body_of_two_nodes_runs_three_times() -> None:
    runs: list[str] = []

    async def initialize(ctx: NodeContext) -> NodeResult:
        await ctx.context.set("counter", 0)
        return NodeResult(output="initialized")

    async def increment(ctx: NodeContext) -> NodeResult:
        runs.append(ctx.node_id)
        counter = (await ctx.context.get("counter")) or 0
        await ctx.context.set("counter", counter + 1)
        return NodeResult(output=f"iteration_{counter + 1}")

    blueprint, registry = (
        create_flow("loop-iterations-test")
        .node("initialize", initialize)
        .node("increment", increment)
        .node("check", const("checked"))
        .node("final", const("final"))
        .edge("initialize", "test-loop")
        .edge("increment", "check")
        .loop("test-loop", start_node_id="increment", end_node_id="check", condition="counter < 3")
        .edge("test-loop", "final")
        .build()
    )
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed", result.errors
    assert result.outputs["final"] == "final"
    assert len(runs) == 3


def test_loop_controller_conditional_edge_exits_early() -> None:
    # loops.md: conditional edges of a loop controller are evaluated before action matching.
    async def body(ctx: NodeContext) -> NodeResult:
        n = (await ctx.context.get("n")) or 0
        await ctx.context.set("n", n + 1)
        return NodeResult(output=n + 1)

    blueprint = bp(
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
    )
    registry = {"start": const(None), "body": body, "early": const("early"), "late": const("late")}
    result = run(FlowRuntime(registry), blueprint, {"n": 0})
    assert result.status == "completed", result.errors
    assert result.context["n"] == 3
    assert result.outputs["early"] == "early"
    assert result.node_statuses["late"] == "skipped"


def test_class_key_aliases_run_the_built_ins() -> None:
    blueprint = bp(
        [
            "start",
            {"id": "nap", "uses": "SleepNode", "params": {"duration": "5s"}},
            {"id": "ask", "uses": "WaitNode"},
        ],
        [("start", "nap"), ("nap", "ask")],
    )
    clock = FakeClock()
    runtime = FlowRuntime({"start": const(1)}, clock=clock)
    result = run(runtime, blueprint)
    assert result.status == "awaiting"
    assert clock.sleeps == [5.0]
    done = asyncio.run(runtime.resume(blueprint, result, node_id="ask", output="yes"))
    assert done.status == "completed" and done.outputs["ask"] == "yes"


def test_batch_scatter_and_gather_collect_results_in_order() -> None:
    # builtins.test.ts: "should correctly execute batch-scatter and batch-gather"
    seen: list[Any] = []

    def worker(ctx: NodeContext) -> NodeResult:
        seen.append(ctx.input)
        return NodeResult(output=f"processed_{ctx.input['id']}_{ctx.input['data']}")

    items = [{"id": i, "data": f"item{i}"} for i in (1, 2, 3)]
    blueprint, registry = (
        create_flow("batch-test")
        .node("prepare", const(items))
        .node("verify", echo)
        .batch("test-batch", worker, input_key="prepare", output_key="results", chunk_size=2)
        .edge("prepare", "test-batch")
        .edge("test-batch", "verify")
        .build()
    )
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed", result.errors
    expected = ["processed_1_item1", "processed_2_item2", "processed_3_item3"]
    assert result.outputs["verify"] == expected
    assert result.context["results"] == expected
    assert len(seen) == 3


def test_batch_with_empty_input_and_with_a_failing_worker() -> None:
    def boom(ctx: NodeContext) -> NodeResult:
        if ctx.input == 2:
            raise RuntimeError("Worker 2 failed")
        return NodeResult(output=ctx.input)

    for items, status in (([], "completed"), ([1, 2], "failed")):
        blueprint, registry = (
            create_flow("b")
            .node("prepare", const(items))
            .node("verify", echo)
            .batch("tb", boom, input_key="prepare")
            .edge("prepare", "tb")
            .edge("tb", "verify")
            .build()
        )
        result = run(FlowRuntime(registry), blueprint)
        assert result.status == status
        if status == "completed":
            assert result.context["tb_gather"] == []


# --------------------------------------------------------------------------- 2. outputs
def test_node_outputs_are_readable_from_the_context() -> None:
    async def reader(ctx: NodeContext) -> NodeResult:
        return NodeResult(
            output=[
                await ctx.context.get("route"),
                await ctx.context.get("_outputs.route"),
                await ctx.context.has("route"),
                await ctx.context.get("nothing", "default"),
            ]
        )

    blueprint = bp(
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
    )
    registry = {
        "route": const({"total": 120}),
        "cheap": const("cheap"),
        "dear": const("dear"),
        "echo": echo,
        "reader": reader,
    }
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed", result.errors
    assert result.node_statuses["dear"] == "skipped"
    assert result.outputs["copy"] == {"total": 120}
    assert result.outputs["reader"] == [{"total": 120}, {"total": 120}, True, "default"]
    # Outputs are not copied into the context.
    assert "route" not in result.context and "_outputs.route" not in result.context


def test_context_keys_win_over_node_outputs_of_the_same_name() -> None:
    blueprint = bp(["a", "b"], [("a", "b", {"condition": "a == 'from context'"})])
    result = run(
        FlowRuntime({"a": const("from node"), "b": const(1)}), blueprint, {"a": "from context"}
    )
    assert result.node_statuses["b"] == "completed"


# --------------------------------------------------------------------------- 3. subflows
def _subflow_runtime(sub: Any, registry: dict[str, Any]) -> FlowRuntime:
    return FlowRuntime(registry, blueprints={sub["id"]: sub})


def test_subflow_output_defaults_to_its_terminal_output() -> None:
    # subflow.test.ts: "should execute a subflow and return output"
    sub = bp(["a"], id="sub")
    main = bp(
        ["start", {"id": "call-sub", "uses": "subflow", "params": {"blueprintId": "sub"}}, "end"],
        [("start", "call-sub"), ("call-sub", "end")],
        id="main",
    )

    def end(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=f"end-{ctx.input}")

    registry = {"a": const("sub-result"), "start": const("start"), "end": end}
    result = run(_subflow_runtime(sub, registry), main)
    assert result.status == "completed", result.errors
    assert result.outputs["call-sub"] == "sub-result"
    assert result.outputs["end"] == "end-sub-result"


def test_subflow_with_several_terminals_and_outputs_mapping_naming_a_child_node() -> None:
    sub = bp(["a", "b"], id="multi")
    main = bp(
        [
            {"id": "all", "uses": "SubflowNode", "params": {"blueprintId": "multi"}},
            {
                "id": "mapped",
                "uses": "subflow",
                "params": {"blueprintId": "multi", "outputs": {"subResult": "a"}},
            },
        ],
        id="main",
    )
    registry = {"a": const("a-result"), "b": const("b-result")}
    result = run(_subflow_runtime(sub, registry), main)
    assert result.status == "completed", result.errors
    assert result.outputs["all"] == {"a": "a-result", "b": "b-result"}
    assert result.context["subResult"] == "a-result"


def test_subflow_without_inputs_passes_its_input_to_the_child_start_nodes() -> None:
    sub = bp(["double"], id="sub")
    main = bp(
        ["start", {"id": "call", "uses": "subflow", "params": {"blueprintId": "sub"}}],
        [("start", "call")],
        id="main",
    )

    def double(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=ctx.input * 2)

    result = run(_subflow_runtime(sub, {"start": const(21), "double": double}), main)
    assert result.outputs["call"] == 42


def test_wait_inside_a_subflow_parks_the_parent_and_resumes_through_the_child() -> None:
    sub = bp(
        ["prep", {"id": "ask", "uses": "wait"}, "after"],
        [("prep", "ask"), ("ask", "after")],
        id="sub",
    )
    main = bp(
        ["start", {"id": "call", "uses": "subflow", "params": {"blueprintId": "sub"}}, "end"],
        [("start", "call"), ("call", "end")],
        id="main",
    )

    def after(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=f"approved:{ctx.input}")

    registry = {"start": const(1), "prep": const(2), "after": after, "end": echo}
    runtime = _subflow_runtime(sub, registry)
    parked = run(runtime, main)
    assert parked.status == "awaiting"
    assert parked.awaiting == ["call"]
    assert parked.awaiting_outputs["call"]["awaiting"] == ["ask"]
    done = asyncio.run(runtime.resume(main, parked, node_id="call", output="yes"))
    assert done.status == "completed", done.errors
    assert done.outputs["call"] == "approved:yes"
    assert done.outputs["end"] == "approved:yes"


# --------------------------------------------------------------------------- 4. cycles
def test_cycle_without_a_loop_node_runs_each_node_once() -> None:
    counts: dict[str, int] = {}

    def count(ctx: NodeContext) -> NodeResult:
        counts[ctx.node_id] = counts.get(ctx.node_id, 0) + 1
        return NodeResult(output=ctx.node_id)

    blueprint = bp(["A", "B"], [("A", "B"), ("B", "A")])
    result = run(FlowRuntime({"A": count, "B": count}), blueprint)
    assert result.status == "completed", result.errors
    assert counts == {"A": 1, "B": 1}

    counts.clear()
    entry = bp(["A", "B"], [("A", "B"), ("B", "A")], metadata={"cycleEntryPoints": ["B"]})
    result = run(FlowRuntime({"A": count, "B": count}), entry)
    assert result.status == "completed"
    assert [t.key for t in result.timeline] == ["B", "A"]

    counts.clear()
    fed = bp(["X", "A", "B", "C"], [("X", "A"), ("A", "B"), ("B", "A"), ("B", "C")])
    registry = {n: count for n in "XABC"}
    result = run(FlowRuntime(registry), fed)
    assert result.status == "completed", result.errors
    assert counts == {"X": 1, "A": 1, "B": 1, "C": 1}


def test_a_loop_that_never_ends_fails_at_the_execution_bound_naming_the_cycle() -> None:
    blueprint = bp(
        [
            "start",
            {"id": "ctl", "uses": "loop-controller", "params": {"condition": "true"}},
            "body",
        ],
        [("start", "ctl"), ("ctl", "body", {"action": "continue"}), ("body", "ctl")],
    )
    runtime = FlowRuntime({"start": const(0), "body": const(1)}, max_node_executions=500)
    result = run(runtime, blueprint)
    assert result.status == "failed"
    assert "500 node executions" in result.errors[0].message
    assert "'ctl' -> 'body' -> 'ctl'" in result.errors[0].message


def test_long_synchronous_runs_yield_so_wait_for_can_time_out() -> None:
    blueprint = bp(
        [
            "start",
            {"id": "ctl", "uses": "loop-controller", "params": {"condition": "true"}},
            "body",
        ],
        [("start", "ctl"), ("ctl", "body", {"action": "continue"}), ("body", "ctl")],
    )
    runtime = FlowRuntime({"start": const(0), "body": const(1)}, max_node_executions=10**9)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runtime.run(blueprint), 0.2)

    asyncio.run(main())


def test_an_empty_blueprint_completes() -> None:
    result = run(FlowRuntime(), {"id": "empty", "nodes": [], "edges": []})
    assert result.status == "completed" and result.outputs == {}


# --------------------------------------------------------------------------- 5. edges
def test_transform_applies_to_what_the_target_inputs_select() -> None:
    blueprint = bp(
        [
            "start",
            "mid",
            {"id": "target", "uses": "echo", "inputs": "start"},
        ],
        [("start", "mid"), ("mid", "target", {"transform": "input * 10"})],
    )
    registry = {"start": const(4), "mid": const(100), "echo": echo}
    result = run(FlowRuntime(registry), blueprint)
    assert result.outputs["target"] == 40


def test_two_action_edges_to_one_target_are_one_predecessor() -> None:
    blueprint = bp(
        ["check", "next"],
        [("check", "next", {"action": "yes"}), ("check", "next", {"action": "maybe"})],
    )
    for action in ("yes", "maybe"):
        result = run(FlowRuntime({"check": const(7, action), "next": echo}), blueprint)
        assert result.status == "completed", result.errors
        assert result.outputs["next"] == 7
    result = run(FlowRuntime({"check": const(7, "no"), "next": echo}), blueprint)
    assert result.status == "completed" and result.node_statuses["next"] == "skipped"


# --------------------------------------------------------------------------- 6. durations
@pytest.mark.parametrize(
    ("text", "ms"),
    [("500ms", 500), ("5s", 5000), ("10m", 600_000), ("1h", 3_600_000), ("2d", 172_800_000)],
)
def test_duration_strings(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == ms


def test_bad_durations_and_durations_in_config() -> None:
    for bad in ("5 weeks", "-1s", True, None):
        with pytest.raises(DurationError):
            parse_duration_ms(bad)
    model = load_blueprint(
        bp([{"id": "a", "uses": "a", "config": {"retryDelay": "2s", "timeout": "1m"}}])
    )
    assert model.nodes[0].config.retry_delay == 2000
    assert model.nodes[0].config.timeout == 60_000


def test_sleep_with_a_bad_duration_fails_naming_the_node() -> None:
    blueprint = bp([{"id": "nap", "uses": "sleep", "params": {"duration": "soon"}}])
    result = run(FlowRuntime(clock=FakeClock()), blueprint)
    assert result.status == "failed" and "'nap'" in result.errors[0].message


# --------------------------------------------------------------------------- 7. webhook
def test_webhook_parks_hands_out_url_and_token_and_resumes_on_call() -> None:
    blueprint = bp(
        ["start", {"id": "hook", "uses": "webhook"}, "after"],
        [("start", "hook"), ("hook", "after")],
    )
    runtime = FlowRuntime({"start": const(1), "after": echo}, webhook_base_url="https://x.test/")
    parked = run(runtime, blueprint)
    assert parked.status == "awaiting" and parked.awaiting == ["hook"]
    endpoint = parked.awaiting_outputs["hook"]
    assert endpoint["url"] == f"https://x.test/runs/{parked.run_id}/webhooks/hook"
    assert endpoint["event"] and len(endpoint["token"]) >= 20
    with pytest.raises(PermissionError):
        asyncio.run(runtime.resume_webhook(blueprint, parked, "wrong", {"ok": True}))
    done = asyncio.run(runtime.resume_webhook(blueprint, parked, endpoint["token"], {"ok": True}))
    assert done.status == "completed"
    assert done.outputs["after"] == {"ok": True}


# --------------------------------------------------------------------------- 9. caching
def test_a_changed_dict_never_runs_a_stale_graph() -> None:
    blueprint = bp([{"id": "a", "uses": "value", "params": {"value": 1}}])

    def value(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=ctx.params["value"])

    runtime = FlowRuntime({"value": value})
    assert run(runtime, blueprint).outputs["a"] == 1
    assert runtime.compile(blueprint) is runtime.compile(dict(blueprint))
    for changed in (True, 1.0, 2):
        blueprint["nodes"][0]["params"]["value"] = changed
        out = run(runtime, blueprint).outputs["a"]
        assert out == changed and type(out) is type(changed)


def test_nested_subflow_with_wait_node_resumes_by_the_parent_node() -> None:
    # hitl.test.ts: "should handle nested subflow with wait node" (42 + 5 + 10)
    def sub_start(ctx: NodeContext) -> NodeResult:
        return NodeResult(output={"value": ctx.input})

    def sub_end(ctx: NodeContext) -> NodeResult:
        return NodeResult(output={"subFinal": ctx.input["value"]["value"] + 5})

    def main_end(ctx: NodeContext) -> NodeResult:
        return NodeResult(output={"final": ctx.input["subFinal"] + 10})

    sub, sub_registry = (
        create_flow("sub-approval-workflow")
        .node("sub-start", sub_start, inputs="input")
        .edge("sub-start", "sub-wait")
        .wait("sub-wait")
        .edge("sub-wait", "sub-end")
        .node("sub-end", sub_end, inputs="_outputs.sub-start")
        .build()
    )
    main, main_registry = (
        create_flow("main-workflow")
        .node("main-start", sub_start, inputs="input")
        .edge("main-start", "subflow")
        .node(
            "subflow",
            "SubflowNode",
            params={"blueprintId": "sub-approval-workflow", "inputs": {"input": "main-start"}},
        )
        .edge("subflow", "main-end")
        .node("main-end", main_end)
        .build()
    )
    runtime = FlowRuntime({**main_registry, **sub_registry}, blueprints={sub.id: sub})
    first = run(runtime, main, {"input": 42})
    assert first.status == "awaiting" and first.awaiting == ["subflow"]
    second = asyncio.run(runtime.resume(main, first, node_id="subflow", output={"value": 42}))
    assert second.status == "completed", second.errors
    assert second.outputs["main-end"]["final"] == 57


def test_resume_addresses_a_node_inside_a_parked_child() -> None:
    sub = bp([{"id": "a", "uses": "wait"}, {"id": "b", "uses": "wait"}], id="two")
    main = bp([{"id": "call", "uses": "subflow", "params": {"blueprintId": "two"}}], id="main")
    runtime = _subflow_runtime(sub, {})
    parked = run(runtime, main)
    assert parked.awaiting_outputs["call"]["awaiting"] == ["a", "b"]
    with pytest.raises(ValueError, match="say which nodeId"):
        asyncio.run(runtime.resume(main, parked, node_id="call", output=1))
    once = asyncio.run(runtime.resume(main, parked, node_id="call/b", output="B"))
    assert once.status == "awaiting" and once.awaiting_outputs["call"]["awaiting"] == ["a"]
    done = asyncio.run(runtime.resume(main, once, node_id="call", output="A"))
    assert done.status == "completed"
    assert done.outputs["call"] == {"a": "A", "b": "B"}


def test_wait_inside_a_cycle_without_a_loop_node_resumes_and_completes() -> None:
    blueprint = bp([{"id": "A", "uses": "wait"}, "B"], [("A", "B"), ("B", "A")])
    runtime = FlowRuntime({"B": echo})
    parked = run(runtime, blueprint)
    assert parked.awaiting == ["A"]
    done = asyncio.run(runtime.resume(blueprint, parked, node_id="A", output=5))
    assert done.status == "completed" and done.outputs == {"A": 5, "B": 5}


def test_twin_edges_into_an_any_join_and_dict_inputs_with_a_transform() -> None:
    blueprint = bp(
        ["s", "t", {"id": "j", "uses": "echo", "config": {"joinStrategy": "any"}}],
        [("s", "j", {"action": "x"}), ("s", "j", {"action": "y"}), ("t", "j")],
    )
    result = run(FlowRuntime({"s": const(1, "x"), "t": const(2), "echo": echo}), blueprint)
    assert result.status == "completed" and result.outputs["j"] == 1
    mapped = bp(
        ["s", {"id": "t", "uses": "echo", "inputs": {"a": "s", "c": "k"}}],
        [("s", "t", {"transform": "input.a + input.c"})],
    )
    result = run(FlowRuntime({"s": const(1), "echo": echo}), mapped, {"k": 10})
    assert result.outputs["t"] == 11


def test_batch_gather_accepts_a_plain_list_from_its_scatter() -> None:
    blueprint = bp(
        ["s", {"id": "g", "uses": "batch-gather", "params": {"outputKey": "out"}}],
        [("s", "g")],
    )
    result = run(FlowRuntime({"s": const([1, 2])}), blueprint)
    assert result.outputs["g"] == [1, 2] and result.context["out"] == [1, 2]


def test_loop_controller_conditional_exit_on_an_iteration_and_a_multi_node_body() -> None:
    # runtime.test.ts: "should evaluate conditional edges from loop controller on each
    # iteration" and "should correctly execute a loop involving multiple nodes"
    calls: list[str] = []

    async def start(ctx: NodeContext) -> NodeResult:
        await ctx.context.set("counter", 0)
        return NodeResult(output=0)

    async def body(ctx: NodeContext) -> NodeResult:
        calls.append(ctx.node_id)
        counter = await ctx.context.get("counter") + 1
        await ctx.context.set("counter", counter)
        return NodeResult(output=counter)

    blueprint, registry = (
        create_flow("conditional-loop-exit")
        .node("start", start)
        .node("body", body)
        .node("specialExit", const("special exit!"))
        .node("end", const("finished"))
        .loop("myLoop", start_node_id="body", end_node_id="body", condition="counter < 10")
        .edge("start", "myLoop")
        .edge("myLoop", "specialExit", condition="counter === 5")
        .edge("myLoop", "end")
        .build()
    )
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed", result.errors
    assert result.context["counter"] == 5
    assert result.outputs["specialExit"] == "special exit!"
    assert result.node_statuses["end"] == "skipped"

    calls.clear()
    blueprint, registry = (
        create_flow("multi-node-loop-test")
        .node("start", start)
        .node("branchBeforeLoop", const(0))
        .node("loopBody", const(0))
        .node("loopBody2", body)
        .node("loopBody3", const(0))
        .node("end", const("finished"))
        .loop(
            "mainLoop", start_node_id="loopBody", end_node_id="loopBody3", condition="counter < 3"
        )
        .edge("start", "mainLoop")
        .edge("start", "branchBeforeLoop")
        .edge("loopBody", "loopBody2")
        .edge("loopBody2", "loopBody3")
        .edge("mainLoop", "end")
        .build()
    )
    result = run(FlowRuntime(registry), blueprint)
    assert result.status == "completed", result.errors
    assert len(calls) == 3 and result.outputs["end"] == "finished"
    assert result.node_statuses["branchBeforeLoop"] == "completed"


def test_transform_reads_the_inputs_node_not_the_edge_source() -> None:
    # runtime.test.ts: "should apply edge transform to the inputs-referenced node output"
    blueprint, registry = (
        create_flow("transform-explicit-inputs")
        .node("start", const({"deeply": {"nested": {"value": "extracted"}}}))
        .node("middle", const("pass-through"))
        .node("end", echo, inputs="start")
        .edge("start", "middle")
        .edge("middle", "end", transform="input.deeply.nested.value")
        .build()
    )
    assert run(FlowRuntime(registry), blueprint).outputs["end"] == "extracted"


def test_cancelling_the_run_task_stops_its_running_nodes() -> None:
    stopped: list[str] = []

    async def slow(ctx: NodeContext) -> NodeResult:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.append(ctx.node_id)
        return NodeResult(output=1)

    blueprint = bp(["a", "b"])
    runtime = FlowRuntime({"a": slow, "b": slow})

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runtime.run(blueprint), 0.05)

    asyncio.run(main())
    assert sorted(stopped) == ["a", "b"]


def test_graph_cache_ignores_data_it_cannot_snapshot_and_tells_equal_dicts_apart() -> None:
    class Opaque:
        pass

    def value(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=ctx.params.get("v"))

    runtime = FlowRuntime({"value": value})
    opaque = bp([{"id": "a", "uses": "value", "params": {"v": "x", "o": Opaque()}}])
    assert run(runtime, opaque).outputs["a"] == "x"
    assert runtime.compile(opaque) is not runtime.compile(opaque)  # never cached
    one = bp([{"id": "a", "uses": "value", "params": {"v": [1, {"k": (2, 3)}]}}])
    other = bp([{"id": "a", "uses": "value", "params": {"v": [1, {"k": (2, 3.0)}]}}])
    assert run(runtime, one).outputs["a"] == [1, {"k": (2, 3)}]
    out = run(runtime, other).outputs["a"]
    assert type(out[1]["k"][1]) is float


def test_builder_loop_hands_the_body_output_on_each_pass() -> None:
    seen: list[Any] = []

    async def body(ctx: NodeContext) -> NodeResult:
        seen.append(ctx.input)
        n = (await ctx.context.get("n")) + 1
        await ctx.context.set("n", n)
        return NodeResult(output=n * 10)

    blueprint, registry = (
        create_flow("passes")
        .node("init", const("start"))
        .node("body", body)
        .loop("again", start_node_id="body", end_node_id="body", condition="n < 3")
        .node("after", echo)
        .edge("init", "again")
        .edge("again", "after")
        .build()
    )
    result = run(FlowRuntime(registry), blueprint, {"n": 0})
    assert result.status == "completed", result.errors
    assert seen == [None, 10, 20]  # flowcraft: context["body"] before body ran is undefined
    assert result.outputs["after"] == 30


def test_webhook_inside_a_subflow_is_reachable_from_the_parent() -> None:
    sub = bp([{"id": "hook", "uses": "webhook"}, "after"], [("hook", "after")], id="sub")
    main = bp(
        [{"id": "call", "uses": "subflow", "params": {"blueprintId": "sub"}}, "end"],
        [("call", "end")],
        id="main",
    )
    runtime = _subflow_runtime(sub, {"after": echo, "end": echo})
    parked = run(runtime, main)
    endpoint = parked.awaiting_outputs["call"]["awaitingOutputs"]["hook"]
    assert endpoint["url"].endswith("/webhooks/hook")
    done = asyncio.run(runtime.resume_webhook(main, parked, endpoint["token"], {"paid": True}))
    assert done.status == "completed", done.errors
    assert done.outputs["end"] == {"paid": True}


def test_a_failing_map_item_fails_the_run_even_with_subflow_items_still_running() -> None:
    async def pick(ctx: NodeContext) -> NodeResult:
        if await ctx.context.get("index"):
            await asyncio.sleep(5)  # still running when item 0 fails: cancelled
            return NodeResult(output=1)
        await asyncio.sleep(0.05)
        raise RuntimeError("item broke")

    item = bp(["pick"], id="item")
    main = bp(
        ["s", {"id": "m", "uses": "map", "params": {"blueprintId": "item"}}],
        [("s", "m")],
        id="main",
    )
    runtime = FlowRuntime({"pick": pick, "s": const([0, 1])}, blueprints={"item": item})
    result = run(runtime, main)
    assert result.status == "failed", result
    assert "item broke" in result.errors[0].message


def test_twin_edges_inside_a_loop_are_one_predecessor_on_every_pass() -> None:
    async def body(ctx: NodeContext) -> NodeResult:
        n = await ctx.context.get("n") + 1
        await ctx.context.set("n", n)
        return NodeResult(output=n, action="odd" if n % 2 else "even")

    seen: list[Any] = []

    def after(ctx: NodeContext) -> NodeResult:
        seen.append(ctx.input)
        return NodeResult(output=ctx.input)

    blueprint = bp(
        [
            "start",
            {"id": "ctl", "uses": "loop-controller", "params": {"condition": "n < 3"}},
            "body",
            "after",
            "done",
        ],
        [
            ("start", "ctl"),
            ("ctl", "body", {"action": "continue"}),
            ("body", "after", {"action": "odd"}),
            ("body", "after", {"action": "even"}),
            ("after", "ctl"),
            ("after", "ctl", {"condition": "false"}),
            ("ctl", "done", {"action": "break"}),
        ],
    )
    registry = {"start": const(0), "body": body, "after": after, "done": const("done")}
    result = run(FlowRuntime(registry), blueprint, {"n": 0})
    assert result.status == "completed", result.errors
    assert seen == [1, 2, 3]
    assert result.outputs["done"] == "done"


def test_only_the_matching_conditional_edge_is_followed_around_a_wait() -> None:
    # runtime.test.ts: "should only follow the matching conditional edge after resuming from
    # a .wait() node" (conditions read the node output by its bare id).
    calls: list[str] = []

    async def route(ctx: NodeContext) -> NodeResult:
        await ctx.context.set("total", 1665)
        return NodeResult(output={"total": 1665})

    def record(name: str) -> Any:
        def node(ctx: NodeContext) -> NodeResult:
            calls.append(name)
            return NodeResult(output={"status": name})

        return node

    def process(ctx: NodeContext) -> NodeResult:
        return NodeResult(output={"status": "approved" if ctx.input["approved"] else "denied"})

    blueprint, registry = (
        create_flow("conditional-hitl")
        .node("route", route)
        .node("autoApprove", record("autoApprove"))
        .wait("waitManager")
        .node("processApproval", process)
        .node("reject", record("reject"))
        .edge("route", "autoApprove", condition="route.total < 500")
        .edge("route", "waitManager", condition="route.total >= 500 && route.total <= 2000")
        .edge("route", "reject", condition="route.total > 2000")
        .edge("waitManager", "processApproval")
        .build()
    )
    runtime = FlowRuntime(registry)
    parked = run(runtime, blueprint)
    assert parked.status == "awaiting" and calls == []
    done = asyncio.run(
        runtime.resume(blueprint, parked, node_id="waitManager", output={"approved": True})
    )
    assert done.status == "completed", done.errors
    assert calls == []
    assert done.outputs["processApproval"] == {"status": "approved"}
