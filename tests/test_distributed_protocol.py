"""The distributed protocol with in-memory stores: same results as the in-memory runtime,
and the invariants under duplicates, reordering, several workers, and poison input."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import Job, PoisonJob, RunConflict, RunNotFound, UnknownBlueprint

from .distributed_harness import Harness
from .scenarios import BLUEPRINTS, REGISTRY

PARITY = [
    ("mixed", {}),
    ("if_else", {}),
    ("fallback", {}),
    ("failing", {}),
    ("loop", {"count": 0}),
    ("map", {"numbers": [1, 2, 3, 4]}),
    ("subflow", {}),
]


def in_memory(blueprint_id: str, context: dict[str, Any]) -> Any:
    from flowcraft_core.testing import FakeClock

    runtime = FlowRuntime(REGISTRY, blueprints=BLUEPRINTS, clock=FakeClock())
    return asyncio.run(runtime.run(BLUEPRINTS[blueprint_id], context))


@pytest.mark.parametrize(("blueprint_id", "context"), PARITY)
def test_distributed_matches_in_memory(blueprint_id: str, context: dict[str, Any]) -> None:
    expected = in_memory(blueprint_id, context)
    h = Harness()
    run_id, _ = h.client.start(blueprint_id, context)
    h.drain()
    record = h.client.get(run_id)
    view = record.to_api()
    assert view["status"] == expected.status
    if expected.status == "completed":
        assert view["outputs"] == expected.outputs
        assert view["nodes"] == expected.node_statuses
        assert view["context"] == expected.context
    else:
        assert "always broken" in (record.error or "")


@pytest.mark.parametrize("mode", ["duplicate", "shuffle", "two_workers"])
def test_invariants_hold_under_duplicates_reordering_and_two_workers(mode: str) -> None:
    expected = in_memory("mixed", {})
    h = Harness()
    commits: dict[str, int] = {}
    original = h.runs.commit

    def counting_commit(run_id: str, key: str, *args: Any, **kwargs: Any) -> Any:
        result = original(run_id, key, *args, **kwargs)
        commits[key] = commits.get(key, 0) + 1
        return result

    h.runs.commit = counting_commit  # type: ignore[method-assign]
    run_id, _ = h.client.start("mixed")
    if mode == "duplicate":
        h.drain(duplicate=True)
    elif mode == "shuffle":
        h.drain(shuffle=random.Random(7))
    else:
        second = h.new_worker(BLUEPRINTS, REGISTRY)
        h.drain(workers=[h.worker, second], duplicate=True)
    view = h.client.get(run_id).to_api()
    assert view["status"] == "completed"
    assert view["outputs"] == expected.outputs
    assert all(count == 1 for count in commits.values()), commits
    assert commits["all_join"] == 1 and commits["any_join"] == 1


def test_wait_resume_routes_by_action_and_conflicts_are_refused() -> None:
    h = Harness()
    run_id, _ = h.client.start("approval")
    h.drain()
    assert h.client.get(run_id).status == "awaiting"
    assert h.statuses.get(run_id)["status"] == "awaiting"  # type: ignore[index]
    h.client.resume(run_id, node_id="approve", action="no", output={"reason": "too small"})
    with pytest.raises(RunConflict):
        h.client.resume(run_id, action="yes")
    h.drain()
    view = h.client.get(run_id).to_api()
    assert view["status"] == "completed"
    assert view["nodes"]["ship"] == "skipped"
    assert view["outputs"]["refund"] == {"reason": "too small"}


def test_cancel_is_final_and_no_node_starts_afterwards() -> None:
    h = Harness()
    run_id, _ = h.client.start("mixed")
    h.client.cancel(run_id)
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "cancelled"
    assert record.nodes == {}
    with pytest.raises(RunConflict):
        h.client.cancel(run_id)


def test_idempotent_start_with_run_id() -> None:
    h = Harness()
    first = h.client.start("if_else", run_id="order-42")
    second = h.client.start("if_else", run_id="order-42")
    assert first == second == ("order-42", "running")
    assert len(h.queue.sent) == 1


def test_reconciler_finds_only_stalled_runs_and_follows_recorded_decisions() -> None:
    h = Harness()
    stalled, _ = h.client.start("if_else")
    h.queue.drain()  # the start job is lost
    done, _ = h.client.start("fallback")
    h.drain()
    h.clock.advance(600)
    stats = h.reconciler(threshold=300).run()
    assert stats.scanned_items == 1 and stats.stalled_runs == 1 and stats.reconciled_runs == 1
    h.drain()
    view = h.client.get(stalled).to_api()
    assert view["status"] == "completed"
    assert view["nodes"]["big"] == "skipped"  # the untaken branch was never started
    assert h.client.get(done).status == "completed"
    again = h.reconciler(threshold=300).run()
    assert again.scanned_items == 0


def test_poison_input_is_named() -> None:
    h = Harness()
    with pytest.raises(UnknownBlueprint, match="nope"):
        h.client.start("nope")
    with pytest.raises(RunNotFound):
        h.client.get("missing")
    with pytest.raises(PoisonJob):
        asyncio.run(h.worker.handle_job(Job(run_id="ghost", blueprint_id="mixed", node_id="start")))
    run_id, _ = h.client.start("if_else")
    h.queue.drain()
    asyncio.run(h.worker.handle_job(Job(run_id=run_id, blueprint_id="if_else", node_id="nope")))
    record = h.client.get(run_id)
    assert record.status == "failed" and "unknown node 'nope'" in (record.error or "")
    with pytest.raises(ValueError):
        Job.from_message("not json")


def test_large_context_values_and_outputs_are_stored_by_reference_and_read_back() -> None:
    blob = "".join(f"line {i}: {i * 7919 % 10007}\n" for i in range(60_000))  # ~1 MB of text

    async def big(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("blob", blob)
        return {"output": {"text": blob}}

    async def reader(ctx: Any) -> dict[str, Any]:
        return {"output": len(await ctx.context.get("blob")) + len(ctx.input["text"])}

    bp = {
        "id": "big",
        "nodes": [{"id": "writer", "uses": "big"}, {"id": "reader", "uses": "reader"}],
        "edges": [{"source": "writer", "target": "reader"}],
    }
    h = Harness(blueprints={"big": bp}, registry={"big": big, "reader": reader})
    run_id, _ = h.client.start("big")
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed", record.error
    assert record.to_api()["outputs"]["reader"] == 2 * len(blob)
    assert record.context["blob"] == blob
    # The values went to the payload bucket; every item stayed small.
    assert len(h.payloads.objects) == 2
    assert max(len(repr(item)) for item in h.items.items.values()) < 4_000


def test_a_value_over_the_limit_fails_the_run_naming_the_node_and_the_size() -> None:
    async def big(ctx: Any) -> None:
        await ctx.context.set("blob", "x" * 3_000_000)

    bp = {"id": "big", "nodes": [{"id": "writer", "uses": "big"}], "edges": []}
    from flowcraft_core.distributed import ValueCodec

    h = Harness(blueprints={"big": bp}, registry={"big": big}, codec=ValueCodec(max_bytes=2**21))
    run_id, _ = h.client.start("big")
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "failed"
    error = record.error or ""
    assert "node 'writer'" in error and "context.blob" in error and "2.9 MB" in error, error
    assert "blob" not in record.context and record.nodes["writer"].status == "failed"


def test_map_fans_out_within_its_concurrency_and_gathers_in_order() -> None:
    h = Harness()
    run_id, _ = h.client.start("map", {"numbers": [1, 2, 3, 4, 5, 6, 7]})
    [map_job] = h.queue.drain()
    asyncio.run(h.worker.handle_job(map_job))
    first_wave = [job.item for job, _ in h.queue.sent]
    assert first_wave == [0, 1, 2]  # concurrency 3
    h.drain(shuffle=random.Random(3))
    record = h.client.get(run_id)
    assert record.status == "completed"
    assert record.to_api()["outputs"]["m"] == [1, 4, 9, 16, 25, 36, 49]
    # Three lanes (the concurrency): each runs its items one after another, inline.
    assert sorted(j.item for j in h.delivered if j.item is not None) == [0, 1, 2]
    assert h.worker.stats.nodes_executed == 7  # every item ran once


def test_a_lane_of_map_items_goes_back_on_the_queue_past_the_chain_limit() -> None:
    h = Harness()
    h.worker.max_chain = 2
    run_id, _ = h.client.start("map", {"numbers": [1, 2, 3, 4, 5, 6, 7]})
    h.drain()
    assert h.client.get(run_id).to_api()["outputs"]["m"] == [1, 4, 9, 16, 25, 36, 49]
    # Lanes 0, 1, 2 run items (0, 3), (1, 4), (2, 5); item 6 comes back through the queue.
    assert sorted(j.item for j in h.delivered if j.item is not None) == [0, 1, 2, 6]


def test_map_item_retries_through_the_queue_then_fails_the_run_naming_the_item() -> None:
    attempts: list[tuple[Any, int]] = []

    def picky(ctx: Any) -> dict[str, Any]:
        attempts.append((ctx.input, ctx.attempt))
        if ctx.input == 2:
            raise ValueError("two is not welcome")
        return {"output": ctx.input}

    bp = {
        "id": "picky",
        "nodes": [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.xs", "uses": "picky", "maxRetries": 1},
            }
        ],
    }
    h = Harness(blueprints={"picky": bp}, registry={"picky": picky})
    run_id, _ = h.client.start("picky", {"xs": [1, 2, 3]})
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "failed"
    assert "node 'm': item 1" in (record.error or "") and "two is not welcome" in (
        record.error or ""
    )
    assert [a for a in attempts if a[0] == 2] == [(2, 1), (2, 2)]
    assert record.to_api()["nodes"]["m"] == "failed"


def test_subflow_runs_as_a_child_run_and_resumes_the_parent() -> None:
    h = Harness()
    run_id, _ = h.client.start("subflow")
    h.drain()
    parent = h.client.get(run_id)
    assert parent.status == "completed"
    child = h.client.get(f"{run_id}--sub")
    assert child.status == "completed" and child.blueprint_id == "child"
    assert child.parent == {"runId": run_id, "blueprintId": "subflow", "node": "sub"}
    assert parent.to_api()["outputs"]["after"] == child.context


def test_failing_child_fails_the_parent_and_cancel_reaches_the_child() -> None:
    child_bp = {"id": "bad_child", "nodes": [{"id": "boom", "uses": "broken"}]}
    parent_bp = {
        "id": "parent",
        "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "bad_child"}}],
    }
    waiting_child = {"id": "slow_child", "nodes": [{"id": "hold", "uses": "wait"}]}
    waiting_parent = {
        "id": "waiting_parent",
        "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "slow_child"}}],
    }
    blueprints = {b["id"]: b for b in (child_bp, parent_bp, waiting_child, waiting_parent)}
    h = Harness(blueprints=blueprints)
    run_id, _ = h.client.start("parent")
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "failed"
    assert "subflow 'bad_child' ended failed" in (record.error or "")
    assert "always broken" in (record.error or "")

    other, _ = h.client.start("waiting_parent")
    h.drain()
    assert h.client.get(other).status == "awaiting"  # its child waits for a person
    assert h.client.get(f"{other}--sub").status == "awaiting"
    h.client.cancel(other)
    h.drain()
    assert h.client.get(other).status == "cancelled"
    assert h.client.get(f"{other}--sub").status == "cancelled"


def test_sleep_parks_the_job_on_the_queue_and_keeps_its_wake_time() -> None:
    bp = {
        "id": "nap",
        "nodes": [
            {"id": "a", "uses": "value", "params": {"value": "hello"}},
            {"id": "nap", "uses": "sleep", "params": {"duration": 1_200_000}},
            {"id": "b", "uses": "echo"},
        ],
        "edges": [{"source": "a", "target": "nap"}, {"source": "nap", "target": "b"}],
    }
    h = Harness(blueprints={"nap": bp})
    started = h.clock.now()
    run_id, _ = h.client.start("nap")
    asyncio.run(h.worker.handle_job(h.queue.drain()[0]))  # runs a, then parks the sleep
    [(parked, delay)] = h.queue.sent
    assert parked.node_id == "nap" and delay == 900  # SQS's longest delay; chained past it
    wake = h.client.get(run_id).timers["nap"]
    assert wake == started + 1200
    # A duplicate delivery before the wake time parks again, without moving the wake time.
    asyncio.run(h.worker.handle_job(parked))
    assert h.client.get(run_id).timers["nap"] == wake
    h.queue.sent.clear()
    h.queue.sent.append((parked, 900))
    h.drain()
    view = h.client.get(run_id).to_api()
    assert view["status"] == "completed" and view["outputs"]["b"] == "hello"
    assert h.clock.now() >= wake


def test_subflow_node_retries_start_a_new_child_run_like_in_memory() -> None:
    runs_seen: list[str] = []

    def once_broken(ctx: Any) -> dict[str, Any]:
        runs_seen.append(ctx.run_id)
        if len(runs_seen) == 1:
            raise RuntimeError("first child fails")
        return {"output": "second child works"}

    blueprints = {
        "kid": {"id": "kid", "nodes": [{"id": "work", "uses": "once_broken"}]},
        "parent": {
            "id": "parent",
            "nodes": [
                {
                    "id": "sub",
                    "uses": "subflow",
                    "params": {"blueprintId": "kid"},
                    "config": {"maxRetries": 1},
                }
            ],
        },
    }
    registry = {**REGISTRY, "once_broken": once_broken}
    from flowcraft_core.testing import FakeClock

    in_memory_result = asyncio.run(
        FlowRuntime(registry, blueprints=blueprints, clock=FakeClock()).run("parent")
    )
    assert in_memory_result.status == "completed"
    runs_seen.clear()
    h = Harness(blueprints=blueprints, registry=registry)
    run_id, _ = h.client.start("parent")
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed", record.error
    assert h.client.get(f"{run_id}--sub").status == "failed"
    assert h.client.get(f"{run_id}--sub@2").status == "completed"
    assert record.nodes["sub"].attempts == 2


def test_a_failed_run_is_redriven_from_its_failed_node_keeping_committed_results() -> None:
    calls: dict[tuple[str, str], int] = {}
    fixed = {"done": False}

    def counted(ctx: Any) -> dict[str, Any]:
        calls[ctx.run_id, ctx.node_id] = calls.get((ctx.run_id, ctx.node_id), 0) + 1
        if ctx.node_id == "b" and not fixed["done"]:
            raise RuntimeError("bug in b")
        return {"output": f"{ctx.node_id} ran"}

    bp = {
        "id": "abc",
        "nodes": [{"id": n, "uses": "counted"} for n in ("a", "b", "c")],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
    }
    h = Harness(blueprints={"abc": bp}, registry={"counted": counted})
    run_id, _ = h.client.start("abc")
    h.drain()
    assert h.client.head(run_id).status == "failed"
    running, _ = h.client.start("abc")
    with pytest.raises(RunConflict, match="only a failed run"):
        h.client.redrive(running)
    fixed["done"] = True  # the node's code is fixed and deployed
    assert h.client.redrive(run_id) == ["b"]
    assert h.statuses.get(run_id)["status"] == "running"  # type: ignore[index]
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed" and record.error is None
    assert record.to_api()["outputs"] == {"a": "a ran", "b": "b ran", "c": "c ran"}
    assert calls[run_id, "a"] == 1  # committed results are kept, not run again
    with pytest.raises(RunConflict, match="is completed"):
        h.client.redrive(run_id)


def test_a_map_whose_item_failed_is_redriven_with_fresh_attempts_for_that_item() -> None:
    broken = {"on": True}

    def picky(ctx: Any) -> dict[str, Any]:
        if ctx.input == 2 and broken["on"]:
            raise ValueError("two is not welcome")
        return {"output": ctx.input * 10}

    bp = {
        "id": "picky",
        "nodes": [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.xs", "uses": "picky", "maxRetries": 1},
            }
        ],
    }
    h = Harness(blueprints={"picky": bp}, registry={"picky": picky})
    run_id, _ = h.client.start("picky", {"xs": [1, 2, 3]})
    h.drain()
    assert h.client.head(run_id).status == "failed"
    broken["on"] = False
    h.client.redrive(run_id)
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed", record.error
    assert record.nodes["m"].output == [10, 20, 30]


def test_a_resume_with_an_action_no_edge_takes_is_refused_naming_the_valid_ones() -> None:
    from flowcraft_core.distributed.errors import InvalidResume

    h = Harness()
    run_id, _ = h.client.start("approval")
    h.drain()
    with pytest.raises(InvalidResume, match="valid actions: 'no', 'yes'"):
        h.client.resume(run_id, action="yse")
    with pytest.raises(InvalidResume):
        h.client.resume(run_id)  # no action, and no default edge
    with pytest.raises(RunConflict, match="waiting: approve"):
        h.client.resume(run_id, node_id="ship", action="yes")
    assert h.client.head(run_id).status == "awaiting"  # nothing was written
    h.client.resume(run_id, action="yes", output={"ok": 1})
    h.drain()
    assert h.client.get(run_id).status == "completed"


def test_a_blueprint_that_cannot_run_is_refused_at_start_and_nothing_is_written() -> None:
    from flowcraft_core.distributed.errors import InvalidBlueprint

    bp = {
        "id": "typo",
        "nodes": [{"id": "a", "uses": "echo"}, {"id": "b", "uses": "ecoh"}],
        "edges": [{"source": "a", "target": "b"}],
    }
    h = Harness(blueprints={"typo": bp})
    h.client.registry = h.worker.registry
    with pytest.raises(InvalidBlueprint, match="ecoh") as refused:
        h.client.start("typo")
    assert refused.value.issues and refused.value.issues[0]["nodeId"] == "b"
    assert h.items.items == {} and h.queue.sent == [] and h.statuses.items == {}


def test_a_condition_that_cannot_be_evaluated_fails_the_edge_and_keeps_the_output() -> None:
    bp = {
        "id": "bad_condition",
        "nodes": [
            {"id": "a", "uses": "value", "params": {"value": 3}},
            {"id": "b", "uses": "echo"},
        ],
        "edges": [{"source": "a", "target": "b", "condition": "result.output + 'x' > 1"}],
    }
    h = Harness(blueprints={"bad_condition": bp})
    run_id, _ = h.client.start("bad_condition")
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "failed"
    assert "edge a -> b" in (record.error or "") and "result.output + 'x' > 1" in (
        record.error or ""
    )
    assert record.nodes["a"].status == "completed" and record.nodes["a"].output == 3


def test_a_cancelled_runs_parked_node_reads_cancelled_in_every_view() -> None:
    hooked = {
        "id": "hooked",
        "nodes": [{"id": "start", "uses": "echo"}, {"id": "hook", "uses": "webhook"}],
        "edges": [{"source": "start", "target": "hook"}],
    }
    h = Harness(blueprints={"hooked": hooked})
    run_id, _ = h.client.start("hooked")
    h.drain()
    assert h.client.view(run_id)["awaitingOutputs"]["hook"]["token"]
    h.client.cancel(run_id)
    h.drain()
    view = h.client.view(run_id)
    page = h.client.nodes(run_id)
    assert view["status"] == "cancelled" and view["nodes"]["hook"] == "cancelled"
    assert "awaitingOutputs" not in view  # a cancelled run's webhook is not shown as callable
    statuses = {item["nodeId"]: item["status"] for item in page["items"]}
    assert statuses == {"start": "completed", "hook": "cancelled"}


def _reads_per_job(h: Harness, node_id: str) -> int:
    """Runs the queue one job at a time; the item reads made by ``node_id``'s job."""
    reads = [0]
    get_many = h.items.get_many

    def counting(keys: Any) -> Any:
        reads[0] += 1
        return get_many(keys)

    h.items.get_many = counting  # type: ignore[method-assign]
    counted = None
    while h.queue.sent:
        for job in h.queue.drain():
            before = reads[0]
            asyncio.run(h.worker.handle_job(job))
            if job.node_id == node_id:
                counted = reads[0] - before
    assert counted is not None, f"no job ran {node_id}"
    return counted


def test_a_node_whose_edge_reads_its_predecessor_output_reads_its_items_once() -> None:
    blueprint = {
        "id": "reads",
        "nodes": [
            {"id": "a", "uses": "value", "params": {"value": 3}},
            {"id": "b", "uses": "echo"},
            {"id": "c", "uses": "echo"},
        ],
        "edges": [
            {"source": "a", "target": "b"},
            {"source": "b", "target": "c", "condition": "_outputs.a > 2"},
        ],
    }
    h = Harness(blueprints={"reads": blueprint})
    h.worker.max_chain = 1  # every node its own job
    run_id, _ = h.client.start("reads")
    assert _reads_per_job(h, "b") == 1
    assert h.client.get(run_id).status == "completed"


def test_a_resume_job_reads_its_items_once() -> None:
    h = Harness()
    h.worker.max_chain = 1
    run_id, _ = h.client.start("approval")
    h.drain()
    h.client.resume(run_id, action="yes", output={"ok": 1})
    assert _reads_per_job(h, "approve") == 1
    assert h.client.get(run_id).status == "completed"
