"""Races, interleavings and crash windows of the distributed driver (docs/design.md),
and its parity with the in-memory runtime in the corners: loops ending under concurrent
commits, stale duplicates, resumes and cancels cut short, map and child-run recovery, large
skip cascades, ``any`` joins, and retries that outlive the reconciler's threshold.

Concurrency is simulated deterministically: a node implementation (or a middleware) runs the
*other* delivery of a job with ``await worker.handle_job(...)`` while its own job is in flight,
i.e. after its record was loaded and before it commits, exactly what two Lambda invocations
working at the same time do.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from flowcraft_core import FlowRuntime, NodeResult
from flowcraft_core.distributed import RunConflict, Worker
from flowcraft_core.engine import Middleware
from flowcraft_core.testing import FakeClock

from .distributed_harness import Harness
from .scenarios import BLUEPRINTS, REGISTRY


class Crash(Exception):
    """The Lambda 'dies' at this point."""


def in_memory(blueprint: dict[str, Any], context: dict[str, Any], registry: dict[str, Any]) -> Any:
    runtime = FlowRuntime(registry, blueprints={blueprint["id"]: blueprint}, clock=FakeClock())
    return asyncio.run(runtime.run(blueprint, context))


# --------------------------------------------------------------------------------------------
# Loops: a loop's end is derived from the committed record, whoever commits last.
# --------------------------------------------------------------------------------------------
_RACE: dict[str, Any] = {}


async def _racing_member(ctx: Any) -> NodeResult:
    """B#1: while this job is in flight (record loaded), A#1 runs and commits elsewhere."""
    h = _RACE.get("h")
    if h is not None and ctx.iteration == 1:
        for index, (job, _) in enumerate(list(h.queue.sent)):
            if job.node_id == "A#1":
                del h.queue.sent[index]
                await h.worker.handle_job(job)
                break
    return NodeResult(output=ctx.input)


PARALLEL_LOOP = {
    "id": "parallel_loop",
    "nodes": [
        {"id": "S", "uses": "value", "params": {"value": 0}},
        {"id": "H", "uses": "count_up"},
        {"id": "A", "uses": "echo"},
        {"id": "B", "uses": "racing_member"},
        {"id": "T", "uses": "echo"},
    ],
    "edges": [
        {"source": "S", "target": "H"},
        {"source": "H", "target": "A"},
        {"source": "H", "target": "B"},
        {"source": "A", "target": "H", "condition": "context.count < 2"},
        {"source": "B", "target": "H", "condition": "context.count < 2"},
        # an exit that is never taken: decided "not taken" only when the loop ends
        {"source": "A", "target": "T", "condition": "context.count > 99"},
        {"source": "B", "target": "T", "condition": "context.count > 99"},
        {"source": "S", "target": "T"},
    ],
}


def test_loop_ends_when_the_last_two_members_of_an_iteration_commit_concurrently() -> None:
    registry = {**REGISTRY, "racing_member": _racing_member}
    want = in_memory(PARALLEL_LOOP, {"count": 0}, registry)
    assert want.status == "completed" and want.node_statuses["T"] == "completed"

    h = Harness(blueprints={"parallel_loop": PARALLEL_LOOP}, registry=registry)
    _RACE["h"] = h
    try:
        run_id, _ = h.client.start("parallel_loop", {"count": 0})

        async def deliver_newest_first() -> None:
            while h.queue.sent:
                job, _ = h.queue.sent.pop()
                await h.worker.handle_job(job)

        asyncio.run(deliver_newest_first())
    finally:
        _RACE.clear()
    view = h.client.get(run_id).to_api()
    assert view["nodes"].get("T") == "completed", view
    assert view["status"] == "completed"


WHILE_LOOP_WITH_JOIN_AFTER = {
    "id": "while_join",
    "nodes": [
        {"id": "S", "uses": "value", "params": {"value": 0}},
        {"id": "X", "uses": "count_up"},
        {"id": "Z", "uses": "echo"},
        {"id": "T", "uses": "echo"},
    ],
    "edges": [
        {"source": "S", "target": "X"},
        {"source": "X", "target": "Z"},
        {"source": "Z", "target": "X", "condition": "context.count < 2"},
        {"source": "X", "target": "T", "condition": "context.count > 99"},  # exit, never taken
        {"source": "S", "target": "T"},
    ],
}


def test_node_made_ready_by_a_loop_ending_is_sent() -> None:
    want = in_memory(WHILE_LOOP_WITH_JOIN_AFTER, {"count": 0}, REGISTRY)
    assert want.status == "completed" and want.node_statuses["T"] == "completed"
    h = Harness(blueprints={"while_join": WHILE_LOOP_WITH_JOIN_AFTER})
    run_id, _ = h.client.start("while_join", {"count": 0})
    h.drain()  # no crash, no duplicate, one worker
    assert h.client.get(run_id).status == "completed"


# --------------------------------------------------------------------------------------------
# Stale executions never overwrite a committed node or an acknowledged resume.
# --------------------------------------------------------------------------------------------
def test_stale_duplicate_of_a_wait_job_keeps_an_acknowledged_resume() -> None:
    h = Harness()
    h.worker.max_chain = 1
    run_id, _ = h.client.start("approval")
    [request] = h.queue.drain()
    asyncio.run(h.worker.handle_job(request))
    [approve_job] = h.queue.drain()
    acknowledged: list[str] = []

    class FirstDeliveryParksThenPersonResumes(Middleware):
        async def before(self, ctx: Any) -> None:
            if ctx.node_id == "approve" and not acknowledged:
                await h.worker.handle_job(approve_job)  # the other delivery parks the node
                assert h.client.get(run_id).status == "awaiting"
                acknowledged.append(
                    h.client.resume(run_id, node_id="approve", action="yes", output={"ok": 1})
                )

    duplicate = Worker(
        runs=h.runs,
        statuses=h.statuses,
        queue=h.queue,
        blueprints=BLUEPRINTS,
        registry=REGISTRY,
        clock=h.clock,
        middleware=[FirstDeliveryParksThenPersonResumes()],
    )
    asyncio.run(duplicate.handle_job(approve_job))  # loaded before the park, parks again
    h.drain()
    record = h.client.get(run_id)
    assert acknowledged == ["approve"]
    assert record.status == "completed", (record.status, record.resumes)
    assert record.to_api()["outputs"]["ship"] == {"ok": 1}


def test_failing_concurrent_duplicate_does_not_undo_a_committed_node() -> None:
    calls: list[int] = []
    holder: dict[str, Any] = {}

    async def charge(ctx: Any) -> NodeResult:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            # the other delivery of this job runs and commits meanwhile...
            await holder["other"].handle_job(holder["job"])
            raise RuntimeError("provider timeout")  # ...and this one then fails
        return NodeResult(output="charged")

    bp = {
        "id": "pay",
        "nodes": [{"id": "charge", "uses": "charge"}, {"id": "ship", "uses": "echo"}],
        "edges": [{"source": "charge", "target": "ship"}],
    }
    registry = {**REGISTRY, "charge": charge}
    h = Harness(blueprints={"pay": bp}, registry=registry)
    holder["other"] = h.new_worker({"pay": bp}, registry)
    holder["other"].max_chain = 1
    run_id, _ = h.client.start("pay")
    [job] = h.queue.drain()
    holder["job"] = job
    asyncio.run(h.worker.handle_job(job))
    h.drain()
    record = h.client.get(run_id)
    assert record.nodes["charge"].status == "completed", record.nodes["charge"]
    assert record.status == "completed", record.error


# --------------------------------------------------------------------------------------------
# Resume: a crash half-way leaves the run where the reconciler finds it.
# --------------------------------------------------------------------------------------------
def test_crash_during_resume_leaves_the_run_to_the_reconciler() -> None:
    h = Harness()
    run_id, _ = h.client.start("approval")
    h.drain()
    assert h.client.get(run_id).status == "awaiting"
    changed = h.statuses.changed

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash("died after the run record's transition")

    h.statuses.changed = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        h.client.resume(run_id, node_id="approve", action="yes", output={"ok": 1})
    h.statuses.changed = changed  # type: ignore[method-assign]
    # The API caller retries (today: refused with RunConflict, the run is no longer "awaiting").
    with contextlib.suppress(RunConflict):
        h.client.resume(run_id, node_id="approve", action="yes", output={"ok": 1})
    for _ in range(3):
        h.clock.advance(600)
        h.reconciler(threshold=0).run()
        h.drain()
    assert h.client.get(run_id).status == "completed"


# --------------------------------------------------------------------------------------------
# Map fan-out: the reconciler finishes a map whose items are all committed.
# --------------------------------------------------------------------------------------------
def test_reconciler_finishes_a_map_whose_items_are_all_in() -> None:
    h = Harness()
    run_id, _ = h.client.start("map", {"numbers": [1, 2]})
    commit = h.runs.commit

    def crash_on_map_commit(rid: str, key: str, *args: Any, **kwargs: Any) -> Any:
        if key == "m":
            raise Crash("died before the map's own commit")
        return commit(rid, key, *args, **kwargs)

    h.runs.commit = crash_on_map_commit  # type: ignore[method-assign,assignment]
    [map_job] = h.queue.drain()
    asyncio.run(h.worker.handle_job(map_job))
    for job in h.queue.drain():
        # a crashed message is gone here (e.g. dead-lettered): the reconciler must finish
        with contextlib.suppress(Crash):
            asyncio.run(h.worker.handle_job(job))
    h.runs.commit = commit  # type: ignore[method-assign]
    items = h.runs.nodes(run_id, ["m[0]", "m[1]"])
    assert [h.runs.codec.decode(items[k].stored) for k in ("m[0]", "m[1]")] == [1, 4]
    for _ in range(3):
        h.clock.advance(1)
        h.reconciler(threshold=0).run()
        h.drain()
    assert h.client.get(run_id).status == "completed"


# --------------------------------------------------------------------------------------------
# DynamoDB: a large skip cascade writes one small item per skipped node.
# --------------------------------------------------------------------------------------------
def _wide_if_else(branch: int) -> dict[str, Any]:
    nodes = [
        {"id": "check", "uses": "value", "params": {"value": 1, "action": "small"}},
        {"id": "small", "uses": "echo"},
    ]
    edges = [{"source": "check", "target": "small", "action": "small"}]
    previous = "check"
    for i in range(branch):
        nodes.append({"id": f"big_{i}", "uses": "echo"})
        edge: dict[str, Any] = {"source": previous, "target": f"big_{i}"}
        if previous == "check":
            edge["action"] = "big"
        edges.append(edge)
        previous = f"big_{i}"
    return {"id": "wide", "nodes": nodes, "edges": edges}


def test_large_skip_cascade_stays_within_dynamodb_expression_limits(aws: Any) -> None:
    from .aws_harness import AwsHarness

    bp = _wide_if_else(70)
    h = AwsHarness(prefix="wide", blueprints={"wide": bp})
    lengths: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        lengths.append(len(params.get("UpdateExpression", "")))

    client = h.adapter.runs.items.client  # type: ignore[attr-defined]
    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", record)
    run_id, _ = h.adapter.client.start("wide")
    h.pump()
    record_ = h.adapter.client.get(run_id)
    assert record_.status == "completed"
    assert sum(1 for n in record_.nodes.values() if n.status == "skipped") == 70
    # moto does not enforce it, DynamoDB does: no update expression over 4 KB.
    assert max(lengths) <= 4096, max(lengths)


# --------------------------------------------------------------------------------------------
# Cancel: reaches a child run started around the time of the cancel.
# --------------------------------------------------------------------------------------------
def test_cancel_between_marking_a_subflow_waiting_and_starting_its_child_reaches_the_child() -> (
    None
):
    h = Harness()
    run_id, _ = h.client.start("subflow")

    park = h.runs.park

    def park_then_cancel(rid: str, key: str, **kwargs: Any) -> Any:
        record = park(rid, key, **kwargs)
        if rid == run_id and kwargs.get("status") == "waiting":
            h.client.cancel(run_id)  # acknowledged: no child to cancel yet
        return record

    h.runs.park = park_then_cancel  # type: ignore[method-assign]
    h.drain()
    assert h.client.get(run_id).status == "cancelled"
    child = h.runs.head(f"{run_id}--sub")
    assert child is None or child.status == "cancelled", child
    if child is not None:
        assert not h.client.get(child.run_id).nodes


# --------------------------------------------------------------------------------------------
# `any` joins: sent once, by the arrival that fired them, with that arrival's input.
# --------------------------------------------------------------------------------------------
ANY_JOIN = {
    "id": "any_join",
    "nodes": [
        {"id": "S", "uses": "value", "params": {"value": 1}},
        {"id": "A", "uses": "value", "params": {"value": "from A"}},
        {"id": "B", "uses": "value", "params": {"value": "from B"}},
        {"id": "J", "uses": "echo", "config": {"joinStrategy": "any"}},
    ],
    "edges": [
        {"source": "S", "target": "A"},
        {"source": "S", "target": "B"},
        {"source": "A", "target": "J"},
        {"source": "B", "target": "J"},
    ],
}


def test_any_join_is_sent_once_despite_a_late_arrival() -> None:
    h = Harness(blueprints={"any_join": ANY_JOIN})
    h.worker.max_chain = 1  # J goes through the queue (e.g. the invocation is short of time)
    run_id, _ = h.client.start("any_join")
    h.drain()  # no duplicates, no crash, one worker
    assert h.client.get(run_id).status == "completed"
    sent_for_join = [job for job in h.delivered if job.node_id == "J"]
    assert len(sent_for_join) == 1


@pytest.mark.parametrize("first", ["A", "B"])
def test_any_join_input_is_the_arrival_that_fired_it_not_the_first_key_in_the_map(
    first: str,
) -> None:
    h = Harness(blueprints={"any_join": ANY_JOIN})
    h.worker.max_chain = 1
    run_id, _ = h.client.start("any_join")
    [start] = h.queue.drain()
    asyncio.run(h.worker.handle_job(start))
    jobs = {job.node_id: job for job in h.queue.drain()}
    late = jobs.pop("B" if first == "A" else "A")
    asyncio.run(h.worker.handle_job(jobs[first]))  # the first arrival fires J
    [join_job] = h.queue.drain()
    asyncio.run(h.worker.handle_job(late))  # the other arrives late: to be ignored
    h.queue.drain()
    asyncio.run(h.worker.handle_job(join_job))
    assert h.client.get(run_id).to_api()["outputs"]["J"] == f"from {first}"


# --------------------------------------------------------------------------------------------
# Reconciler and pending retries: the attempt count and the delay are kept.
# --------------------------------------------------------------------------------------------
def test_reconciler_keeps_a_pending_retry_attempt_and_delay() -> None:
    attempts: list[tuple[int, float]] = []
    clock_holder: dict[str, Any] = {}

    def shaky(ctx: Any) -> NodeResult:
        attempts.append((ctx.attempt, clock_holder["clock"].now()))
        raise RuntimeError("upstream 503")

    bp = {
        "id": "retrying",
        "nodes": [
            {
                "id": "call",
                "uses": "shaky",
                "config": {"maxRetries": 1, "retryDelay": 600_000},
            }
        ],
    }
    h = Harness(blueprints={"retrying": bp}, registry={**REGISTRY, "shaky": shaky})
    clock_holder["clock"] = h.clock
    run_id, _ = h.client.start("retrying")
    started = h.clock.now()
    [first] = h.queue.drain()
    asyncio.run(h.worker.handle_job(first))  # attempt 1 fails; attempt 2 queued for +600 s
    h.clock.advance(301)
    h.reconciler(threshold=300).run()  # the default threshold: the run looks stalled
    # SQS makes the reconciler's job (no delay) visible before the delayed retry.
    visible_now = [job for job, delay in h.queue.sent if delay == 0]
    h.queue.sent[:] = [(job, delay) for job, delay in h.queue.sent if delay != 0]
    for job in visible_now:
        asyncio.run(h.worker.handle_job(job))
    h.drain()
    assert h.client.get(run_id).status == "failed"
    # maxRetries=1: two attempts, the second no earlier than retryDelay after the first.
    assert [a for a, _ in attempts] == [1, 2], [(a, t - started) for a, t in attempts]


# --------------------------------------------------------------------------------------------
# Parity: subflow and map nodes use the node's fallback, as in memory.
# --------------------------------------------------------------------------------------------
PARITY_BLUEPRINTS = {
    "bad_child": {"id": "bad_child", "nodes": [{"id": "boom", "uses": "broken"}]},
    "sub_with_fallback": {
        "id": "sub_with_fallback",
        "nodes": [
            {
                "id": "sub",
                "uses": "subflow",
                "params": {"blueprintId": "bad_child"},
                "config": {"fallback": "backup"},
            }
        ],
    },
    "map_with_fallback": {
        "id": "map_with_fallback",
        "nodes": [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.xs", "uses": "broken"},
                "config": {"fallback": "backup"},
            }
        ],
    },
}


@pytest.mark.parametrize("blueprint_id", ["sub_with_fallback", "map_with_fallback"])
def test_distributed_subflow_and_map_honour_the_node_fallback_like_in_memory(
    blueprint_id: str,
) -> None:
    runtime = FlowRuntime(REGISTRY, blueprints=PARITY_BLUEPRINTS, clock=FakeClock())
    want = asyncio.run(runtime.run(blueprint_id, {"xs": [1]}))
    assert want.status == "completed"
    h = Harness(blueprints=PARITY_BLUEPRINTS)
    run_id, _ = h.client.start(blueprint_id, {"xs": [1]})
    h.drain()
    record = h.client.get(run_id)
    assert record.status == want.status, record.error
    assert record.to_api()["outputs"] == want.outputs
