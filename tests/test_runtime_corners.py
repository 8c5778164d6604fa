"""Corner cases of the in-memory runtime.

Covered here: a failing map item stopping its sibling items, middleware ``around`` hooks that
return a result in any of the shapes a node may return, ``recover`` hooks that raise, sync nodes
with a timeout and retries (attempts never overlap), a node that raises ``CancelledRunError``
itself, nodes interrupted by a failure or a cancel (closing events and statuses), isolation of the
run context from the caller's objects and from other runs, and the ``result`` scope seen by edge
transforms.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from flowcraft_core import (
    BaseNode,
    CollectingEventBus,
    FlowRuntime,
    Middleware,
    NodeContext,
    NodeResult,
)
from flowcraft_core.nodes import CancelledRunError
from flowcraft_core.testing import FakeClock

from .scenarios import bp, const

_TERMINAL_EVENTS = {"node:finish", "node:error", "node:awaiting", "node:cancel", "node:cancelled"}


def test_failing_map_item_stops_the_items_not_yet_started() -> None:
    started: list[int] = []

    async def item(ctx: NodeContext) -> NodeResult:
        started.append(ctx.input)
        await asyncio.sleep(0.01)
        if ctx.input == 0:
            raise ValueError("bad item")
        return NodeResult(output=ctx.input)

    blueprint = bp(
        [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.xs", "uses": "item", "concurrency": 1},
            }
        ]
    )

    async def main() -> tuple[Any, int, int]:
        result = await FlowRuntime({"item": item}).run(blueprint, {"xs": [0, 1, 2, 3, 4]})
        at_return = len(started)
        await asyncio.sleep(0.2)
        return result, at_return, len(started)

    result, at_return, later = asyncio.run(main())
    assert result.status == "failed"
    assert result.errors[0].node_id == "m"
    # Once the run is final, no further item of it starts.
    assert later == at_return, f"items kept starting after the run failed: {started}"
    assert at_return < 5


def test_middleware_around_may_return_a_dict_like_a_node() -> None:
    class Cache(Middleware):
        async def around(self, ctx: NodeContext, call_next: Any) -> Any:
            if ctx.node_id == "a":
                return {"output": "cached"}
            return await call_next()

    blueprint = bp(["a", "b"], [("a", "b")])
    runtime = FlowRuntime(
        {"a": lambda ctx: NodeResult(output="fresh"), "b": lambda ctx: {"output": ctx.input}},
        middleware=[Cache()],
    )
    result = asyncio.run(runtime.run(blueprint))
    assert result.status == "completed", result.errors
    assert result.outputs == {"a": "cached", "b": "cached"}


def test_recover_that_raises_fails_the_node_instead_of_crashing_the_run() -> None:
    class Fragile(BaseNode):
        async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
            raise ValueError("primary failed")

        async def recover(self, error: BaseException, ctx: NodeContext) -> None:
            raise RuntimeError("cleanup failed")

    blueprint = bp([{"id": "n", "uses": "Fragile"}])
    result = asyncio.run(FlowRuntime({"Fragile": Fragile}).run(blueprint))
    assert result.status == "failed"
    assert result.errors and result.errors[0].node_id == "n"


def test_sync_node_with_timeout_never_runs_two_attempts_at_once() -> None:
    lock = threading.Lock()
    active = 0
    peak = 0
    seen: list[tuple[int, int]] = []

    def slow(ctx: NodeContext) -> NodeResult:
        nonlocal active, peak
        first = ctx.attempt
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.2)
        with lock:
            active -= 1
        seen.append((first, ctx.attempt))
        return NodeResult(output=first)

    blueprint = bp([{"id": "s", "uses": "slow", "config": {"timeout": 50, "maxRetries": 2}}])
    result = asyncio.run(FlowRuntime({"slow": slow}, clock=FakeClock()).run(blueprint))
    time.sleep(0.5)  # let any attempt still running in a thread finish
    assert result.status == "failed"
    assert peak == 1, f"{peak} attempts of one node ran at the same time"
    # Each attempt sees its own attempt number for its whole duration.
    assert all(first == last for first, last in seen), seen


def test_node_raising_cancelled_run_error_is_not_reported_as_a_stalled_run() -> None:
    ran: list[str] = []

    def stop(ctx: NodeContext) -> None:
        raise CancelledRunError("operator aborted")

    def after(ctx: NodeContext) -> None:
        ran.append("after")

    blueprint = bp(["start", "stop", "after"], [("start", "stop"), ("stop", "after")])
    result = asyncio.run(
        FlowRuntime({"start": lambda ctx: None, "stop": stop, "after": after}).run(blueprint)
    )
    assert ran == []
    assert not any("stalled" in e.message for e in result.errors), result.errors
    assert result.status == "cancelled" or (
        result.status == "failed" and result.errors[0].node_id == "stop"
    )


def test_nodes_interrupted_by_a_failure_end_with_an_event_and_a_status() -> None:
    async def fail(ctx: NodeContext) -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def slow(ctx: NodeContext) -> None:
        await asyncio.sleep(10)

    bus = CollectingEventBus()
    blueprint = bp(["s", "fail", "slow"], [("s", "fail"), ("s", "slow")])
    runtime = FlowRuntime({"s": lambda ctx: None, "fail": fail, "slow": slow}, event_bus=bus)
    result = asyncio.run(runtime.run(blueprint))
    assert result.status == "failed"
    started = {e.data["key"] for e in bus.events if e.type == "node:start"}
    ended = {e.data.get("key") for e in bus.events if e.type in _TERMINAL_EVENTS}
    assert started <= ended, f"started without a closing event: {started - ended}"
    assert result.node_statuses.get("slow") == "cancelled", result.node_statuses


def test_node_interrupted_by_runtime_cancel_ends_with_an_event_and_a_status() -> None:
    bus = CollectingEventBus()
    runtime = FlowRuntime(event_bus=bus)

    async def main() -> Any:
        task = asyncio.create_task(
            runtime.run(
                bp([{"id": "nap", "uses": "sleep", "params": {"duration": 60_000}}]),
                run_id="corner-cancel",
            )
        )
        await asyncio.sleep(0.01)
        assert runtime.cancel("corner-cancel")
        return await task

    result = asyncio.run(main())
    assert result.status == "cancelled"
    started = {e.data["key"] for e in bus.events if e.type == "node:start"}
    ended = {e.data.get("key") for e in bus.events if e.type in _TERMINAL_EVENTS}
    assert started <= ended, f"started without a closing event: {started - ended}"
    assert result.node_statuses.get("nap") == "cancelled", result.node_statuses


def test_runs_do_not_share_nested_context_objects_with_the_caller_or_each_other() -> None:
    async def add_line(ctx: NodeContext) -> None:
        cart = await ctx.context.get("cart")
        cart["lines"].append("widget")  # mutated in place, never written back with set()

    initial: dict[str, Any] = {"cart": {"lines": []}}
    runtime = FlowRuntime({"add": add_line})
    blueprint = bp([{"id": "add", "uses": "add"}])
    first = asyncio.run(runtime.run(blueprint, initial))
    second = asyncio.run(runtime.run(blueprint, initial))
    assert initial == {"cart": {"lines": []}}, "the caller's initial context was changed"
    assert second.context["cart"]["lines"] == ["widget"], "a run saw another run's changes"
    assert first.context["cart"]["lines"] == ["widget"]


def test_edge_transform_sees_the_source_action_as_result_action() -> None:
    blueprint = bp(
        ["a", "b"],
        [("a", "b", {"action": "go", "transform": "{'how': result.action, 'v': result.v}"})],
    )
    runtime = FlowRuntime(
        {
            "a": lambda ctx: NodeResult(output={"v": 1}, action="go"),
            "b": lambda ctx: NodeResult(output=ctx.input),
        }
    )
    result = asyncio.run(runtime.run(blueprint))
    assert result.outputs["b"] == {"how": "go", "v": 1}


@pytest.mark.parametrize("with_bus", [False, True])
def test_a_resumed_any_join_keeps_the_arrival_that_fired_it(with_bus: bool) -> None:

    blueprint = {
        "id": "j",
        "nodes": [
            {"id": "a", "uses": "a"},
            {"id": "b", "uses": "b"},
            {"id": "j", "uses": "wait", "config": {"joinStrategy": "any"}},
            {"id": "fromA", "uses": "a"},
            {"id": "fromB", "uses": "b"},
        ],
        "edges": [
            {"source": "a", "target": "j"},
            {"source": "b", "target": "j", "condition": "true"},
            {"source": "j", "target": "fromA", "condition": "input == 'A'"},
            {"source": "j", "target": "fromB", "condition": "input == 'B'"},
        ],
    }
    registry = {"a": const("A"), "b": const("B")}
    runtime = FlowRuntime(registry, event_bus=CollectingEventBus() if with_bus else None)
    parked = asyncio.run(runtime.run(blueprint))
    assert parked.status == "awaiting"
    done = asyncio.run(runtime.resume(blueprint, parked, output="x"))
    assert done.status == "completed"
    assert done.node_statuses["fromA"] == "completed"
    assert done.node_statuses["fromB"] == "skipped"


def test_each_map_item_run_as_a_sub_blueprint_is_a_child_run_of_its_own() -> None:
    def whoami(ctx: NodeContext) -> NodeResult:
        return NodeResult(output=ctx.run_id)

    child = {"id": "child", "nodes": [{"id": "who", "uses": "whoami"}]}
    parent = {
        "id": "parent",
        "nodes": [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.xs", "blueprintId": "child", "concurrency": 3},
            }
        ],
    }
    runtime = FlowRuntime({"whoami": whoami}, blueprints={"child": child})
    result = asyncio.run(runtime.run(parent, {"xs": [1, 2, 3]}, run_id="R"))
    assert result.status == "completed"
    # The child's ``result`` is absent, so each item gives the child's outputs.
    assert [item["who"] for item in result.outputs["m"]] == ["R/m[0]", "R/m[1]", "R/m[2]"]
