"""Corners of the distributed driver (DESIGN.md section 4) not exercised elsewhere."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_core import FlowRuntime, NodeResult
from flowcraft_core.testing import FakeClock

from .distributed_harness import Harness
from .scenarios import REGISTRY


class Crash(BaseException):
    """The Lambda 'dies' at this point (a BaseException: no node error handling catches it)."""


CHAIN = {
    "id": "chain",
    "nodes": [
        {"id": "A", "uses": "value", "params": {"value": 1}},
        {"id": "B", "uses": "echo"},
        {"id": "C", "uses": "dies_once"},
        {"id": "D", "uses": "echo"},
    ],
    "edges": [
        {"source": "A", "target": "B"},
        {"source": "B", "target": "C"},
        {"source": "C", "target": "D"},
    ],
}


def test_redelivered_job_continues_a_chain_where_the_invocation_died() -> None:
    died: list[str] = []

    def dies_once(ctx: Any) -> NodeResult:
        if not died:
            died.append(ctx.node_id)
            raise Crash("the invocation dies while running the third chained node")
        return NodeResult(output=ctx.input)

    h = Harness(blueprints={"chain": CHAIN}, registry={**REGISTRY, "dies_once": dies_once})
    run_id, _ = h.client.start("chain")
    [first] = h.queue.drain()
    with pytest.raises(Crash):
        asyncio.run(h.worker.handle_job(first))
    assert h.queue.sent == []
    asyncio.run(h.worker.handle_job(first))  # SQS redelivers the invocation's only message
    h.drain()
    assert h.client.get(run_id).status == "completed", sorted(h.client.get(run_id).nodes)


def test_status_row_stays_active_when_a_resume_overtakes_the_worker_parking_the_run() -> None:
    h = Harness()
    run_id, _ = h.client.start("approval")
    changed = h.statuses.changed
    resumed: list[str] = []

    def worker_writes_awaiting_late(rid: str, status: str, now: float, **kw: Any) -> None:
        if rid == run_id and status == "awaiting" and not resumed:
            # The run record is "awaiting" already; a person resumes before this write lands.
            resumed.append(h.client.resume(run_id, node_id="approve", action="yes", output=1))
        changed(rid, status, now, **kw)

    h.statuses.changed = worker_writes_awaiting_late  # type: ignore[method-assign]
    [first] = h.queue.drain()
    asyncio.run(h.worker.handle_job(first))  # request, then approve (chained) parks the run
    h.statuses.changed = changed  # type: ignore[method-assign]
    assert resumed == ["approve"]
    assert h.client.get(run_id).status == "running"
    # The resumed job is lost (e.g. dead-lettered after throttling): the reconciler's turn.
    assert [job.node_id for job in h.queue.drain()] == ["approve"]
    for _ in range(3):
        h.clock.advance(600)
        h.reconciler(threshold=300).run()
        h.drain()
    assert h.client.get(run_id).status == "completed", h.statuses.get(run_id)


SLEEP_BESIDE_WORK = {
    "id": "sleep_beside_work",
    "nodes": [
        {"id": "S", "uses": "value", "params": {"value": 1}},
        {"id": "nap", "uses": "sleep", "params": {"duration": 86_400_000}},  # a day
        {"id": "A", "uses": "echo"},
        {"id": "B", "uses": "echo"},
        {"id": "C", "uses": "echo"},
    ],
    "edges": [
        {"source": "S", "target": "nap"},
        {"source": "S", "target": "A"},
        {"source": "A", "target": "B"},
        {"source": "A", "target": "C"},
    ],
}


def test_reconciler_recovers_a_stalled_branch_while_another_branch_sleeps() -> None:
    h = Harness(blueprints={"sleep_beside_work": SLEEP_BESIDE_WORK})
    run_id, _ = h.client.start("sleep_beside_work")
    [start] = h.queue.drain()
    asyncio.run(h.worker.handle_job(start))
    for job in sorted(h.queue.drain(), key=lambda j: j.node_id != "nap"):
        asyncio.run(h.worker.handle_job(job))  # nap parks for a day; A sends B and C
    assert "A" in h.client.get(run_id).nodes
    # B's and C's messages are lost (dead-lettered); only the parked sleep stays on the queue.
    h.queue.sent[:] = [(job, delay) for job, delay in h.queue.sent if job.node_id == "nap"]
    parked = list(h.queue.sent)
    h.queue.sent.clear()
    for _ in range(6):  # an hour of reconciler passes, well before the sleep ends
        h.clock.advance(600)
        h.reconciler(threshold=300).run()
        h.drain()
    record = h.client.get(run_id)
    assert {"B", "C"} <= set(record.nodes), sorted(record.nodes)
    h.queue.sent.extend(parked)
    h.drain()
    assert h.client.get(run_id).status == "completed"


MAP_OF_SLEEPS = {
    "id": "map_of_sleeps",
    "nodes": [
        {
            "id": "m",
            "uses": "map",
            "params": {"items": "context.xs", "uses": "sleep", "params": {"duration": 5000}},
        }
    ],
}


def test_map_items_that_sleep_complete_like_in_memory() -> None:
    runtime = FlowRuntime(REGISTRY, blueprints={"map_of_sleeps": MAP_OF_SLEEPS}, clock=FakeClock())
    want = asyncio.run(runtime.run("map_of_sleeps", {"xs": [1, 2]}))
    assert want.status == "completed" and want.outputs["m"] == [1, 2]
    h = Harness(blueprints={"map_of_sleeps": MAP_OF_SLEEPS})
    run_id, _ = h.client.start("map_of_sleeps", {"xs": [1, 2]})
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed", record.error
    assert record.to_api()["outputs"]["m"] == [1, 2]


def _loud_failure(ctx: Any) -> NodeResult:
    # e.g. an HTTP client error that carries the whole response body
    raise RuntimeError("upstream said: " + "x" * 450_000)


def test_node_failing_with_a_huge_error_message_fails_its_run_on_dynamodb(aws: Any) -> None:
    from .aws_harness import AwsHarness

    bp = {"id": "loud", "nodes": [{"id": "call", "uses": "loud"}]}
    h = AwsHarness(prefix="loud", blueprints={"loud": bp}, registry={**REGISTRY, "loud": _loud_failure})
    run_id, _ = h.adapter.client.start("loud")
    errors: list[str] = []
    for _ in range(3):  # deliveries (SQS redelivers a job whose handler raised)
        message = h.sqs.receive_message(QueueUrl=h.queue_url, WaitTimeSeconds=0).get("Messages")
        if not message:
            break
        try:
            asyncio.run(h.adapter.handle_message(message[0]["Body"]))
        except Exception as exc:  # the message would come back after its visibility timeout
            errors.append(type(exc).__name__)
            h.sqs.change_message_visibility(
                QueueUrl=h.queue_url, ReceiptHandle=message[0]["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            h.sqs.delete_message(QueueUrl=h.queue_url, ReceiptHandle=message[0]["ReceiptHandle"])
    record = h.adapter.client.get(run_id)
    assert record.status == "failed", (record.status, errors)
    assert record.error and record.error.startswith("node 'call': RuntimeError: upstream said")


ASK_EVERY_PASS = {
    "id": "ask_every_pass",
    "nodes": [
        {"id": "init", "uses": "value", "params": {"value": 0}},
        {"id": "H", "uses": "count_up"},
        {"id": "ask", "uses": "wait"},
        {"id": "auto", "uses": "echo"},
        {"id": "J", "uses": "echo", "config": {"joinStrategy": "any"}},
        {"id": "done", "uses": "echo"},
    ],
    "edges": [
        {"source": "init", "target": "H"},
        {"source": "H", "target": "ask"},
        {"source": "H", "target": "auto"},
        # the loop goes on through `auto`; each pass leaves an `ask` instance waiting
        {"source": "ask", "target": "J"},
        {"source": "auto", "target": "J"},
        {"source": "J", "target": "H", "condition": "context.count < 3"},
        {"source": "J", "target": "done", "condition": "context.count >= 3"},
    ],
}


def test_waits_left_by_several_loop_passes_can_each_be_resumed_like_in_memory() -> None:
    runtime = FlowRuntime(REGISTRY, blueprints={"ask_every_pass": ASK_EVERY_PASS}, clock=FakeClock())
    want = asyncio.run(runtime.run("ask_every_pass", {"count": 0}))
    assert want.state["awaiting"] == ["ask", "ask#1", "ask#2"]
    while want.status == "awaiting":
        want = asyncio.run(runtime.resume("ask_every_pass", want, node_id="ask", output="ok"))
    assert want.status == "completed"

    h = Harness(blueprints={"ask_every_pass": ASK_EVERY_PASS})
    run_id, _ = h.client.start("ask_every_pass", {"count": 0})
    h.drain()
    for _ in range(3):
        assert h.client.get(run_id).status == "awaiting"
        h.client.resume(run_id, node_id="ask", output="ok")
        h.drain()
    assert h.client.get(run_id).status == "completed"
